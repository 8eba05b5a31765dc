"""What every step's parser shares: the result types, one-tap options, choosing a name, dated lines."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass
from typing import Any

from core.framework import DrugProfile
from core.registry import rules_for
from flows.buttons import Choice
from flows.parsing import Problem, parse_date
from flows.replies import Button, Env, PatientSummary
from flows.state import Answers

# A date typed with spaces around its dashes ('2026 -11-08'): named, not guessed.
_SPACED_DATE = re.compile(r"^\s*(\d{4})\s*-\s*(\d{1,2})\s*-\s*(\d{1,2})\b")


@dataclass(frozen=True, slots=True)
class Confirm:
    """Ask 'is that right?' before applying `updates`."""

    question: str
    updates: dict[str, Any]
    retry: str | None = None  # on "No", ask this step instead (e.g. a newer count, not just its date)


Parsed = dict[str, Any] | Problem | Confirm
Options = list[Button]


def value(label: str, data: str) -> Button:
    return Button(label, Choice(data).encode())


def profile_of(answers: Answers) -> DrugProfile:
    assert answers.drug is not None
    return rules_for(answers.drug).profile


def record_of(answers: Answers, env: Env) -> PatientSummary | None:
    if answers.patient_label is None:
        return None
    return answers.record or env.patients.get(answers.patient_label)


def same_drug_record(answers: Answers, env: Env) -> PatientSummary | None:
    record = record_of(answers, env)
    if record is None or record.drug != answers.drug or record.dose_amount is None:
        return None
    return record


def choose(text: str, choices: dict[str, str], what: str) -> str | Problem:
    """A key of `choices` from its key, its name, a unique prefix or a near spelling."""
    typed = text.strip().lower()
    names = {name.lower(): key for key, name in choices.items()}
    if typed in choices:
        return typed
    if typed in names:
        return names[typed]
    starts = {key for name, key in names.items() if len(typed) >= 3 and name.startswith(typed)}
    starts |= {key for key in choices if len(typed) >= 3 and key.startswith(typed)}
    if len(starts) == 1:
        return starts.pop()
    close = difflib.get_close_matches(typed, [*choices, *names], n=1, cutoff=0.75)
    if close:
        return close[0] if close[0] in choices else names[close[0]]
    listed = ", ".join(choices.values())
    return Problem(f"I don't know the {what} '{text.strip()}'. Choose one of: {listed}.")


def date_options(answers: Answers, env: Env, keep: dt.date | None = None) -> Options:
    """Today, Yesterday, then Keep: an option that comes and goes is last, so the others keep their numbers."""
    options = [value("Today", "today"), value("Yesterday", "yesterday")]
    if keep is not None and keep not in (env.today, env.today - dt.timedelta(days=1)):
        options.append(value(f"Keep {keep}", keep.isoformat()))
    return options


def split_dated(
    text: str, today: dt.date, *, what: str, example: str, then: str = "value"
) -> tuple[dt.date, str] | Problem:
    """'YYYY-MM-DD rest' (or 'yesterday rest'): the date and what follows it."""
    typed = text.strip()
    spaced = _SPACED_DATE.match(typed)
    if spaced and " " in spaced.group(0).strip():
        year, month, day = spaced.groups()
        fixed = f"{year}-{int(month):02d}-{int(day):02d}"
        return Problem(
            f"'{typed}' has a space inside the date. Send the {what} as a date without spaces, then the "
            f"{then}: e.g. '{fixed}{typed[spaced.end() :]}'."
        )
    parts = typed.split()
    # A date is at most DATE_WORDS words ('in 3 days', '3 days ago'): only those first cuts are tried, so
    # a long message costs one pass (trying every cut re-read the whole message each time: quadratic).
    for cut in range(1, min(len(parts), DATE_WORDS + 1)):
        day = parse_date(" ".join(parts[:cut]), today, what=f"{what} date")
        if not isinstance(day, Problem):
            return day, " ".join(parts[cut:])
        if cut == 1 and _ISO_LIKE.match(parts[0]):
            return day  # a date that is in the future, or not a real day: say so
    return Problem(f"Send each {what} as a date, then the {then}: e.g. '{example}', or press Done.")


_ISO_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATE_WORDS = 3  # the most words a date parse_date reads has ('3 days ago', 'in 3 days')


def weekday(day: dt.date) -> str:
    return f"{day:%a} {day.isoformat()}"
