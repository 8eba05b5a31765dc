"""One update of any transport: load the chat's state, run the flow, save state and effects, reply.

Telegram and the terminal chat both call `ChatService.handle`, so they behave the same. Each
update is one database transaction: if anything fails, nothing of it is half-saved and the chat
is still at the question it was at.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from bot import export_replies as exports
from bot import record_edits
from bot import trend_replies as trends
from bot.followup_record import follow_up_record
from bot.limits import BAD_BUTTON, fit, too_long, valid_button
from bot.reminders import Reminders
from bot.storage import Storage, corrections
from bot.storage.repository import ChatRow
from bot.storage.session import DbSession
from bot.storage.tables import User
from bot.storage.updates import (
    REPLY_LEASE,
    RepliesInHand,
    SentMarks,
    claim_update,
    keep_replies,
    take_left,
    take_over,
)
from flows import consultation, followup, listings, trend
from flows.answers.patient import PATIENT_BUTTONS
from flows.buttons import page_button
from flows.consultation import ask_patient, refuse
from flows.conversation_parts import State
from flows.reminders import known_zone
from flows.replies import (
    AuditRecommendation,
    Env,
    PatientSummary,
    Reply,
    SaveConsultation,
    ScheduleReminders,
    SetTimeZone,
    UserInput,
    request_json,
)
from flows.routes import ROUTES, Owner, Routed, route
from flows.state import ChatState

Clock = Callable[[], dt.datetime]  # aware "now"
# A route the service answers: (service, session, the chat's row, chat_ref, its state, today, what was routed).
ServiceRoute = Callable[
    ["ChatService", DbSession, ChatRow, str, ChatState, dt.date, Routed], Coroutine[Any, Any, list[Reply]]
]
PRIVATE_ONLY = "HemaDose works in private chats only: open a private chat with the bot."

run_flow = consultation.run  # one update through the flow (a name of its own: tests count the runs)


def private(chat_ref: str) -> bool:
    """Only a private chat may carry patient data. A Telegram chat is 'tg:<chat>:<user>', and a
    private chat's id is its user's id (groups and channels have other, negative ids); terminal chats
    ('local:<name>') are private."""
    parts = chat_ref.split(":")
    return not (parts[0] == "tg" and len(parts) == 3 and parts[1] != parts[2])


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ChatService:
    def __init__(
        self,
        storage: Storage,
        default_time_zone: str = "UTC",
        clock: Clock = system_clock,
        reply_lease: dt.timedelta = REPLY_LEASE,
    ) -> None:
        self.storage = storage
        self.reply_lease = reply_lease
        self.default_time_zone = default_time_zone
        self.clock = clock
        self.reminders = Reminders(storage, clock, default_time_zone)
        self.sent = SentMarks(storage, self.reminders.owner)  # replies sent, their marks not yet written
        self.sending = RepliesInHand(storage, self.reminders.owner, reply_lease)  # kept, being sent: leases renewed

    async def handle(
        self,
        user_ref: str,
        chat_ref: str,
        text: str | None = None,
        button: str | None = None,
        *,
        update_id: int | None = None,
    ) -> list[Reply]:
        """`user_ref` and `chat_ref` are opaque keys ('tg:123'); every query is scoped to the user.

        `update_id` (webhook mode, several replicas): the chat's updates are handled one at a time,
        in the update's own transaction, which also keeps its replies until the caller has sent them
        (`replies_sent`). An update handled already is dropped (no replies) once its replies were
        sent; else they are returned again with the may-repeat note when the replica that handled it
        let its lease expire, and `InFlightError` is raised while that lease runs (bot.storage.updates).

        Bounded on the way in (an over-long message or a damaged button is refused before anything
        reads it) and on the way out (no reply longer than Telegram takes), for every transport.
        """
        if not private(chat_ref):  # nothing is read, written or scheduled for a group or a channel
            return [Reply(PRIVATE_ONLY)]
        refusal = too_long(text) or (BAD_BUTTON if button is not None and not valid_button(button) else None)
        sent: list[int] = []  # updates whose replies were sent since: marked in this transaction
        try:
            async with self.storage.session() as session, session.begin():
                if update_id is not None and not await claim_update(session, chat_ref, update_id):
                    if update_id in self.sent:  # sent by this replica, its mark not yet written
                        return []
                    # Handled already (by this replica or another): dropped, or its unsent replies taken.
                    taken = fit(await take_over(session, update_id, self.reminders.owner, self.reply_lease))
                    if taken:
                        self.sending.add(update_id)
                    return taken
                if refusal is not None:
                    replies = fit(await self._refuse(session, user_ref, chat_ref, refusal))
                else:
                    replies = fit(await self._handle(session, user_ref, chat_ref, text, button))
                if update_id is not None and replies:  # kept until sent (`replies_sent`), in this transaction
                    sent = self.sent.take()
                    owner, lease = self.reminders.owner, self.reply_lease
                    await keep_replies(session, update_id, replies, owner, lease, sent=sent)
        except BaseException:
            self.sent.restore(sent)  # not written (the transaction failed): marked later
            raise
        if update_id is not None and replies:
            self.sending.add(update_id)
        # A chart is drawn after the transaction (bot/trend_replies.py); kept above by its caption only.
        return fit([await trends.draw(reply) for reply in replies])

    async def replies_sent(self, update_id: int) -> None:
        """The replies `handle(update_id=...)` returned were sent: a later post of the update is dropped
        (marked with the next update's replies, or within a second: bot.storage.updates.SentMarks)."""
        self.sending.discard(update_id)
        self.sent.add(update_id)

    def replies_not_sent(self, update_id: int) -> None:
        """Sending them failed or stopped: their lease is no longer renewed, so once it expires the sweep
        (or a post of the update) sends them, with the may-repeat note."""
        self.sending.discard(update_id)

    async def flush_sent(self) -> None:
        """Mark now what was sent and not yet marked (at a stop, after a sweep)."""
        await self.sent.flush()

    async def left_replies(self) -> list[tuple[int, str, list[Reply]]]:
        """Replies a replica handled and did not send before its lease expired (killed, stopped),
        taken by this one to send with the may-repeat note: (update id, chat key, replies)."""
        async with self.storage.session() as session, session.begin():
            left = await take_left(session, self.reminders.owner, self.reply_lease)
        for update_id, _, _ in left:
            self.sending.add(update_id)
        return [(update_id, chat_key, fit(replies)) for update_id, chat_key, replies in left]

    async def _refuse(self, session: DbSession, user_ref: str, chat_ref: str, refusal: str) -> list[Reply]:
        """The refusal and the question now open, asked again; the chat's state is left as it was."""
        row = await self.storage.open_chat(session, user_ref, chat_ref)
        notice = await self.reminders.undelivered_notice(session, row.user_id)
        today = self.clock().astimezone(ZoneInfo(row.time_zone or self.default_time_zone)).date()
        chat = ChatState.model_validate_json(row.state) if row.state else ChatState()
        patients = {}
        if chat.state == State.patient:  # the question's buttons: the user's patients
            patients = await self._patients(session, row.user_id, today, chat, UserInput())
        outcome = refuse(chat, Env(today, patients, row.time_zone, self.clock()), refusal)
        return [*notice, *outcome.replies]

    async def _handle(
        self, session: DbSession, user_ref: str, chat_ref: str, text: str | None, button: str | None
    ) -> list[Reply]:
        storage = self.storage
        # The user (created on first contact) with their time zone, and this chat's state: one query.
        row = await storage.open_chat(session, user_ref, chat_ref)
        # Reminders paused because the user had blocked the bot: told once, on this message.
        notice = await self.reminders.undelivered_notice(session, row.user_id)
        today = self.clock().astimezone(ZoneInfo(row.time_zone or self.default_time_zone)).date()
        chat = ChatState.model_validate_json(row.state) if row.state else ChatState()
        if button is None and text and chat.state == State.result:
            # The card's Trend typed by its label: the consultation's patient (flows/trend.py).
            typed_trend = trend.typed_button(text, chat.answers.patient_label)
            button, text = (typed_trend, None) if typed_trend is not None else (button, text)
        if button is None and text and not text.strip().startswith("/") and chat.offered_record:
            # A record message's button typed by its label ("Same regimen, new result").
            typed = followup.typed_button(text, chat.offered_record)
            button, text = (typed, None) if typed is not None else (button, text)
        routed = route(text, button)  # the one routing table (flows/routes.py)
        if chat.record_edit is not None:  # a correction under way (/patient) takes the answer, or is left
            if record_edits.answers_edit(routed):
                typed = button[2:] if button and button.startswith("v:") else routed.data or text or ""
                edited = await record_edits.on_answer(self, session, row, chat_ref, chat, today, typed)
                return [*notice, *edited]
            chat.record_edit = None  # left: saved now, whatever answers this update
            await storage.save_chat(session, row, chat_ref, chat.model_dump_json(exclude_defaults=True))
            row = row._replace(state=chat.model_dump_json(exclude_defaults=True))
        if routed.route is not None and routed.route.owner == Owner.SERVICE:
            answer = self._ROUTES[routed.route.name]
            return [*notice, *await answer(self, session, row, chat_ref, chat, today, routed)]
        # The record is read while a patient is being chosen; the consultation keeps a copy.
        message = UserInput(text=text, button=button)
        patients = (
            await self._patients(session, row.user_id, today, chat, message) if chat.state == State.patient else {}
        )
        if routed.route is not None and routed.route.name == "record":
            # A follow-up (or a full consultation) for one patient: their record, nobody else's.
            record = await follow_up_record(self.storage, session, row.user_id, routed.argument, today)
            patients = {record.label: record} if record is not None else {}
        now = self.clock()
        # One run. Where it reaches the patient question, the flow leaves that question's place and
        # the user's patients are read for it then (`ask_patient`), not for every update.
        done = run_flow(chat, message, Env(today, patients, row.time_zone, now))
        outcome = done.outcome
        if done.patient_question_at is not None:
            patients = await self._patients(session, row.user_id, today, done.chat, message)
            outcome = ask_patient(done, Env(today, patients, row.time_zone, now))
        chat = done.chat
        await storage.save_chat(session, row, chat_ref, chat.model_dump_json(exclude_defaults=True))
        zone = row.time_zone or self.default_time_zone
        for effect in outcome.effects:
            if isinstance(effect, SaveConsultation):
                changes = await storage.save_consultation(session, row.user_id, effect)
                await corrections.remember_save(
                    session, row.user_id, chat_ref, effect.patient_label, request_json(effect.request), changes
                )
            elif isinstance(effect, AuditRecommendation):
                await storage.audit(session, row.user_id, effect)
            elif isinstance(effect, SetTimeZone):
                zone = effect.zone
                await self._set_zone(session, row.user_id, zone)
            elif isinstance(effect, ScheduleReminders):
                await self.reminders.schedule(session, row.user_id, chat_ref, effect, zone)
        return [*notice, *outcome.replies]

    # --- the service's routes (flows/routes.py, owner SERVICE): what needs the user's records -------

    async def _on_patients(
        self, session: DbSession, row: ChatRow, chat_ref: str, chat: ChatState, today: dt.date, routed: Routed
    ) -> list[Reply]:
        if not (routed.command and routed.argument):
            # A page of the list (the first, or the one a Previous/Next button asks), read afresh.
            pressed = page_button(routed.data)
            listed = await self.storage.patient_page(
                session, row.user_id, pressed.page if pressed is not None else 1, listings.PATIENTS_PAGE
            )
            return [listings.patients(listed.entries, listed.page, listed.pages, listed.total)]
        # /patients LABEL: one patient's record, to follow up in a few messages.
        record = await follow_up_record(self.storage, session, row.user_id, routed.argument, today)
        if record is None:
            return [Reply(followup.unknown(routed.argument))]
        chat.offered_record = record.label  # its buttons may be typed by their labels
        await self.storage.save_chat(session, row, chat_ref, chat.model_dump_json(exclude_defaults=True))
        return [followup.record_message(record, Env(today))]

    async def _on_history(
        self, session: DbSession, row: ChatRow, chat_ref: str, chat: ChatState, today: dt.date, routed: Routed
    ) -> list[Reply]:
        pressed = page_button(routed.data)  # Previous/Next on a page of it
        if pressed is not None:
            return [await self._history(session, row.user_id, pressed.label, pressed.page)]
        return [await self._history(session, row.user_id, routed.argument)]

    async def _on_settings(
        self, session: DbSession, row: ChatRow, chat_ref: str, chat: ChatState, today: dt.date, routed: Routed
    ) -> list[Reply]:
        return [await self._settings(session, row.user_id, row.time_zone, routed.argument)]

    async def _on_reminders(
        self, session: DbSession, row: ChatRow, chat_ref: str, chat: ChatState, today: dt.date, routed: Routed
    ) -> list[Reply]:
        button = None if routed.data == "reminders" else routed.data  # the Change reminders button is /reminders
        return await self._reminders(session, row.user_id, row.time_zone, button)

    async def import_document(
        self, user_ref: str, chat_ref: str, name: str, content: bytes, *, update_id: int | None = None
    ) -> list[Reply]:
        """A file sent to the bot, imported into this user's records (bot/export_replies.py)."""
        if not private(chat_ref):
            return [Reply(PRIVATE_ONLY)]
        return await exports.import_document(self, user_ref, chat_ref, name, content, update_id=update_id)

    _ROUTES: ClassVar[dict[str, ServiceRoute]] = {
        "patients": _on_patients,
        "history": _on_history,
        "export": exports.on_export,
        "trend": trends.on_trend,
        "settings": _on_settings,
        "reminders": _on_reminders,
        "patient": record_edits.on_patient,
        "undo": record_edits.on_undo,
    }

    async def _patients(
        self, session: DbSession, user_id: int, today: dt.date, chat: ChatState, message: UserInput
    ) -> dict[str, PatientSummary]:
        """The labels the patient question offers (its first few, LIMIT-ed), with the full record of
        the one picked or typed, found by index: the user's other patients are not read."""
        labels = await self.storage.first_labels(session, user_id, PATIENT_BUTTONS)
        patients = {label: PatientSummary(label=label) for label in labels}
        button = message.button or ""
        picked = button.removeprefix("v:") if button else (message.text or "").strip()
        # Every label the answer matches ignoring case, with its record (as the flow matches labels).
        matching = picked and chat.state == State.patient
        chosen = await self.storage.labels_like(session, user_id, picked) if matching else []
        if chosen:
            records = await self.storage.summaries(session, user_id, today, labels=chosen)
            patients |= {label: records.get(label) or PatientSummary(label=label) for label in chosen}
        return patients

    async def _history(self, session: DbSession, user_id: int, label: str, page: int = 1) -> Reply:
        if not label:
            return Reply("Which patient? Type /history LABEL, e.g. /history RX-12. /patients lists your labels.")
        found = await self.storage.history_page(session, user_id, label, page, listings.HISTORY_PAGE)
        if found is None:
            return Reply(f"You have no patient labelled '{label}'. /patients lists your labels.")
        recorded, events = found  # the label as recorded, and one page of its entries
        return listings.history(recorded, events.entries, events.page, events.pages, events.total)

    async def _settings(self, session: DbSession, user_id: int, time_zone: str | None, argument: str) -> Reply:
        parts = argument.split()
        if len(parts) == 2 and parts[0].lower() in ("timezone", "tz"):
            zone = known_zone(parts[1])
            if zone is None:
                return Reply(f"'{parts[1]}' is not a time zone I know. Use an Area/City name, e.g. Europe/London.")
            await self._set_zone(session, user_id, zone)
            return Reply(f"Time zone set to {zone}. Dates ('today') and reminders now follow it.")
        zone = time_zone or f"{self.default_time_zone} (the default)"
        return Reply(
            f"Settings:\n• Time zone: {zone}\nChange it with /settings timezone Area/City, "
            "e.g. /settings timezone Europe/Berlin."
        )

    async def _set_zone(self, session: DbSession, user_id: int, zone: str) -> None:
        user = await session.get(User, user_id)
        assert user is not None
        user.time_zone = zone
        await self.reminders.rezone(session, user_id, zone)

    async def _reminders(
        self, session: DbSession, user_id: int, time_zone: str | None, button: str | None
    ) -> list[Reply]:
        """/reminders, its buttons (rm:...), and the answers to a reminder (oc:<action>:<occurrence>[:<day>])."""
        zone = time_zone or self.default_time_zone
        if button is None:
            return [await self.reminders.listing(session, user_id, zone)]
        if button.startswith("rm:"):
            return [await self.reminders.manage(session, user_id, button, zone)]
        return await self.reminders.answer(session, user_id, button, zone)


if set(ChatService._ROUTES) != {r.name for r in ROUTES if r.owner == Owner.SERVICE}:
    raise ImportError("every route the service owns needs its handler in ChatService._ROUTES")
