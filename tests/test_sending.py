"""The Telegram sender: limits on every send, which faults are retried, which are final."""

from __future__ import annotations

import json
from typing import Any

import pytest
from telegram.error import BadRequest, Forbidden, NetworkError, TimedOut

from bot.offline import TOKEN, RecordingRequest
from bot.reminders import DeliveryError
from bot.sending import OVERALL_PER_SECOND, PER_CHAT_PER_SECOND, TelegramSender, send_retried
from bot.telegram_app import build_application


class Spy:
    """Stands for an aiolimiter bucket; records which chat asked for a slot."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def acquire(self) -> None:
        self.log.append(self.name)


async def sender_with(request: RecordingRequest, **options: Any) -> TelegramSender:
    app = build_application(TOKEN, None, None, request=request, polling=False)
    await app.bot.initialize()

    async def no_sleep(_seconds: float) -> None:
        return None

    return TelegramSender(app.bot, sleep=no_sleep, **options)


async def test_each_send_takes_a_slot_of_its_chat_and_of_the_overall_limit():
    sender = await sender_with(RecordingRequest())
    assert sender.overall is not None  # one message at a time, 26/s alone (bot.sending.BotPace)
    overall = sender.overall
    assert (overall.per_second, overall.max_rate, overall.time_period) == (OVERALL_PER_SECOND, 1, 1 / 26)
    log: list[str] = []
    sender.overall = Spy("overall", log)  # type: ignore[assignment]
    sender.chats[5] = Spy("chat 5", log)  # type: ignore[assignment]
    await sender("tg:5:5", "one", [])
    await sender("tg:5:5", "two", [[["Taken", "oc:t:1"]]])
    assert log == ["chat 5", "overall", "chat 5", "overall"]
    await sender("tg:6:6", "three", [])
    fresh = sender.chats[6]
    assert (fresh.max_rate, fresh.time_period) == (PER_CHAT_PER_SECOND, 1) == (1, 1)


class Answers(RecordingRequest):
    """sendMessage answers with the given (status, body) pairs first, then as Telegram would."""

    def __init__(self, answers: list[tuple[int, dict[str, Any]] | Exception]) -> None:
        super().__init__()
        self.answers = answers

    async def do_request(self, url: str, method: str, request_data: Any = None, *args: Any, **kw: Any) -> Any:
        if url.endswith("/sendMessage") and self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer[0], json.dumps(answer[1]).encode()
        return await super().do_request(url, method, request_data, *args, **kw)


async def test_retry_after_and_server_errors_are_retried_until_accepted():
    request = Answers(
        [
            (
                429,
                {"ok": False, "error_code": 429, "description": "Too Many Requests", "parameters": {"retry_after": 7}},
            ),
            (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}),
        ]
    )
    sender = await sender_with(request, limits=False)
    assert await sender("tg:5:5", "hello", []) == 1
    assert [m.text for m in request.sent] == ["hello"]


async def test_a_blocked_bot_or_a_gone_chat_is_a_final_failure():
    blocked = await sender_with(Answers([Forbidden("bot was blocked by the user")]), limits=False)
    with pytest.raises(DeliveryError) as raised:
        await blocked("tg:5:5", "hello", [])
    assert (raised.value.permanent, raised.value.blocked) == (True, True)  # blocked: the reminders pause
    assert str(raised.value) == "Forbidden: bot was blocked by the user"
    gone = Answers([(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})])
    with pytest.raises(DeliveryError) as raised:
        await (await sender_with(gone, limits=False))("tg:5:5", "hello", [])
    assert (raised.value.permanent, raised.value.blocked) == (True, False)
    assert gone.sent == []


async def test_a_network_that_stays_down_is_a_failure_to_retry_later():
    down = Answers([(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})] * 10)
    with pytest.raises(DeliveryError) as raised:
        await (await sender_with(down, limits=False, attempts=3))("tg:5:5", "hello", [])
    assert not raised.value.permanent


async def test_a_reply_is_sent_again_after_a_502_and_with_the_note_after_a_time_out():
    tries: list[bool] = []
    faults: list[Exception] = [NetworkError("Bad Gateway"), TimedOut()]

    async def send(noted: bool) -> None:
        tries.append(noted)
        if faults:
            raise faults.pop(0)

    await send_retried(send)
    assert tries == [False, False, True]  # after the time-out the reply may have arrived: the note


async def test_a_reply_refused_for_good_is_not_sent_again():
    tries: list[bool] = []

    async def send(noted: bool) -> None:
        tries.append(noted)
        raise BadRequest("Message is too long")

    with pytest.raises(BadRequest):
        await send_retried(send)
    assert tries == [False]
