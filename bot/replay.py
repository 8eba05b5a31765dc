"""Dialogue replay: a YAML conversation run through the real python-telegram-bot `Application`.

The file format (step kinds, expectation keys, the recommendation card rule) is `FORMAT` in
bot/dialogue_format.py, printed by `hemadose replay --help`. `--bless` writes the actual cards into
a file (`bless`); `--show` prints each exchange (`show`); both live in bot/replay_files.py.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from telegram import Update

from bot.offline import TOKEN, RecordingRequest, SentMessage, button_update, document_update, message_update
from bot.replay_files import bless as bless  # re-exported: the CLI and tests import it from here
from bot.replay_files import show as show
from bot.sending import TelegramSender
from bot.service import ChatService
from bot.storage import Storage, open_storage
from bot.telegram_app import build_application


@dataclass
class Mismatch:
    step: int
    action: str
    problem: str
    actual: str

    def report(self) -> str:
        shown = "\n".join(f"    | {line}" for line in self.actual.splitlines()) or "    | (no reply)"
        return f"  step {self.step} ({self.action}): {self.problem}\n  the bot replied:\n{shown}"


@dataclass
class ReplayResult:
    title: str
    steps: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)
    cards: dict[int, list[str]] = field(default_factory=dict)  # step number -> the cards it replied
    replies: dict[int, list[str]] = field(default_factory=dict)  # step number -> every reply's text
    unasserted: list[int] = field(default_factory=list)  # steps with a card not asserted whole

    @property
    def passed(self) -> bool:
        return not self.mismatches


class Harness:
    """The real Application with the offline Bot API, on a database that outlives restarts."""

    def __init__(
        self,
        db_url: str,
        today: dt.date,
        allowed: frozenset[int] | None,
        time_zone: str = "UTC",
        request_factory: Callable[[], RecordingRequest] = RecordingRequest,
    ) -> None:
        self.db_url = db_url
        self.now = dt.datetime.combine(today, dt.time(12, 0), tzinfo=dt.UTC)
        self.allowed = allowed
        self.time_zone = time_zone
        self.update_ids = iter(range(1, 10**9))
        self.errors: list[BaseException] = []
        self.storage: Storage | None = None
        self.service: Any = None
        self.request_factory = request_factory
        self.request = request_factory()
        self.application: Any = None

    async def open_storage(self) -> Storage:
        return await open_storage(self.db_url)

    async def close_storage(self, storage: Storage) -> None:
        await storage.close()

    async def start(self) -> None:
        self.storage = await self.open_storage()
        self.service = ChatService(self.storage, self.time_zone, clock=lambda: self.now)
        self.request = self.request_factory()
        self.application = build_application(TOKEN, self.service, self.allowed, request=self.request, polling=False)
        self.service.reminders.sender = TelegramSender(self.application.bot, limits=False)
        self.service.reminders.chats = "tg:"

        async def fail_replay(update: object, context: Any) -> None:
            self.errors.append(context.error)

        self.application.error_handlers.clear()
        self.application.add_error_handler(fail_replay)
        await self.application.initialize()

    async def stop(self) -> None:
        if self.application is not None:
            await self.application.shutdown()
        if self.storage is not None:
            await self.close_storage(self.storage)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def process(self, update: dict[str, Any]) -> list[SentMessage]:
        await self.application.process_update(Update.de_json(update, self.application.bot))
        return self.request.take()

    async def advance(self, by: dt.timedelta, offline: bool = False) -> list[SentMessage]:
        """Move the clock on, running the reminders at each moment something falls due (as a running
        bot would), or once at the end when the bot was `offline` meanwhile."""
        until = self.now + by
        reminders = self.service.reminders
        while not offline:
            due = await reminders.next_wakeup()
            if due is None or due.replace(tzinfo=dt.UTC) > until:
                break
            self.now = max(self.now, due.replace(tzinfo=dt.UTC))
            await reminders.run_due()
        self.now = until
        await reminders.run_due()
        return self.request.take()

    async def send(self, user: int, text: str) -> list[SentMessage]:
        return await self.process(message_update(next(self.update_ids), user, user, text))

    async def press(self, user: int, message: SentMessage, data: str) -> list[SentMessage]:
        return await self.process(button_update(next(self.update_ids), user, message.message, data))

    async def upload(self, user: int, filename: str, content: bytes) -> list[SentMessage]:
        """The user sends a file (a document message), as Telegram delivers one."""
        file_id = self.request.upload(content)
        return await self.process(document_update(next(self.update_ids), user, user, file_id, filename, len(content)))


CARD_RULE_LINE = "Rule: "
CARD_BUTTON = "Why?"


def is_card(text: str, labels: list[str]) -> bool:
    """A recommendation card: it names its deciding rule on a "Rule: " line and offers Why? (the
    result buttons). The Why? reply and "Saved to ..." carry the buttons but no Rule line."""
    return CARD_BUTTON in labels and any(line.startswith(CARD_RULE_LINE) for line in text.splitlines())


def cards_of(replies: list[SentMessage]) -> list[str]:
    return [r.text for r in replies if is_card(r.text, r.labels())]


def _diff(expected: str, actual: str) -> str:
    lines = difflib.unified_diff(expected.splitlines(), actual.splitlines(), "expected", "actual", lineterm="")
    return "\n".join(lines)


def _block(value: Any) -> str:
    """A `|` block scalar ends with one newline that the reply does not have."""
    return str(value).removesuffix("\n")


def asserts_whole(expect: dict[str, Any], replies: list[SentMessage]) -> bool:
    """Whether `expect` holds the step's card whole: `card`, or `equals` with the card the last reply."""
    if "card" in expect:
        return True
    return "equals" in expect and bool(replies) and is_card(replies[-1].text, replies[-1].labels())


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def check(expect: dict[str, Any], replies: list[SentMessage]) -> list[str]:
    """What in `expect` the replies do not satisfy."""
    text = "\n".join(r.text for r in replies)
    labels = [label for r in replies for label in r.labels()]
    problems = []
    for needle in _listed(expect.get("contains", [])):
        if needle not in text:
            problems.append(f"expected the reply to contain {needle!r}")
    for needle in _listed(expect.get("not_contains", [])):
        if needle in text:
            problems.append(f"expected the reply not to contain {needle!r}")
    if "matches" in expect and not re.search(str(expect["matches"]), text):
        problems.append(f"expected the reply to match /{expect['matches']}/")
    if "equals" in expect:
        last = replies[-1].text if replies else ""
        if last != str(expect["equals"]):
            problems.append(f"the last reply differs:\n{_diff(str(expect['equals']), last)}")
    if "card" in expect:
        wanted = [_block(v) for v in (expect["card"] if isinstance(expect["card"], list) else [expect["card"]])]
        cards = cards_of(replies)
        if not cards:
            problems.append("expected a recommendation card; none was sent")
        elif len(cards) != len(wanted):
            problems.append(f"expected {len(wanted)} recommendation card(s), got {len(cards)}")
        for number, (expected, actual) in enumerate(zip(wanted, cards, strict=False), 1):
            if expected != actual:
                which = f" {number}" if len(wanted) > 1 else ""
                problems.append(f"the recommendation card{which} differs:\n{_diff(expected, actual)}")
    for label in _listed(expect.get("buttons", [])):
        if label not in labels:
            problems.append(f"expected a button {label!r} (buttons: {labels})")
    if "replies" in expect and len(replies) != int(expect["replies"]):
        problems.append(f"expected {expect['replies']} replies, got {len(replies)}")
    sent = {r.document.filename: r.document.content for r in replies if r.document is not None}
    for name in _listed(expect.get("documents", [])):
        if name not in sent:
            problems.append(f"expected a document {name!r} (documents: {sorted(sent)})")
    for needle in _listed(expect.get("file_contains", [])):
        if not any(needle in content.decode("utf-8", "replace") for content in sent.values()):
            problems.append(f"expected a document to contain {needle!r}")
    if "photos" in expect:
        problems += _photo_problems(int(expect["photos"]), [r.photo for r in replies if r.photo is not None])
    return problems


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _photo_problems(wanted: int, photos: list[bytes]) -> list[str]:
    """`photos: N`: N photos sent (sendPhoto), each a PNG; their captions are checked as text."""
    problems = []
    if len(photos) != wanted:
        problems.append(f"expected {wanted} photo(s) sent, got {len(photos)}")
    problems += [f"photo {n} is not a PNG" for n, photo in enumerate(photos, 1) if not photo.startswith(PNG_SIGNATURE)]
    return problems


