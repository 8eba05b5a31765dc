"""One routing table for commands, buttons and control words, for every transport.

`route` reads what the user did (a typed command such as `/history RX-12@hemadose_bot`, a button's
data such as `hi:RX-12`, a control word such as `back`) into the `Route` that answers it, once, here.
Who answers is the route's `owner`: the consultation (flows/consultation.py), the service (what needs
the database: bot/service.py), or the terminal itself (`/quit`). Telegram's command menu is the routes
with a `menu` line (bot/telegram_app.py), in this order. Anything no route takes is an answer to the
question on screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from flows.buttons import PageList, Word
from flows.exporting import PREFIX as EXPORT
from flows.followup import FOLLOWUP, FULL, HISTORY, TREND

RECORD_EDIT = "pr:"  # /patient's buttons (flows.buttons.RecordEditButton)
PAGE_OF_PATIENTS, PAGE_OF_HISTORY = f"pg:{PageList.PATIENTS}:", f"pg:{PageList.HISTORY}:"  # flows.buttons.PageButton


class Owner(StrEnum):
    FLOW = "flow"  # the consultation's controls
    SERVICE = "service"  # needs the user's records (bot/service.py)
    TERMINAL = "terminal"  # the terminal chat itself


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    owner: Owner
    commands: tuple[str, ...] = ()  # '/new' ('/new@bot' in group chats is the same)
    buttons: tuple[str, ...] = ()  # a button's whole data
    prefixes: tuple[str, ...] = ()  # a button's data starting with one of these (the rest is the argument)
    words: tuple[str, ...] = ()  # the whole of a typed message (no button matched it)
    menu: str = ""  # Telegram's command menu line ('' : not listed)


ROUTES: tuple[Route, ...] = (
    Route("new", Owner.FLOW, commands=("/new",), buttons=("new",), menu="start a consultation"),
    Route(
        "patients",
        Owner.SERVICE,
        commands=("/patients",),
        buttons=("patients",),
        prefixes=(PAGE_OF_PATIENTS,),
        menu="your patients",
    ),
    Route(
        "history",
        Owner.SERVICE,
        commands=("/history",),
        prefixes=(HISTORY, PAGE_OF_HISTORY),
        menu="a patient's record: /history LABEL",
    ),
    Route(
        "patient",
        Owner.SERVICE,
        commands=("/patient",),
        prefixes=(RECORD_EDIT,),
        menu="correct or delete a record: /patient LABEL",
    ),
    # Right after Save to patient; typed as its label too (the terminal's typed buttons).
    Route("undo", Owner.SERVICE, buttons=(Word.UNDO.value,), words=("undo", "↩ undo")),
    Route(
        "trend",
        Owner.SERVICE,
        commands=("/trend",),
        prefixes=(TREND,),
        menu="a patient's trend chart: /trend LABEL",
    ),
    Route(
        "reminders",
        Owner.SERVICE,
        commands=("/reminders",),
        buttons=("reminders",),
        prefixes=("oc:", "rm:"),  # a reminder's answers, /reminders' own buttons
        menu="your reminders: pause, time, stop",
    ),
    Route(
        "export",
        Owner.SERVICE,
        commands=("/export",),
        prefixes=(EXPORT,),  # flows.exporting.ExportButton: a format for one patient
        menu="a patient's note, CSV, FHIR or calendar: /export LABEL",
    ),
    Route("settings", Owner.SERVICE, commands=("/settings",), menu="time zone"),
    Route(
        "cancel",
        Owner.FLOW,
        commands=("/cancel",),
        buttons=("cancel",),
        words=("cancel",),
        menu="cancel the consultation",
    ),
    Route("help", Owner.FLOW, commands=("/help",), buttons=("help",), words=("help",), menu="how to answer"),
    Route("start", Owner.FLOW, commands=("/start",)),
    Route("back", Owner.FLOW, commands=("/back",), buttons=("back",), words=("back",)),
    Route("record", Owner.FLOW, prefixes=(FOLLOWUP, FULL)),  # from any state: a follow-up, a full consultation
    Route("quit", Owner.TERMINAL, commands=("/quit", "/exit")),
)

_COMMANDS = {command: r for r in ROUTES for command in r.commands}
_BUTTONS = {data: r for r in ROUTES for data in r.buttons}
_PREFIXES = [(prefix, r) for r in ROUTES for prefix in r.prefixes]
_WORDS = {word: r for r in ROUTES for word in r.words}


class Routed(NamedTuple):
    route: Route | None  # None: no route takes it (an answer, or an unknown command)
    command: str | None = None  # the command typed, as matched ('/history'), known or not
    argument: str = ""  # what follows the command, or the button's data after its prefix
    data: str | None = None  # the button's data


def route(text: str | None, button: str | None = None) -> Routed:
    """What the user did, read once: a button by its data, else a typed command, else a control word."""
    if button is not None:
        found = _BUTTONS.get(button)
        if found is not None:
            return Routed(found, data=button)
        for prefix, owner in _PREFIXES:
            if button.startswith(prefix):
                return Routed(owner, argument=button[len(prefix) :], data=button)
        return Routed(None, data=button)
    typed = (text or "").strip()
    if typed.startswith("/"):
        parts = typed.split(maxsplit=1)
        command = parts[0].split("@")[0].lower()  # '/new@hemadose_bot' in group chats is /new
        return Routed(_COMMANDS.get(command), command, parts[1].strip() if len(parts) > 1 else "")
    return Routed(_WORDS.get(typed.lower()))


def menu() -> list[tuple[str, str]]:
    """(command without '/', description) for a transport's command menu, in the table's order."""
    return [(r.commands[0].lstrip("/"), r.menu) for r in ROUTES if r.menu]
