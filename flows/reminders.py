"""Reminders in words: setting them up after a saved recommendation, and the messages they send.

Pure and transport-agnostic like the rest of `flows/`: the scheduler (bot/reminders/) decides
when; this module says what. Button data is written by `flows.buttons` (`OccurrenceAnswer`:
`oc:<action>:<occurrence id>[:<YYYYMMDD>]`; `RecordButton` FOLLOWUP: a follow-up consultation).

RULES.md 6a: a dose reminder repeats the decision's whole administration instruction
(`flows.administration`); a romiplostim or luspatercept dose after the decided one asks for the new
result first and shows the old dose only as "last decided"; a blood-test reminder names the test
and the date the decision set.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from core.missed import MissedDoseGuidance
from core.models import DoseResponse
from core.reminders import INJECTED, RESULT_FIRST, PlannedReminder
from flows.administration import administration
from flows.buttons import AnswerAction, Choice, OccurrenceAnswer, RecordButton, RecordKind
from flows.parsing import Problem
from flows.replies import Button, Reply, rows
from flows.steps import DRUG_NAMES

ZONE_CHOICES = ("Europe/London", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Asia/Tokyo", "UTC")
TIME_CHOICES = ("08:00", "09:00", "12:00", "18:00", "20:00", "21:00")
TEST_WORDS = {"platelets": "platelet count", "hemoglobin": "haemoglobin (pre-dose)"}
MAY_REPEAT = "(This may repeat a message sent just before the assistant restarted.)"
# A chart or a file is not kept for a re-send (bot/storage/updates.py): its caption is, with this.
FILE_NOT_RESENT = "(The chart or file that came with this message is not sent again: ask for it once more.)"

# Taken, Skip, Snooze, Noted, given late (after a missed dose), taken on a day (a late Taken), and the
# Yes / No of an unconfirmed dose (RULES.md 6).
TAKEN, SKIP, SNOOZE, NOTED = AnswerAction.TAKEN, AnswerAction.SKIP, AnswerAction.SNOOZE, AnswerAction.NOTED
GIVEN, ON_DAY, YES, NO = AnswerAction.GIVEN, AnswerAction.ON_DAY, AnswerAction.YES, AnswerAction.NO
# What each kind of reminder may be answered with; anything else is refused (a forged or stale button).
ACTIONS: dict[str, frozenset[AnswerAction]] = {
    "dose": frozenset({TAKEN, SKIP, SNOOZE, GIVEN, ON_DAY, YES, NO}),
    "lab": frozenset({NOTED}),
}
RESULT_WORDS = {"platelets": "platelet count", "hemoglobin": "haemoglobin"}
PAUSED_NOTICE = "Your reminders were paused because messages could not be delivered; /reminders to resume."
NOT_UNDERSTOOD = "I did not understand that button. /reminders lists your reminders."
NOT_UNDERSTOOD_MANAGE = "I did not understand that reminder button. /reminders lists yours."
NOT_YOURS = "That reminder is not one of yours, or no longer exists. /reminders lists yours."
NO_REMINDERS = "You have no reminders. Set them with Set reminders after saving a recommendation."


@cache
def _zones() -> dict[str, str]:
    """Every IANA zone by its lower-case name (read from disk once)."""
    return {zone.lower(): zone for zone in available_timezones()}


def known_zone(typed: str) -> str | None:
    """The IANA name for what was typed, whatever its case ('europe/berlin' is Europe/Berlin)."""
    zone = _zones().get(typed.strip().lower())
    if zone is None:
        return None
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):  # pragma: no cover - listed zones load
        return None
    return zone


# Matched whole against the stripped text: the old `\s*(am|pm)?\s*$` tried every split of a long run
# of spaces between its two repeats (quadratic: 100 KB took most of a minute).
_TIME = re.compile(r"(\d{1,2})(?:[:.h](\d{2}))?(?:\s*(am|pm|a\.m\.|p\.m\.))?", re.IGNORECASE)


def parse_time(text: str) -> dt.time | Problem:
    """A local time of day: 08:00, 8:30, 20.15, 8am, 8 pm."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        return Problem(f"I could not read '{text.strip()}' as a time of day. Write it as HH:MM, e.g. 08:00.")
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), (match.group(3) or "").lower()
    if half:
        if not 1 <= hour <= 12:
            return Problem(f"'{text.strip()}' is not a time: with am/pm the hour is 1 to 12.")
        hour = hour % 12 + (12 if half.startswith("p") else 0)
    if hour > 23 or minute > 59:
        return Problem(f"'{text.strip()}' is not a time of day (00:00 to 23:59).")
    return dt.time(hour, minute)


