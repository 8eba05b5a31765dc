"""Reminders in words: setting them up after a saved recommendation, and the messages they send.

Pure and transport-agnostic like the rest of `flows/`: the scheduler (bot/reminders.py) decides
when; this module says what. Button data is short (`oc:<action>:<occurrence id>`), under
Telegram's 64 bytes.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from core.missed import MissedDoseGuidance
from core.numbers import fmt
from core.reminders import INJECTED, PlannedReminder
from flows.parsing import Problem
from flows.replies import Button, Reply, rows
from flows.steps import DRUG_NAMES

ZONE_CHOICES = ("Europe/London", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Asia/Tokyo", "UTC")
TIME_CHOICES = ("08:00", "09:00", "12:00", "18:00", "20:00", "21:00")
TEST_WORDS = {"platelets": "platelet count", "hemoglobin": "haemoglobin (pre-dose)"}
MAY_REPEAT = "(This may repeat a message sent just before the assistant restarted.)"

TAKEN, SKIP, SNOOZE, NOTED, GIVEN = "t", "s", "z", "n", "g"


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


_TIME = re.compile(r"^\s*(\d{1,2})(?:[:.h](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?\s*$", re.IGNORECASE)


def parse_time(text: str) -> dt.time | Problem:
    """A local time of day: 08:00, 8:30, 20.15, 8am, 8 pm."""
    match = _TIME.match(text)
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
    buttons = [Button(zone, f"v:{zone}") for zone in ZONE_CHOICES]
    return Reply(
        f"{prefix}Reminders come at local times. Which time zone are you in? "
        "Pick one or type its Area/City name, e.g. Europe/Paris.",
        rows(buttons, 3),
    )


def time_question(drug: str, prefix: str = "") -> Reply:
    what = "each daily dose" if drug not in INJECTED else "the injection day and the blood test"
    buttons = [Button(choice, f"v:{choice}") for choice in TIME_CHOICES]
    return Reply(f"{prefix}At what local time should I remind you of {what}? e.g. 08:00", rows(buttons, 3))


def _amount(value: Any) -> str:
    return fmt(Decimal(str(value)))


def dose_words(response: dict[str, Any]) -> str:
    """The dose as a reminder states it: '210 mcg (3 mcg/kg) = 0.42 mL'."""
    dose, total = response.get("dose"), response.get("total")
    if not dose or not total:
        return ""
    words = f"{_amount(total['amount'])} {total['unit']}"
    if dose["unit"] != total["unit"]:
        words += f" ({_amount(dose['amount'])} {dose['unit']})"
    if response.get("volume_ml") is not None:
        words += f" = {_amount(response['volume_ml'])} mL"
    return words


def lab_words(response: dict[str, Any]) -> str:
    monitoring = response.get("next_monitoring") or {}
    return " and ".join(TEST_WORDS.get(test, test) for test in monitoring.get("tests", [])) or "blood test"


def _day(day: dt.date) -> str:
    return f"{day:%a} {day.isoformat()}"


def plan_summary(label: str, planned: list[PlannedReminder], at: dt.time, zone: str, lab: str) -> str:
    """What was set up, day by day (up to the first few)."""
    lines = [f"Reminders set for {label} at {at:%H:%M} ({zone}):"]
    words = {"dose": "dose", "heads_up": "heads-up: dose tomorrow", "lab": lab}
    for item in planned[:8]:
        lines.append(f"• {_day(item.on)}: {words[item.kind]}")
    if len(planned) > 8:
        lines.append(f"• … and {len(planned) - 8} more")
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
    dose_on: dt.date | None,
    again: bool = False,
    late_since: str | None = None,
) -> Reply:
    """A reminder as sent: the first time, the re-send (`again`), or late after downtime."""
    name = DRUG_NAMES.get(drug, drug)
    head = ""
    if late_since is not None:
        head = f"Late: this reminder was due {late_since}; the assistant was offline.\n"
    if again:
        head += "Reminder again, not yet confirmed:\n"
    if kind == "heads_up":
        day = dose_on or on
        return Reply(f"{head}Heads-up · patient {label}\n{name} {dose_text} is due tomorrow, {_day(day)}.")
    if kind == "lab":
        return Reply(
            f"{head}Blood test · patient {label}\n{lab_text[:1].upper()}{lab_text[1:]} due {_day(on)}.",
            ((Button("Noted", f"oc:{NOTED}:{occurrence_id}"),),),
        )
    action = "Inject" if drug in INJECTED else "Take"
    return Reply(
        f"{head}Dose reminder · patient {label}\n{action} {name} {dose_text} today, {_day(on)}. "
        "Confirm when it is done. Never take or give two doses to make up for one.",
        (
            (
                Button("Taken", f"oc:{TAKEN}:{occurrence_id}"),
                Button("Skip", f"oc:{SKIP}:{occurrence_id}"),
                Button("Snooze 1 h", f"oc:{SNOOZE}:{occurrence_id}"),
            ),
        ),
    )


def missed_message(
    occurrence_id: int, label: str, day: dt.date, guidance: MissedDoseGuidance, skipped: bool = False
) -> Reply:
    """The drug's own missed-dose rule (RULES.md section 6), with the way to record a late dose."""
    name = DRUG_NAMES.get(guidance.drug, guidance.drug)
    what = "Skipped" if skipped else "Missed"
    lines = [f"{what} dose · patient {label} · {name} · {_day(day)}", guidance.text]
    lines.append(f"Rule: {guidance.rule} · {guidance.source}")
    buttons: tuple[tuple[Button, ...], ...] = ()
    if guidance.give_missed_dose:
        verb = "Taken today" if guidance.drug in ("lusutrombopag", "hetrombopag") else "Given today"
        buttons = ((Button(verb, f"oc:{GIVEN}:{occurrence_id}"),),)
    return Reply("\n".join(lines), buttons)
