"""The terminal chat: the same flows and storage as the bot, buttons shown as numbered choices.

Reads standard input line by line, so it can be scripted: printf '/new\n1\n...' | hemadose chat.
With --record FILE, the session is written as a replayable dialogue (see bot/replay.py).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from bot.reminders import stored_buttons
from bot.service import ChatService
from flows.replies import Button, Reply


def show(reply: Reply, out: TextIO) -> list[Button]:
    out.write(reply.text + "\n")
    buttons = [button for row in reply.buttons for button in row]
    if buttons:
        mark = "#" if reply.numeric else ""
        out.write("  ".join(f"[{mark}{n}] {b.label}" for n, b in enumerate(buttons, 1)) + "\n")
    out.write("\n")
    return buttons


def choice(typed: str, buttons: list[Button], numeric: bool) -> Button | None:
    """The button a typed '2' (or '#2' where the question takes a number) stands for."""
    digits = typed[1:] if numeric and typed.startswith("#") else typed
    if (numeric and not typed.startswith("#")) or not digits.isdigit():
        return None
    number = int(digits)
    return buttons[number - 1] if 1 <= number <= len(buttons) else None


async def chat(
    service: ChatService,
    user: str = "local",
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    record: Path | None = None,
    today: dt.date | None = None,
) -> int:
    """Run until end of input; returns the number of messages handled."""
    user_ref = chat_ref = f"local:{user}"
    steps: list[dict[str, Any]] = []
    buttons: list[Button] = []
    numeric = False
    interactive = stdin.isatty()

    async def exchange(text: str | None, button: Button | None) -> None:
        nonlocal buttons, numeric
        replies = await service.handle(user_ref, chat_ref, text=text, button=button.data if button else None)
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

    await exchange("/start", None)
    handled = 0
    while True:
        await service.reminders.run_due()
        if interactive:
            stdout.write("> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            break
        typed = line.strip()
        if not typed:
            continue
        if not interactive:
            stdout.write(f"> {typed}\n")
        if typed.lower() in ("/quit", "/exit"):
            break
        pressed = choice(typed, buttons, numeric)
        await exchange(None if pressed else typed, pressed)
        handled += 1
    if record is not None:
        dialogue = {"title": f"Recorded in the terminal on {today or dt.date.today()}", "steps": steps}
        if today is not None:
            dialogue["today"] = today.isoformat()
        record.write_text(yaml.safe_dump(dialogue, allow_unicode=True, sort_keys=False))
        stdout.write(f"Dialogue written to {record}\n")
    return handled