def zone_question(prefix: str = "") -> Reply:
    buttons = [Button(zone, Choice(zone).encode()) for zone in ZONE_CHOICES]
    return Reply(
        f"{prefix}Reminders come at local times. Which time zone are you in? "
        "Pick one or type its Area/City name, e.g. Europe/Paris.",
        rows(buttons, 3),
    )


def time_question(drug: str, prefix: str = "") -> Reply:
    what = "each daily dose" if drug not in INJECTED else "the injection day and the blood test"
    buttons = [Button(choice, Choice(choice).encode()) for choice in TIME_CHOICES]
    return Reply(f"{prefix}At what local time should I remind you of {what}? e.g. 08:00", rows(buttons, 3))


def lab_words(response: DoseResponse) -> str:
    """The tests the decision set a date for, in words ('platelet count')."""
    tests = response.next_monitoring.tests if response.next_monitoring is not None else []
    return " and ".join(TEST_WORDS.get(test, test) for test in tests) or "blood test"


def _day(day: dt.date) -> str:
    return f"{day:%a} {day.isoformat()}"


def dose_instruction(drug: str, response: DoseResponse) -> str:
    """The decided dose as every reminder restates it: the whole administration instruction."""
    return administration(drug, response.model_dump(mode="json"))


def _end(text: str) -> str:
    """A sentence ends once: the hetrombopag instruction already ends with a full stop."""
    return text if text.endswith(".") else f"{text}."


def _verb(drug: str) -> str:
    return "given" if drug in INJECTED else "taken"


def result_words(drug: str) -> str:
    """The result a romiplostim or luspatercept dose is decided on (RULES.md 6a)."""
    return RESULT_WORDS["hemoglobin" if drug == "luspatercept" else "platelets"]


def follow_up_button(drug: str, label: str) -> Button:
    """Into a follow-up consultation ('same regimen, new result') for the patient."""
    return Button(f"Enter today's {result_words(drug)}", RecordButton(RecordKind.FOLLOWUP, label).encode())


def plan_summary(label: str, planned: list[PlannedReminder], at: dt.time, zone: str, lab: str, dose: str) -> str:
    """What was set up, day by day (up to the first few); `dose`: the decided administration
    instruction (`dose_instruction`), shown whole when given (RULES.md 6a)."""
    lines = [f"Reminders set for {label} at {at:%H:%M} ({zone}):"]
    words = {"dose": "dose", "heads_up": "heads-up: dose tomorrow", "lab": lab}
    for item in planned[:8]:
        what = words[item.kind]
        if item.kind != "lab" and not item.decided:
            what += " (the reminder asks for the new result first)"
        lines.append(f"• {_day(item.on)}: {what}")
    if len(planned) > 8:
        lines.append(f"• … and {len(planned) - 8} more")
    if dose:
        # RULES.md 6a: a dose that waits for a new result is shown only as the last decided one.
        decided = any(item.kind != "lab" and item.decided for item in planned)
        lines.append(f"{'Dose as decided' if decided else 'Last decided'}: {_end(dose)}")
    lines.append(
        "Each dose reminder has Taken / Skip / Snooze buttons; one not confirmed is sent again once. "
        "/reminders lists them (pause, change the time, stop)."
    )
    return "\n".join(lines)


def reminder_message(
    occurrence_id: int,
    kind: str,
    drug: str,
    label: str,
    dose_text: str,
    lab_text: str,
    on: dt.date,
    decided: bool = True,
    again: bool = False,
    late_since: str | None = None,
) -> Reply:
    """A reminder as sent: the first time, the re-send (`again`), or late after downtime.

    `decided`: the decision fixed this dose (restated whole); else, for romiplostim and luspatercept,
    the reminder asks for the new result first and shows the dose only as last decided (RULES.md 6a).
    """
    name = DRUG_NAMES.get(drug, drug)
    head = ""
    if late_since is not None:
        head = f"Late: this reminder was due {late_since}; the assistant was offline.\n"
    if again:
        head += "Reminder again, not yet confirmed:\n"
    awaits = not decided and drug in RESULT_FIRST
    result = result_words(drug)
    if kind == "heads_up":
        day = on + dt.timedelta(days=1)
        if awaits:
            return Reply(
                f"{head}Heads-up · patient {label}\n{name} injection due tomorrow, {_day(day)}. Its dose depends "
                f"on a new {result}: enter it for a new decision before the injection.\n"
                f"Last decided: {_end(dose_text)}",
                ((follow_up_button(drug, label),),),
            )
        return Reply(f"{head}Heads-up · patient {label}\n{name} is due tomorrow, {_day(day)}: {_end(dose_text)}")
    if kind == "lab":
        return Reply(
            f"{head}Blood test · patient {label}\n{lab_text[:1].upper()}{lab_text[1:]} due {_day(on)}, "
            "the date the recommendation set.",
            ((Button("Noted", OccurrenceAnswer(NOTED, occurrence_id).encode()),),),
        )
    answers = (
        Button("Taken", OccurrenceAnswer(TAKEN, occurrence_id).encode()),
        Button("Skip", OccurrenceAnswer(SKIP, occurrence_id).encode()),
        Button("Snooze 1 h", OccurrenceAnswer(SNOOZE, occurrence_id).encode()),
    )
    if awaits:
        return Reply(
            f"{head}Dose reminder · patient {label}\n{name} injection due today, {_day(on)}. Its dose depends on "
            f"today's {result}: enter it first for a new decision.\n"
            f"Last decided: {_end(dose_text)}\n"
            "Confirm when it is given. Never give two doses to make up for one.",
            ((follow_up_button(drug, label),), answers),
        )
    action = "Inject" if drug in INJECTED else "Take"
    return Reply(
        f"{head}Dose reminder · patient {label}\n{action} {name} today, {_day(on)}: {_end(dose_text)}\n"
        "Confirm when it is done. Never take or give two doses to make up for one.",
        (answers,),
    )