async def replay(dialogue: dict[str, Any], db_url: str | None = None) -> ReplayResult:
    """Run one dialogue; a fresh temporary database unless `db_url` is given."""
    result = ReplayResult(str(dialogue.get("title", "dialogue")))
    default_user = int(dialogue.get("user", 1001))
    users = {default_user} | {int(s["as"]) for s in dialogue["steps"] if "as" in s}
    allowed = frozenset(int(u) for u in dialogue.get("allowed", sorted(users)))
    today = dialogue.get("today", dt.date(2026, 11, 22))
    today = today if isinstance(today, dt.date) else dt.date.fromisoformat(str(today))
    with tempfile.TemporaryDirectory() as folder:
        harness = Harness(
            db_url or f"sqlite:///{folder}/replay.db", today, allowed, str(dialogue.get("time_zone", "UTC"))
        )
        await harness.start()
        last_seen: dict[int, list[SentMessage]] = {}
        documents: dict[str, bytes] = {}  # every file the bot sent in this dialogue, by name (for `upload: {sent}`)
        try:
            for number, step in enumerate(dialogue["steps"], 1):
                result.steps += 1
                user = int(step.get("as", default_user))
                if step.get("restart"):
                    await harness.restart()
                    result.transcript.append("-- restart: a new Application on the same database --")
                    continue
                if "send" in step:
                    action = f"send {step['send']!r}"
                    result.transcript.append(f"[{number}] user {user}: {step['send']}")
                    replies = await harness.send(user, str(step["send"]))
                elif "press" in step:
                    label = str(step["press"])
                    action = f"press {label!r}"
                    result.transcript.append(f"[{number}] user {user}: [{label}]")
                    found = next((m for m in reversed(last_seen.get(user, [])) if label in m.labels()), None)
                    if found is None:
                        shown = [m.labels() for m in last_seen.get(user, []) if m.buttons][-1:]
                        result.mismatches.append(Mismatch(number, action, f"no button {label!r} to press {shown}", ""))
                        break
                    data = next(b["callback_data"] for row in found.buttons for b in row if b["text"] == label)
                    replies = await harness.press(user, found, data)
                elif "upload" in step:
                    upload = step["upload"]
                    name = str(upload.get("filename") or upload.get("sent"))
                    action = f"upload {name!r}"
                    result.transcript.append(f"[{number}] user {user}: (sends the file {name})")
                    if "sent" in upload and name not in documents:
                        result.mismatches.append(Mismatch(number, action, f"the bot sent no file {name!r}", ""))
                        break
                    content = documents[name] if "sent" in upload else str(upload["content"]).encode("utf-8")
                    replies = await harness.upload(user, name, content)
                elif "advance" in step:
                    action = f"advance {step['advance']}" + (" (offline)" if step.get("offline") else "")
                    result.transcript.append(f"[{number}] -- {action} --")
                    replies = await harness.advance(duration(str(step["advance"])), bool(step.get("offline")))
                else:
                    raise ValueError(f"step {number}: expected send, press, upload, advance or restart: {step}")
                for reply in replies:  # older messages stay pressable; reminders go to their chat's user
                    last_seen.setdefault(reply.chat_id if "advance" in step else user, []).append(reply)
                    if reply.document is not None:
                        documents[reply.document.filename] = reply.document.content
                result.transcript += [_shown(reply) for reply in replies]
                if harness.errors:
                    error = harness.errors.pop()
                    result.mismatches.append(Mismatch(number, action, f"a handler raised {error!r}", ""))
                    break
                expects = step.get("expect", [])
                expects = expects if isinstance(expects, list) else [expects]
                cards = cards_of(replies)
                result.replies[number] = [r.text for r in replies]
                if cards:
                    result.cards[number] = cards
                    if not any(asserts_whole(expect, replies) for expect in expects):
                        result.unasserted.append(number)
                for expect in expects:
                    actual = "\n".join(r.text + (f"  [{'] ['.join(r.labels())}]" if r.buttons else "") for r in replies)
                    result.mismatches += [Mismatch(number, action, p, actual) for p in check(expect, replies)]
        finally:
            await harness.stop()
    return result


