"""The terminal chat: the same flows and storage as the bot, buttons shown as numbered choices.

A button is picked by typing #N (in any question), a plain N (where the question does not take a
number), or its label.

Reads standard input line by line, so it can be scripted: printf '/new\n1\n...' | hemadose chat.
With --record FILE, the session is written as a replayable dialogue (see bot/replay.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import logging
import signal
import sys
import threading
import unicodedata
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import yaml

from bot.reminders import stored_buttons
from bot.service import ChatService
from bot.storage.files import write_private, write_private_bytes
from flows.replies import Button, Photo, Reply
from flows.routes import Owner, route

BYE = "Bye — your consultation is saved; `hemadose chat` resumes it."
NUMERIC_HINT = "(#N picks a button; a number typed alone is your answer)"
UNREADABLE = "I could not read that line: it is not {encoding} text. Nothing was taken from it; please type it again."
NOT_SAVED = (
    "Not saved: {cause}. That answer was not stored; everything saved before it is kept. {fix} it again, or /quit."
)
REMINDERS_NOT_CHECKED = (
    "Reminders could not be checked: {cause}. They are kept and checked again after your next answer."
)
log = logging.getLogger("hemadose.terminal")


class Ended(NamedTuple):
    handled: int  # messages handled
    interrupted: bool  # ended by Ctrl-C (the caller exits 130), not by end of input or /quit
    unsaved: int = 0  # answers the storage refused (disk full, ...): the caller exits 1


class UnreadableLineError(Exception):
    """A line of standard input that is not text in its encoding (e.g. bytes \xff on a UTF-8 stdin)."""

    def __init__(self, encoding: str) -> None:
        super().__init__(encoding)
        self.encoding = encoding


def storage_problem(exc: BaseException) -> tuple[str, str]:
    """Why a write failed, for one line to the user, and what to do (disk full, read-only, locked, ...)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    words = " ".join(str(e) for e in seen).lower()
    numbers = {e.errno for e in seen if isinstance(e, OSError)}
    if "database or disk is full" in words or numbers & {errno.ENOSPC, errno.EDQUOT}:
        return "the disk is full (database or disk is full)", "Free some space, then type"
    if "readonly database" in words or "read-only" in words or numbers & {errno.EROFS, errno.EACCES}:
        return "the database cannot be written (read-only)", "Check the file's permissions, then type"
    if "database is locked" in words or "database is busy" in words:
        return "the database is busy (locked by another process)", "Wait a moment, then type"
    if "disk i/o error" in words or numbers & {errno.EIO}:
        return "a disk I/O error", "Check the disk, then type"
    return f"an unexpected error ({type(exc).__name__})", "Type"


def write_document(folder: Path, filename: str, content: bytes) -> Path:
    """A file the chat sent, written 0600 into `folder` (the name is the flow's: no path in it)."""
    path = folder / Path(filename).name
    write_private_bytes(path, content)
    return path


def show(reply: Reply, out: TextIO) -> list[Button]:
    """The reply, its buttons as [#1] Label ... (the same in every question)."""
    out.write(reply.text + "\n")
    buttons = [button for row in reply.buttons for button in row]
    if buttons:
        out.write("  ".join(f"[#{n}] {b.label}" for n, b in enumerate(buttons, 1)) + "\n")
        if reply.numeric:
            out.write(NUMERIC_HINT + "\n")
    out.write("\n")
    return buttons


def save_photo(photo: Photo, folder: Path) -> Path:
    """The photo written to `folder` (created private if missing) under its own name, made safe for a
    file name; the file is 0600 (a chart is patient data). An earlier file of the same name is replaced."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in Path(photo.filename).name)
    path = folder / (name.lstrip(".") or "chart.png")
    write_private_bytes(path, photo.png)
    return path


def shown_photo(photo: Photo, folder: Path) -> Reply:
    """A photo as the terminal shows it: written to a file, its caption and the file's path printed."""
    try:
        where = f"Chart written to {save_photo(photo, folder)}"
    except OSError as exc:
        where = f"The chart could not be written to {folder}: {exc.strerror}."
    return Reply(f"{photo.text}\n{where}", photo.buttons)


def _plain(text: str) -> str:
    """Text as compared with a label: no leading emoji or marks ('✅ Get it', '⬅️ Back'), case or extra spaces."""
    start = 0
    while start < len(text) and (
        text[start].isspace()
        or text[start] in "?!"
        or unicodedata.category(text[start])[0] in "MC"
        or unicodedata.category(text[start]) in ("So", "Sk")
    ):
        start += 1
    return " ".join(text[start:].casefold().split())


def choice(typed: str, buttons: list[Button], numeric: bool) -> Button | None:
    """The button typed text stands for: '#2' always; a plain '2' where the question does not take a
    number; or a button's label (compared without case, spacing or leading emoji)."""
    number = typed[1:].strip() if typed.startswith("#") else typed if not numeric else ""
    if number.isascii() and number.isdigit():
        index = int(number)
        return buttons[index - 1] if 1 <= index <= len(buttons) else None
    plain = _plain(typed)
    if not plain:
        return None
    return next((button for button in buttons if _plain(button.label) == plain), None)