def missed_message(
    occurrence_id: int,
    label: str,
    day: dt.date,
    guidance: MissedDoseGuidance,
    dose_text: str = "",
    decided: bool = True,
    skipped: bool = False,
) -> Reply:
    """The drug's own missed-dose rule (RULES.md section 6), with the way to record a late dose."""
    drug = guidance.drug
    name = DRUG_NAMES.get(drug, drug)
    what = "Skipped" if skipped else "Missed"
    lines = [f"{what} dose · patient {label} · {name} · {_day(day)}", guidance.text]
    buttons: tuple[tuple[Button, ...], ...] = ()
    if guidance.give_missed_dose:
        if dose_text and decided:
            lines.append(f"Dose: {_end(dose_text)}")
        elif dose_text:
            lines.append(f"Its dose depends on a new {result_words(drug)}. Last decided: {_end(dose_text)}")
        verb = "Taken today" if drug not in INJECTED else "Given today"
        buttons = ((Button(verb, OccurrenceAnswer(GIVEN, occurrence_id).encode()),),)
        if not decided and drug in RESULT_FIRST:
            buttons = ((follow_up_button(drug, label),), *buttons)
    lines.append(f"Rule: {guidance.rule} · {guidance.source}")
    return Reply("\n".join(lines), buttons)


def unconfirmed_message(occurrence_id: int, drug: str, label: str, day: dt.date, late_since: str) -> Reply:
    """RULES.md 6: the reminder never reached the user before its deadline, so nobody knows whether the
    dose was taken. Ask; the missed-dose guidance follows only a No."""
    name = DRUG_NAMES.get(drug, drug)
    verb = _verb(drug)
    return Reply(
        f"Unconfirmed dose · patient {label} · {name} · {_day(day)}\n"
        f"The reminder due {late_since} could not reach you before its deadline (the assistant was offline "
        f"or the message failed). Was the dose of {_day(day)} {verb}?",
        (
            (
                Button(f"Yes, {verb} on {_day(day)}", OccurrenceAnswer(YES, occurrence_id).encode()),
                Button(f"No, not {verb}", OccurrenceAnswer(NO, occurrence_id).encode()),
            ),
        ),
    )


def day_question(occurrence_id: int, drug: str, label: str, scheduled: dt.date, days: list[dt.date]) -> Reply:
    """A late Taken: on which day was it actually taken (RULES.md 6, late confirmation)?"""
    name = DRUG_NAMES.get(drug, drug)
    verb = _verb(drug)
    today = days[-1]
    buttons = [
        Button(
            f"{verb.capitalize()} today, {_day(day)}" if day == today else f"{verb.capitalize()} on {_day(day)}",
            OccurrenceAnswer(ON_DAY, occurrence_id, day).encode(),
        )
        for day in days
    ]
    return Reply(
        f"{name} for {label}, the dose of {_day(scheduled)}: on which day was it {verb}?",
        rows(buttons, 2),
    )


def not_its_kind(kind: str, label: str, lab_text: str, day: dt.date) -> str:
    """A button pressed on a reminder of another kind (a forged or stale button): what that reminder is."""
    on = f"{day:%a %Y-%m-%d}"
    if kind == "lab":
        what = f"the blood-test reminder for {label} ({lab_text} due {on}); a dose is confirmed on its dose reminder"
    elif kind == "heads_up":
        what = f"a heads-up for {label}; the dose is confirmed on its dose reminder"
    else:
        what = f"the dose reminder for {label} of {on}; a blood test is noted on its own reminder"
    return f"That button does not belong to this reminder: it is {what}. Nothing recorded."
