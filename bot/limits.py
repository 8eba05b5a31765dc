"""What comes in and goes out of a chat is bounded: typed text, button data, reply length, pace.

One place for each limit, used by every transport: the service refuses an over-long message or a
malformed button before anything reads it, and cuts every reply to what Telegram accepts (the
terminal gets the same pieces); the Telegram adapter counts each user's pace.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from flows.replies import Photo, Reply

# No clinical answer (a number, a date and a value, a label, a command) comes near this; a message
# this long is pasted by mistake, and refusing it at once keeps the parsers' work small.
MAX_TEXT = 1000
# Telegram's limit for one message: 4,096 characters, counted here in UTF-16 code units (an emoji
# counts two), which is never less than what Telegram counts.
MAX_REPLY = 4096
MAX_PARTS = 5  # a longer reply is cut after this many messages, with a note
CUT_NOTE = "… (cut: too long to show in the chat)"
MAX_BUTTON_BYTES = 64  # Telegram's limit for callback data; nothing longer was ever sent
_ID = r"\d{1,18}"  # a database id: 18 digits fit any 64-bit integer column
# Reminder buttons carry ids: oc:<action>:<occurrence>[:YYYYMMDD] and rm:<action>:<reminder>[:HHMM].
_REMINDER_BUTTON = re.compile(rf"oc:[a-z]:{_ID}(?::\d{{8}})?|rm:[a-z]:{_ID}(?::\d{{4}})?")

TOO_LONG = (
    "That message is {length:,} characters long; an answer here is never more than {limit:,}. "
    "Nothing from it was entered. Send a shorter answer:"
)
BAD_BUTTON = "I did not understand that button (it is not one I sent, or it was damaged); nothing was changed."


def too_long(text: str | None) -> str | None:
    """The refusal for a message over MAX_TEXT, or None when it is short enough to read."""
    if text is None or len(text) <= MAX_TEXT:
        return None
    return TOO_LONG.format(length=len(text), limit=MAX_TEXT)


def valid_button(data: str | None) -> bool:
    """Button data as this assistant sends it: at most 64 bytes, printable, ids of a sane size.

    Checked once on the way in, so a forged or damaged button (a 25-digit id, a control character)
    never reaches a query (SQLite refuses integers over 64 bits with OverflowError).
    """
    if not data or len(data) > MAX_BUTTON_BYTES or len(data.encode("utf-8", "surrogatepass")) > MAX_BUTTON_BYTES:
        return False
    if not data.isprintable():
        return False
    if data.startswith(("oc:", "rm:")):
        return _REMINDER_BUTTON.fullmatch(data) is not None
    return True


def units(text: str) -> int:
    """Length as Telegram measures it (UTF-16 code units)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _cut(line: str, limit: int) -> str:
    """The start of a line too long for one message, with the note (by code points, then checked)."""
    room = limit - units(CUT_NOTE) - 1
    head = line[:room]
    while units(head) > room:  # astral characters count two
        head = head[: len(head) - max(1, (units(head) - room) // 2)]
    return f"{head} {CUT_NOTE}"


def split_text(text: str, limit: int = MAX_REPLY, parts: int = MAX_PARTS) -> list[str]:
    """The text in pieces of at most `limit`, split between lines; a line too long is cut with a note,
    and after `parts` pieces the rest is left out with a note."""
    if units(text) <= limit:
        return [text]
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if units(line) > limit:
            line = _cut(line, limit)
        added = units(line) + (1 if current else 0)
        if current and size + added > limit:
            pieces.append("\n".join(current))
            current, size = [], 0
            added = units(line)
            if len(pieces) == parts:
                left = len(lines) - index
                note = f"… ({left} more line{'s' if left != 1 else ''} not shown: too long for the chat)"
                last = pieces[-1].split("\n")
                while last and units("\n".join([*last, note])) > limit:
                    last.pop()
                pieces[-1] = "\n".join([*last, note])
                return pieces
        current.append(line)
        size += added
    pieces.append("\n".join(current))
    return pieces


def fit(replies: Iterable[Reply]) -> list[Reply]:
    """Every reply within Telegram's limit: a long one is sent as several messages (split between
    lines), its buttons on the last; the transports (Telegram, the terminal) send these as they are."""
    fitted: list[Reply] = []
    for reply in replies:
        texts = split_text(reply.text)
        if len(texts) == 1 or isinstance(reply, Photo):  # a photo's caption is kept short where it is written
            fitted.append(reply)
            continue
        fitted += [Reply(text) for text in texts[:-1]]
        fitted.append(Reply(texts[-1], reply.buttons, reply.numeric, reply.document))
    return fitted


SLOW_DOWN = (
    "You are sending messages very quickly. I answer each one in order and nothing is lost, "
    "but please wait for each reply before sending the next."
)


class FloodGate:
    """Counts each user's updates over a sliding window; says when to send the slow-down note.

    Nothing is dropped: every update is still handled, in order. Over `limit` updates within
    `window` seconds the user is told once; the note comes again only after another window.
    """

    def __init__(
        self, limit: int = 20, window: float = 10.0, clock: Callable[[], float] = time.monotonic, kept: int = 10_000
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.kept = kept  # the most recently seen users are tracked; memory stays bounded
        self.seen: OrderedDict[int, deque[tuple[float, int | None]]] = OrderedDict()  # (time, update id)
        self.warned: dict[int, float] = {}

    def arrived(self, user: int, update_id: int | None = None) -> bool:
        """Count one update; True when this one should also get the slow-down note. An update posted
        again (webhook: Telegram retries one not answered 200, every second while a lease runs) is the
        same message, not a new one: counted once."""
        now = self.clock()
        times = self.seen.pop(user, None) or deque()
        self.seen[user] = times
        if len(self.seen) > self.kept:
            gone, _ = self.seen.popitem(last=False)
            self.warned.pop(gone, None)
        while times and times[0][0] <= now - self.window:
            times.popleft()
        if update_id is not None and any(seen == update_id for _, seen in times):
            return False
        times.append((now, update_id))
        if len(times) <= self.limit:
            return False
        last = self.warned.get(user)
        if last is not None and now - last < self.window:
            return False
        self.warned[user] = now
        return True
