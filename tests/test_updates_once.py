"""An update handled once (webhook mode): `ChatService.handle(update_id=...)`, its replies kept until
sent (re-sent with the may-repeat note once the handling replica's lease expired, by a second post or
the sweep, never both), and the pruning of the ids.

The cross-process half (two replicas, one database, one of them killed) is tests/test_replicas.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import func, select, update
from telegram import Update
from telegram.error import TimedOut
from telegram.ext import Application
from tenacity import wait_none

from bot import sending as sending_module
from bot.jobs import keep_replies_moving, resend_left, start_reminders
from bot.offline import TOKEN, RecordingRequest, message_update
from bot.service import ChatService
from bot.storage import Storage, open_storage
from bot.storage import updates as updates_module
from bot.storage.tables import ProcessedUpdate
from bot.storage.updates import KEEP_HANDLED, InFlightError, claim_update, prune_updates
from bot.telegram_app import ONCE, REPLY_NOT_SENT, RETRY_LATER, build_application
from flows.reminders import MAY_REPEAT
from flows.replies import Button, Reply


@pytest.fixture
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    """SQLite, or PostgreSQL when the suite runs on it (tests/conftest.py's db_url, HEMADOSE_TEST_DB_URL)."""
    try:
        url: str = request.getfixturevalue("db_url")
    except pytest.FixtureLookupError:
        url = f"sqlite:///{tmp_path}/once.db"
    opened = await open_storage(url)
    yield opened
    await opened.close()


async def handled(storage: Storage) -> list[int]:
    async with storage.session() as session:
        return list(await session.scalars(select(ProcessedUpdate.update_id).order_by(ProcessedUpdate.update_id)))


async def test_an_update_handled_twice_is_answered_once_and_moves_the_chat_once(storage: Storage):
    service = ChatService(storage)
    assert [r.text for r in await service.handle("tg:7", "tg:7:7", text="/new", update_id=41)] == ["Which drug?"]
    await service.replies_sent(41)
    assert await service.handle("tg:7", "tg:7:7", text="/new", update_id=41) == []
    assert await service.handle("tg:7", "tg:7:7", button="v:romiplostim", update_id=41) == []  # same id: dropped
    replies = await service.handle("tg:7", "tg:7:7", button="v:romiplostim", update_id=42)
    assert [r.text for r in replies] == ["Which label's rules?"]
    assert await handled(storage) == [41, 42]


DRUGS = (
    (Button("Romiplostim", "v:romiplostim"), Button("Hetrombopag", "v:hetrombopag")),
    (Button("Lusutrombopag", "v:lusutrombopag"), Button("Luspatercept", "v:luspatercept")),
    (Button("⬅ Back", "back"), Button("✖ Cancel", "cancel"), Button("? Help", "help")),
)


async def kept(storage: Storage, update_id: int) -> tuple[object, str | None, dt.datetime | None]:
    """The row's replies, owner and lease."""
    async with storage.session() as session:
        row = await session.get(ProcessedUpdate, update_id)
        assert row is not None
        return row.replies, row.owner, row.lease_until


async def expire(storage: Storage, update_id: int) -> None:
    """The lease of the replica that handled the update runs out (it was killed before sending)."""
    async with storage.session() as session, session.begin():
        await session.execute(
            update(ProcessedUpdate)
            .where(ProcessedUpdate.update_id == update_id)
            .values(lease_until=dt.datetime(2000, 1, 1))
        )


def stored(reply: Reply) -> list[list[list[str]]]:
    return [[[b.label, b.data] for b in row] for row in reply.buttons]


async def test_the_replies_are_kept_with_the_update_until_sent(storage: Storage, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(updates_module, "MARK_SENT_WITHIN", 0.05)
    first = ChatService(storage)
    [reply] = await first.handle("tg:7", "tg:7:7", text="/new", update_id=41)
    assert reply == Reply("Which drug?", DRUGS)
    replies, owner, lease = await kept(storage, 41)
    assert replies == [{"text": "Which drug?", "buttons": [[[b.label, b.data] for b in row] for row in DRUGS]}]
    assert owner == first.reminders.owner
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert lease is not None
    assert now < lease <= now + first.reply_lease
    await first.replies_sent(41)  # marked with the next update's replies, in their statement
    assert (await kept(storage, 41))[0] is not None
    [reply] = await first.handle("tg:7", "tg:7:7", button="v:romiplostim", update_id=42)
    assert await kept(storage, 41) == (None, first.reminders.owner, None)
    assert (await kept(storage, 42))[0] == [{"text": reply.text, "buttons": stored(reply)}]
    await first.replies_sent(42)  # and with no next update, within MARK_SENT_WITHIN on its own
    for _ in range(100):
        if (await kept(storage, 42))[0] is None:
            break
        await asyncio.sleep(0.05)
    assert await kept(storage, 42) == (None, first.reminders.owner, None)
    # An update with no replies keeps none (nothing to send, nothing to sweep).
    async with storage.session() as session:
        assert await session.scalar(select(func.count()).where(ProcessedUpdate.replies.is_not(None))) == 0


async def test_a_repost_while_the_lease_runs_sends_nothing(storage: Storage):
    first, second = ChatService(storage), ChatService(storage)  # two replicas
    await first.handle("tg:7", "tg:7:7", text="/new", update_id=41)  # committed; then `first` is killed
    for service in (second, first):  # the owner itself may still be sending: it does not send twice
        with pytest.raises(InFlightError):
            await service.handle("tg:7", "tg:7:7", text="/new", update_id=41)
    assert (await kept(storage, 41))[1] == first.reminders.owner
    assert await second.left_replies() == []  # the sweep leaves it too


async def test_a_repost_after_the_lease_expired_sends_the_replies_again_with_the_note_once(storage: Storage):
    first, second = ChatService(storage), ChatService(storage)
    await first.handle("tg:7", "tg:7:7", text="/new", update_id=41)
    await expire(storage, 41)
    again = await second.handle("tg:7", "tg:7:7", text="/new", update_id=41)
    assert again == [Reply(f"{MAY_REPEAT}\nWhich drug?", DRUGS)]
    assert (await kept(storage, 41))[1] == second.reminders.owner  # now the second's, under its own lease
    with pytest.raises(InFlightError):  # while the second sends them, a third post waits
        await first.handle("tg:7", "tg:7:7", text="/new", update_id=41)
    await first.replies_sent(41)  # the killed replica's late confirmation changes nothing of the second's
    await first.flush_sent()
    assert (await kept(storage, 41))[0] is not None
    await second.replies_sent(41)
    assert await second.handle("tg:7", "tg:7:7", text="/new", update_id=41) == []  # sent: dropped
    await second.flush_sent()
    assert await first.handle("tg:7", "tg:7:7", text="/new", update_id=41) == []  # at any replica
    # The chat moved once: the next update answers the question the first one asked.
    replies = await second.handle("tg:7", "tg:7:7", button="v:romiplostim", update_id=42)
    assert [r.text for r in replies] == ["Which label's rules?"]


async def test_the_sweep_sends_what_a_killed_replica_left_and_a_later_post_is_dropped(storage: Storage):
    first, second = ChatService(storage), ChatService(storage)
    await first.handle("tg:7", "tg:7:7", text="/new", update_id=41)
    await first.handle("tg:8", "tg:8:8", text="/new", update_id=43)
    await first.replies_sent(43)  # sent before the kill: not swept
    await first.flush_sent()
    await expire(storage, 41)
    assert await second.left_replies() == [(41, "tg:7:7", [Reply(f"{MAY_REPEAT}\nWhich drug?", DRUGS)])]
    assert await second.left_replies() == []  # taken: not twice
    with pytest.raises(InFlightError):  # Telegram's post meanwhile: the sweep is sending them
        await first.handle("tg:7", "tg:7:7", text="/new", update_id=41)
    await second.replies_sent(41)
    await second.flush_sent()
    assert await first.handle("tg:7", "tg:7:7", text="/new", update_id=41) == []


async def repost(service: ChatService, update_id: int) -> list[Reply]:
    """Telegram's second post of /new: what the replica sends (none while another holds the replies)."""
    try:
        return await service.handle("tg:7", "tg:7:7", text="/new", update_id=update_id)
    except InFlightError:
        return []


async def test_a_sweep_and_a_repost_at_once_send_the_replies_once(storage: Storage):
    for update_id in range(100, 110):
        first, second, third = ChatService(storage), ChatService(storage), ChatService(storage)
        await first.handle("tg:7", "tg:7:7", text="/new", update_id=update_id)
        await expire(storage, update_id)

        swept, posted = await asyncio.gather(second.left_replies(), repost(third, update_id))
        sends = [reply for _, _, replies in swept for reply in replies] + posted
        assert sends == [Reply(f"{MAY_REPEAT}\nWhich drug?", DRUGS)], update_id
        winner = second if swept else third
        assert (await kept(storage, update_id))[1] == winner.reminders.owner
        await winner.replies_sent(update_id)
        await winner.flush_sent()


async def test_through_the_application_a_repost_is_retried_later_then_answered_with_the_note(storage: Storage):
    """python-telegram-bot's Application in webhook mode: the lease running gives the webhook its 503
    (RETRY_LATER), the expired lease the replies with the note, sent and marked sent; the sweep finds nothing."""
    killed, survivor = ChatService(storage), ChatService(storage)
    request = RecordingRequest()
    application = build_application(TOKEN, survivor, None, request=request, polling=False)
    application.bot_data[ONCE] = True
    await application.initialize()
    try:
        await killed.handle("tg:7", "tg:7:7", text="/new", update_id=41)  # committed, never sent
        update = Update.de_json(message_update(41, 7, 7, "/new"), application.bot)
        await application.process_update(update)
        assert request.take() == []
        assert application.bot_data[RETRY_LATER] == {41}
        application.bot_data[RETRY_LATER].clear()
        await expire(storage, 41)
        await application.process_update(update)
        [sent] = request.take()
        assert (sent.chat_id, sent.text, sent.labels()) == (
            7,
            f"{MAY_REPEAT}\nWhich drug?",
            [b.label for row in DRUGS for b in row],
        )
        assert application.bot_data[RETRY_LATER] == set()
        await survivor.flush_sent()
        assert (await kept(storage, 41))[0] is None  # marked sent
        await application.process_update(update)  # Telegram's third post: dropped
        assert request.take() == []
        # A new update is answered and marked sent (within MARK_SENT_WITHIN): nothing is left for the sweep.
        await application.process_update(Update.de_json(message_update(42, 7, 7, "/help"), application.bot))
        assert [m.text for m in request.take()][1:] == ["Which drug?"]  # the help, then the question again
        await survivor.flush_sent()
        await expire(storage, 42)
        assert await resend_left(application, survivor) == 0
        # What a killed replica left, with no post to come: sent by the sweep, once.
        await killed.handle("tg:7", "tg:7:7", button="v:romiplostim", update_id=43)
        await expire(storage, 43)
        assert await resend_left(application, survivor) == 1
        assert [m.text for m in request.take()] == [f"{MAY_REPEAT}\nWhich label's rules?"]
        assert await resend_left(application, survivor) == 0
        assert len(survivor.sending) == 0  # nothing left in hand: no lease renewed for ever
    finally:
        await application.shutdown()


async def test_replies_still_being_sent_keep_their_lease_and_no_other_replica_sends_them(storage: Storage):
    """A reply waiting behind the bot's pace (or a 429's pause) longer than the lease: its replica renews the
    lease, so the other replica's sweep and Telegram's re-post leave it; one whose send failed is let go."""
    first, second = ChatService(storage), ChatService(storage)
    await first.handle("tg:7", "tg:7:7", text="/new", update_id=41)  # being sent: waits behind the pace
    await first.handle("tg:8", "tg:8:8", text="/new", update_id=43)
    first.replies_not_sent(43)  # its send failed every try: left for the sweep
    assert set(first.sending.since) == {41}
    await expire(storage, 41)  # the lease would have run out meanwhile...
    await expire(storage, 43)
    assert await first.sending.renew() == 1  # ...but the renewal (every quarter lease) moves it on
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    lease = (await kept(storage, 41))[2]
    assert lease is not None
    assert now < lease <= now + first.reply_lease
    assert await second.left_replies() == [(43, "tg:8:8", [Reply(f"{MAY_REPEAT}\nWhich drug?", DRUGS)])]
    assert set(second.sending.since) == {43}  # the sweep's sends keep their lease too
    with pytest.raises(InFlightError):  # Telegram's post of 41 meanwhile: its replica is still sending
        await second.handle("tg:7", "tg:7:7", text="/new", update_id=41)
    await first.replies_sent(41)
    assert len(first.sending) == 0
    assert await first.sending.renew() == 0  # nothing in hand: no statement
    # A replica that took over an update renews it; the first, whose lease it was, no longer can.
    await first.handle("tg:9", "tg:9:9", text="/new", update_id=44)
    await expire(storage, 44)
    await second.handle("tg:9", "tg:9:9", text="/new", update_id=44)
    assert await first.sending.renew() == 0
    assert await second.sending.renew() == 2  # 43 and 44
    # A send that never said it ended is renewed for KEEP_RENEWING at most, then left to the sweep.
    second.sending.since[44] -= updates_module.KEEP_RENEWING.total_seconds() + 1
    assert await second.sending.renew() == 1
    assert set(second.sending.since) == {43}


@dataclass
class FailingRequest(RecordingRequest):
    """The offline Bot API whose next `fails` sendMessage calls fail: 502 (Bad Gateway), or with `time_out`
    a time-out (the message may have arrived); each failed try counted."""

    fails: int = 0
    time_out: bool = False
    refused: int = 0

    async def do_request(self, url: str, method: str, request_data: Any = None, *args: Any, **kwargs: Any) -> Any:
        if self.fails and url.endswith("/sendMessage"):
            self.fails -= 1
            self.refused += 1
            if self.time_out:
                raise TimedOut
            return 502, b"<html>Bad Gateway</html>"
        return await super().do_request(url, method, request_data, *args, **kwargs)


@contextlib.asynccontextmanager
async def webhook_application(service: ChatService, request: RecordingRequest) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    """python-telegram-bot's Application over the offline Bot API, in webhook mode (each update once)."""
    application = build_application(TOKEN, service, None, request=request, polling=False)
    application.bot_data[ONCE] = True
    await application.initialize()
    try:
        yield application
    finally:
        await application.shutdown()


async def test_a_reply_whose_send_fails_every_try_is_left_to_the_sweep_and_the_user_is_not_told_fault(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
):
    """Webhook mode: the update committed (the chat took the answer and asks the next question). FAULT ("send
    your last answer again") would have the user's answer taken twice; the kept replies go out with the note."""
    monkeypatch.setattr(sending_module, "_backoff", wait_none())
    service = ChatService(storage)
    request = FailingRequest(fails=sending_module.REPLY_ATTEMPTS + 1)  # a FAULT tried after them would fail too
    async with webhook_application(service, request) as application:
        await application.process_update(Update.de_json(message_update(41, 7, 7, "/new"), application.bot))
        assert request.refused == sending_module.REPLY_ATTEMPTS  # the question, tried 5 times; no FAULT tried
        assert len(service.sending) == 0  # its lease is no longer renewed
        assert (await kept(storage, 41))[0] is not None
        request.fails = 0
        await expire(storage, 41)
        assert await resend_left(application, service) == 1
        [sent] = request.take()
        assert (sent.chat_id, sent.text) == (7, f"{MAY_REPEAT}\nWhich drug?")


async def test_the_sweep_and_the_lease_renewal_run_as_jobs_of_their_own(storage: Storage):
    """The sweep had run inside the reminders' tick, which waits for a whole reminder run (over a minute for
    a thousand due): now every half lease, at start-up first; the renewal every quarter lease."""
    service = ChatService(storage)
    request = RecordingRequest()
    application = build_application(TOKEN, service, None, request=request, polling=False)
    start_reminders(application, service)
    keep_replies_moving(application, service)
    assert application.job_queue is not None
    [sweep] = application.job_queue.get_jobs_by_name("left replies")
    [renewal] = application.job_queue.get_jobs_by_name("reply leases")
    lease = service.reply_lease.total_seconds()
    assert cast(Any, sweep.trigger).interval.total_seconds() == lease / 2
    assert cast(Any, renewal.trigger).interval.total_seconds() == lease / 4
    await application.initialize()
    try:
        killed = ChatService(storage)
        await killed.handle("tg:7", "tg:7:7", text="/new", update_id=41)  # committed, never sent
        await expire(storage, 41)
        [reminders] = application.job_queue.get_jobs_by_name("reminders")
        await reminders.run(application)
        assert request.take() == []  # the reminders' tick leaves it to the sweep
        await sweep.run(application)
        assert [(m.chat_id, m.text) for m in request.take()] == [(7, f"{MAY_REPEAT}\nWhich drug?")]
    finally:
        await application.shutdown()


async def test_a_reply_sent_again_after_a_kill_and_retried_after_a_time_out_carries_the_note_once(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(sending_module, "_backoff", wait_none())
    killed, survivor = ChatService(storage), ChatService(storage)
    request = FailingRequest(fails=1, time_out=True)
    async with webhook_application(survivor, request) as application:
        await killed.handle("tg:7", "tg:7:7", text="/new", update_id=41)  # committed, never sent
        await expire(storage, 41)
        await application.process_update(Update.de_json(message_update(41, 7, 7, "/new"), application.bot))
        assert [m.text for m in request.take()] == [f"{MAY_REPEAT}\nWhich drug?"]


async def test_long_polling_a_reply_not_sent_does_not_ask_for_the_answer_again(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
):
    """Long polling keeps no replies: when the reply to a taken answer cannot be sent, the user is told so and
    pointed to /help, not asked to send their answer again (it would answer the question now open)."""
    monkeypatch.setattr(sending_module, "_backoff", wait_none())
    service = ChatService(storage)
    request = FailingRequest(fails=sending_module.REPLY_ATTEMPTS)  # every try of the reply; the notice then goes
    application = build_application(TOKEN, service, None, request=request, polling=False)
    await application.initialize()
    try:
        await service.handle("tg:7", "tg:7:7", text="/new")
        update = Update.de_json(message_update(41, 7, 7, "/cancel"), application.bot)
        await application.process_update(update)
        assert [m.text for m in request.take()] == [REPLY_NOT_SENT]
        assert REPLY_NOT_SENT == (
            "My last reply did not reach you. Your answer was taken: send /help to see the question now open."
        )
    finally:
        await application.shutdown()


async def test_a_refused_update_is_recorded_too(storage: Storage):
    service = ChatService(storage)
    [refusal, *_] = await service.handle("tg:7", "tg:7:7", text="x" * 5000, update_id=9)
    assert refusal.text == (
        "That message is 5,000 characters long; an answer here is never more than 1,000. Nothing from it was "
        "entered. Send a shorter answer:"
    )
    await service.replies_sent(9)
    assert await service.handle("tg:7", "tg:7:7", text="x" * 5000, update_id=9) == []


async def test_without_an_update_id_nothing_is_recorded(storage: Storage):
    """Long polling and the terminal chat: getUpdates' offset (or the terminal) gives each update once."""
    service = ChatService(storage)
    for _ in range(2):
        assert [r.text for r in await service.handle("tg:7", "tg:7:7", text="/new")] == ["Which drug?"]
    assert await handled(storage) == []


async def test_handled_ids_are_kept_a_day_then_pruned(storage: Storage):
    now = dt.datetime(2026, 12, 2, 9, 0)
    async with storage.session() as session, session.begin():
        assert await claim_update(session, "tg:1:1", 1)
        assert await claim_update(session, "tg:1:1", 2)
        assert not await claim_update(session, "tg:1:1", 1)
        await session.execute(
            update(ProcessedUpdate)
            .where(ProcessedUpdate.update_id == 1)
            .values(handled_at=now - KEEP_HANDLED - dt.timedelta(seconds=1))
        )
        await session.execute(
            update(ProcessedUpdate)
            .where(ProcessedUpdate.update_id == 2)
            .values(handled_at=now - KEEP_HANDLED + dt.timedelta(seconds=1))
        )
    async with storage.session() as session, session.begin():
        assert await prune_updates(session, now) == 1
    async with storage.session() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 1
    assert await handled(storage) == [2]


def test_a_chart_or_a_file_is_kept_by_its_caption_and_says_it_is_not_sent_again():
    from flows.reminders import FILE_NOT_RESENT
    from flows.replies import Document, Photo

    buttons = ((Button("History", "rh:RX-12"),),)
    kept = updates_module.stored(
        [
            Reply("Saved to RX-12.", buttons),
            Photo("RX-12 · platelets", buttons, png=b"\x89PNG", filename="trend.png"),
            Reply("Clinical note for RX-12", document=Document("RX-12-note.txt", b"note", "text/plain")),
        ]
    )
    assert kept == [
        {"text": "Saved to RX-12.", "buttons": [[["History", "rh:RX-12"]]]},
        {"text": f"RX-12 · platelets\n{FILE_NOT_RESENT}", "buttons": [[["History", "rh:RX-12"]]]},
        {"text": f"Clinical note for RX-12\n{FILE_NOT_RESENT}", "buttons": []},
    ]