def _shown(reply: SentMessage) -> str:
    """A bot reply for people: its text indented under 'bot:', then its buttons."""
    body = reply.text.splitlines() or [""]
    if reply.document is not None:
        body = [f"[file {reply.document.filename}, {len(reply.document.content)} bytes]", *body]
    if reply.photo is not None:
        body = [f"[photo: PNG, {len(reply.photo):,} bytes]", *body]
    lines = [f"  bot: {body[0]}", *(f"       {line}" if line else "" for line in body[1:])]
    if reply.buttons:
        lines.append("       " + " ".join(f"[{label}]" for label in reply.labels()))
    return "\n".join(lines)


_DURATION = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*$")


def duration(text: str) -> dt.timedelta:
    """'25h', '3d', '1h30m', '2d4h' as a time span."""
    match = _DURATION.match(text)
    if match is None or not any(match.groups()):
        raise ValueError(f"advance: {text!r} is not a duration like 25h, 3d or 1h30m")
    days, hours, minutes = (int(part or 0) for part in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes)


class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """YAML keeps the last of two equal keys silently: a second `expect:` in a step would drop the
    first one's checks without a word, so a dialogue with a repeated key is refused."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ValueError(f"line {key_node.start_mark.line + 1}: the key {key!r} is given twice")
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_StrictLoader)
    data.setdefault("title", path.stem)
    return data