def read_line(stdin: TextIO, stdout: TextIO) -> str:
    """Flush what is shown, then read one line; Ctrl-C interrupts the wait at once (KeyboardInterrupt).

    asyncio.run's own Ctrl-C handler only cancels the task at its next await, which a blocking
    read never reaches until Enter is pressed; Python's default handler interrupts the read itself.
    It is in place before the flush, so a Ctrl-C as soon as the question shows is not missed.
    """
    if threading.current_thread() is not threading.main_thread():
        stdout.flush()
        return _readline(stdin)
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # a Ctrl-C that came while the answer was handled
            raise KeyboardInterrupt
        stdout.flush()
        return _readline(stdin)
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _readline(stdin: TextIO) -> str:
    """One line, decoded here from the bytes (strictly, in stdin's encoding), so that a line that is not
    text is refused alone: the text layer would raise for its whole buffer, the lines around it lost,
    and a lenient stdin (surrogateescape) would pass on characters that cannot be stored or shown."""
    encoding = stdin.encoding or "utf-8"
    raw = getattr(stdin, "buffer", None)
    if raw is None:  # an in-memory stream (tests): already text
        try:
            return stdin.readline()
        except UnicodeDecodeError:
            raise UnreadableLineError(encoding) from None
    data: bytes = raw.readline()
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise UnreadableLineError(encoding) from None


async def chat(
    service: ChatService,
    user: str = "local",
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    record: Path | None = None,
    today: dt.date | None = None,
    files: Path | None = None,
    charts: Path | None = None,
) -> Ended:
    """Run until end of input, /quit or Ctrl-C; every answer is saved as it is given.

    A file the chat sends (/export) is written into `files` (default: the current folder), its path
    printed; a chart (a `Photo` reply) is written as a PNG into `charts` (`hemadose chat`: the data
    directory's `charts` folder; default: the current folder) and its path printed."""
    pictures = charts if charts is not None else Path.cwd()
    user_ref = chat_ref = f"local:{user}"
    steps: list[dict[str, Any]] = []
    buttons: list[Button] = []
    numeric = False
    interactive = stdin.isatty()

    async def exchange(text: str | None, button: Button | None) -> None:
        nonlocal buttons, numeric
        replies = await service.handle(user_ref, chat_ref, text=text, button=button.data if button else None)
        replies = [shown_photo(reply, pictures) if isinstance(reply, Photo) else reply for reply in replies]
        step: dict[str, Any] = {"press": button.label} if button else {"send": text}
        if replies:
            step["expect"] = {"contains": [r.text.splitlines()[0] for r in replies if r.text]}
            labels = [b.label for r in replies for row in r.buttons for b in row]
            if labels:
                step["expect"]["buttons"] = labels[:6]
        steps.append(step)
        shown: list[Button] = []
        for reply in replies:
            if reply.buttons:
                numeric = reply.numeric
            if reply.document is not None:
                written = write_document(files or Path.cwd(), reply.document.filename, reply.document.content)
                stdout.write(f"File written: {written}\n")
            shown = show(reply, stdout) or shown
        buttons = shown or buttons

    async def reminder(chat_key: str, text: str, rows: list[list[list[str]]]) -> int:
        """Reminders due for this terminal's user are shown before the next prompt; their buttons
        become the numbered choices."""
        nonlocal buttons, numeric
        shown = show(Reply(f"⏰ {text}", stored_buttons(rows)), stdout)
        if shown:
            buttons, numeric = shown, False
        return 0

    service.reminders.sender = reminder
    service.reminders.chats = chat_ref

    handled = 0
    unsaved = 0
    interrupted = False

    async def attempt(step: Callable[[], Awaitable[object]], failed: str = NOT_SAVED) -> None:
        """Run one exchange; a write the storage refuses (disk full, ...) or a fault is one line, and the chat
        goes on: the update's transaction was rolled back, everything committed before it stays."""
        nonlocal unsaved
        try:
            await step()
        except Exception as exc:
            unsaved += 1
            cause, fix = storage_problem(exc)
            log.debug("an answer could not be handled", exc_info=True)
            stdout.write(failed.format(cause=cause, fix=fix) + "\n\n")

    try:
        await attempt(lambda: exchange("/start", None))
        while True:
            await attempt(service.reminders.run_due, REMINDERS_NOT_CHECKED)
            if interactive:
                stdout.write("> ")
            try:
                line = read_line(stdin, stdout)
            except UnreadableLineError as unreadable:
                if not interactive:
                    stdout.write("> (a line that is not text)\n")
                stdout.write(UNREADABLE.format(encoding=unreadable.encoding.upper()) + "\n\n")
                continue
            if not line:
                if interactive:
                    stdout.write("\n")  # Ctrl-D leaves the cursor after the prompt
                break
            typed = line.strip()
            if not typed:
                continue
            if not interactive:
                stdout.write(f"> {typed}\n")
            routed = route(typed)  # the one routing table (flows/routes.py); the rest goes to the service
            if routed.route is not None and routed.route.owner == Owner.TERMINAL and not routed.argument:
                break  # /quit, /exit
            pressed = choice(typed, buttons, numeric)
            await attempt(lambda: exchange(None if pressed else typed, pressed))  # noqa: B023 (awaited at once)
            handled += 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Ctrl-C, waiting for input or while an answer was handled (asyncio cancels the task then;
        # that answer's transaction is rolled back, everything before it is saved).
        interrupted = True
        stdout.write("\n")
    if record is not None:
        dialogue = {"title": f"Recorded in the terminal on {today or dt.date.today()}", "steps": steps}
        if today is not None:
            dialogue["today"] = today.isoformat()
        try:
            write_private(record, yaml.safe_dump(dialogue, allow_unicode=True, sort_keys=False))
            stdout.write(f"Dialogue written to {record}\n")
        except OSError as exc:
            print(f"hemadose chat: could not write the dialogue to {record}: {exc.strerror}", file=sys.stderr)
    stdout.write(BYE + "\n")
    stdout.flush()
    return Ended(handled, interrupted, unsaved)
