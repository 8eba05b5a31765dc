"""The questions of a consultation, as data: when each applies, how it is asked, how it is read.

A step's parser returns updates to the answers, a `Problem` (ask again, nothing lost) or a
`Suggestion`-style confirmation (`Confirm`). It asks only what RULES.md needs for the drug and
the patient's state, and offers what the patient's record already holds as a one-tap answer,
after the fixed options (so an option keeps its number whether or not the record adds one).
An answer that others were given relative to (the dose, its first date, the result's date...)
re-asks them when it changes: `DEPENDANTS`, applied by `reopen_dependants` on every answer.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core import hetrombopag, luspatercept, lusutrombopag, romiplostim
from core.framework import FRESH_DAYS, STABLE_DAYS, DrugProfile
from core.numbers import fmt
from core.registry import rules_for
from core.units import PLAUSIBILITY, UNITS_BY_TEST
from flows.parsing import (
    LAB_UNITS,
    SHOWN_UNIT,
    Problem,
    Suggestion,
    check_lab,
    is_unusual,
    parse_date,
    parse_number,
    with_unit,
)
from flows.replies import Button, Env, PatientSummary
from flows.state import Answers, LabAnswer, TransfusionAnswer

DRUG_NAMES = {
    "romiplostim": "Romiplostim",
    "hetrombopag": "Hetrombopag",
    "lusutrombopag": "Lusutrombopag",
    "luspatercept": "Luspatercept",
}
INDICATION_NAMES = {
    "itp": "ITP",
    "cit": "Chemotherapy-induced thrombocytopenia (CIT)",
    "cld_procedure": "Chronic liver disease, before a procedure",
    "beta_thalassemia": "Beta-thalassaemia",
    "mds": "MDS",
}
REGION_NAMES = {"us": "US label", "eu": "EU label", "jp": "Japan label", "cn": "China label"}
ADVERSE_NAMES = {
    "none": "None",
    "mild": "Grade 1-2",
    "severe": "Grade 3 or more",
    "hypersensitivity": "Grade 3+ hypersensitivity",
}
LB_TO_KG = Decimal("0.45359237")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._#/-]{0,23}$")
# Two or more words of letters only (any case, hyphens and apostrophes allowed): most likely a name.
_FULL_NAME = re.compile(r"^[^\W\d_][^\W\d_'-]*(?:['-][^\W\d_]+)*(?: +[^\W\d_][^\W\d_'-]*(?:['-][^\W\d_]+)*)+$")
# A label is a code with a digit (RX-12, bed 4, AB12); a run of four letters or more is most likely a
# name ('Smith 1950', 'john.smith1'), unless it is one of the words codes are made of.
_LONG_WORD = re.compile(r"[^\W\d_]{4,}")
CODE_WORDS = frozenset({"room", "ward", "unit", "case", "site", "study", "trial", "patient", "subject", "cohort"})
NO_DIGIT = "A patient label needs at least one digit, e.g. RX-12 or bed 4; no names."
_TRANSFUSION_UNITS = re.compile(r"(\d+(?:[.,]\d+)?)(?:\s*(?:units?|u))?", re.IGNORECASE)  # whole, stripped
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


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    title: str  # for the review screen's edit button
    applies: Callable[[Answers, Env], bool]
    question: Callable[[Answers, Env], str]
    options: Callable[[Answers, Env], Options]
    parse: Callable[[str, Answers, Env], Parsed]
    shown: Callable[[Answers], str]  # the review line


def value(label: str, data: str) -> Button:
    return Button(label, f"v:{data}")


def _profile(answers: Answers) -> DrugProfile:
    assert answers.drug is not None
    return rules_for(answers.drug).profile


def _record(answers: Answers, env: Env) -> PatientSummary | None:
    if answers.patient_label is None:
        return None
    return answers.record or env.patients.get(answers.patient_label)


def _same_drug_record(answers: Answers, env: Env) -> PatientSummary | None:
    record = _record(answers, env)
    if record is None or record.drug != answers.drug or record.dose_amount is None:
        return None
    return record


def _choose(text: str, choices: dict[str, str], what: str) -> str | Problem:
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


def _date_options(answers: Answers, env: Env, keep: dt.date | None = None) -> Options:
    """Today, Yesterday, then Keep: an option that comes and goes is last, so the others keep their numbers."""
    options = [value("Today", "today"), value("Yesterday", "yesterday")]
    if keep is not None and keep not in (env.today, env.today - dt.timedelta(days=1)):
        options.append(value(f"Keep {keep}", keep.isoformat()))
    return options


def _split_dated(
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


def _weekday(day: dt.date) -> str:
    return f"{day:%a} {day.isoformat()}"


# --- drug, indication, region ------------------------------------------------------------------


def _parse_drug(text: str, answers: Answers, env: Env) -> Parsed:
    chosen = _choose(text, DRUG_NAMES, "drug")
    if isinstance(chosen, Problem):
        return chosen
    profile = rules_for(chosen).profile
    if chosen == answers.drug:  # the same drug again (an edit): every answer still holds
        return {"drug": chosen}
    # What was asked for the old drug is re-asked: DEPENDANTS["drug"], applied by `reopen_dependants`.
    updates: dict[str, Any] = {"drug": chosen, "editing": False}
    updates["indication"] = profile.indications[0] if len(profile.indications) == 1 else None
    updates["region"] = profile.default_region if len(profile.regions) == 1 else None
    if answers.record is not None:  # the record's results of the new drug's deciding test
        updates |= _prefill(chosen, answers.record, env)
    return updates


def _parse_indication(text: str, answers: Answers, env: Env) -> Parsed:
    allowed = {key: INDICATION_NAMES[key] for key in _profile(answers).indications}
    chosen = _choose(text, allowed, "indication")
    return chosen if isinstance(chosen, Problem) else {"indication": chosen}


def _parse_region(text: str, answers: Answers, env: Env) -> Parsed:
    allowed = {key: REGION_NAMES[key] for key in _profile(answers).regions}
    aliases = {"japan": "jp", "europe": "eu", "usa": "us", "china": "cn"}
    typed = aliases.get(text.strip().lower(), text)
    chosen = _choose(typed, allowed, "label")
    return chosen if isinstance(chosen, Problem) else {"region": chosen}


# --- patient -----------------------------------------------------------------------------------


def _parse_patient(text: str, answers: Answers, env: Env) -> Parsed:
    typed = text.strip()
    known = {label.lower(): label for label in env.patients}
    if typed.lower() in known:
        return record_answers(answers.drug, env.patients[known[typed.lower()]], env)
    if not _LABEL.match(typed):
        return Problem(
            "A patient label is 1 to 24 letters, digits, spaces or . _ # / - (for example RX-12 or bed 4). "
            "No names are needed."
        )
    if _FULL_NAME.match(typed):
        return Problem(
            f"'{typed}' looks like a person's name. Please use a code with a digit instead (e.g. RX-12 or bed 4)."
        )
    if not any(char.isdigit() for char in typed):
        return Problem(NO_DIGIT)
    named = next((w.group() for w in _LONG_WORD.finditer(typed) if w.group().lower() not in CODE_WORDS), None)
    if named is not None:
        return Problem(
            f"'{typed}' looks like it holds a name ('{named}'). A label is a code with at most 3 letters in a row "
            "and a digit, e.g. RX-12, AB12 or bed 4; no names."
        )
    return {"patient_label": typed, "patient_is_new": True, "history_labs": [], "record": None}


def record_answers(drug: str | None, record: PatientSummary, env: Env) -> dict[str, Any]:
    """The patient chosen from the record, with what the record holds for this drug's rules."""
    return {"patient_label": record.label, "patient_is_new": False, "record": record} | _prefill(drug, record, env)


def _prefill(drug: str | None, record: PatientSummary, env: Env) -> dict[str, Any]:
    """What the record holds for this drug's rules, so a follow-up visit takes a few taps."""
    assert drug is not None
    updates: dict[str, Any] = {}
    deciding = rules_for(drug).profile.deciding_test
    # Every result on record: the stable rule reads all counts since `since`, however long ago that is.
    updates["history_labs"] = [
        LabAnswer.model_validate(lab.model_dump())
        for lab in record.labs
        if lab.test == deciding and lab.date <= env.today
    ]
    updates["added_labs"] = []  # counts typed for another patient do not carry over
    updates["transfusions"] = (
        [TransfusionAnswer(date=t.date, units=Decimal(t.units)) for t in record.transfusions if t.date <= env.today]
        if drug == "luspatercept" and record.drug == "luspatercept"
        else []
    )
    return updates


def _patient_options(answers: Answers, env: Env) -> Options:
    return [value(label, label) for label in sorted(env.patients)[:12]]


# --- weight, age, liver function, procedure ----------------------------------------------------

_WEIGHT_UNITS = {"": "kg", "kg": "kg", "kgs": "kg", "lb": "lb", "lbs": "lb", "g": "g"}


def _parse_weight(text: str, answers: Answers, env: Env) -> Parsed:
    record = _record(answers, env)
    if text.strip().lower() == "keep" and record is not None and record.weight_kg is not None:
        # The record's weighing date goes with it, or "not known": never today's date by default.
        return {
            "weight_kg": Decimal(record.weight_kg),
            "weight_date": record.weight_date,
            "weight_date_unknown": record.weight_date is None,
            "weight_from_record": True,
        }
    parsed = parse_number(text, what="weight", example="72", units=_WEIGHT_UNITS)
    if isinstance(parsed, Problem):
        return parsed
    number, unit = parsed
    kg = number if unit == "kg" else number / 1000 if unit == "g" else _pounds(number)
    bounds = PLAUSIBILITY["weight_kg"]
    # A new weight: its date is asked next (weight_date), not assumed.
    new = {"weight_date": None, "weight_date_unknown": False, "weight_from_record": False}
    updates = {"weight_kg": kg, **new}
    shown = f"{fmt(kg)} kg is not possible"
    if kg > bounds.high and not bounds.implausible(kg / 1000):
        return Confirm(f"{shown}; it looks like grams: {fmt(kg / 1000)} kg?", {"weight_kg": kg / 1000, **new})
    if unit == "kg" and kg > bounds.high and not bounds.implausible(_pounds(kg)):
        pounds = _pounds(kg)
        return Confirm(f"{shown}; is it pounds: {fmt(kg)} lb = {fmt(pounds)} kg?", {"weight_kg": pounds, **new})
    if bounds.implausible(kg):
        low, high = fmt(bounds.low), fmt(bounds.high)
        return Problem(f"A weight of {fmt(kg)} kg is not possible ({low} to {high} kg). Type the weight in kg.")
    if bounds.unusual(kg):
        return Confirm(f"A weight of {fmt(kg)} kg is unusual. Is that right?", updates)
    if unit == "lb":
        return Confirm(f"{fmt(number)} lb is {fmt(kg)} kg. Use {fmt(kg)} kg?", updates)
    return updates


def _pounds(number: Decimal) -> Decimal:
    return (number * LB_TO_KG).quantize(Decimal("0.1"))


def _weight_options(answers: Answers, env: Env) -> Options:
    record = _record(answers, env)
    if record is None or record.weight_kg is None:
        return []
    when = str(record.weight_date) if record.weight_date else "date not known"
    return [value(f"Keep {fmt(Decimal(record.weight_kg))} kg, {when}", "keep")]


def _parse_age(text: str, answers: Answers, env: Env) -> Parsed:
    typed = text.strip().lower()
    if typed in ("adult", "adult (18 or over)", "18+"):
        return {"age_years": None, "adult": True}
    record = _record(answers, env)
    if typed == "keep" and record is not None and record.age_years is not None:
        return {"age_years": Decimal(record.age_years), "adult": False}
    parsed = parse_number(text, what="age in years", example="45")
    if isinstance(parsed, Problem):
        return parsed
    age = parsed[0]
    if age > 120:
        return Confirm(
            f"{fmt(age)} years is not possible; is it months, {fmt((age / 12).quantize(Decimal('0.1')))} years?",
            {"age_years": (age / 12).quantize(Decimal("0.1")), "adult": False},
        )
    if age < 0:
        return Problem("The age cannot be negative.")
    return {"age_years": age, "adult": age >= 18}


def _age_options(answers: Answers, env: Env) -> Options:
    options = [value("Adult (18 or over)", "adult")]
    record = _record(answers, env)
    if record is not None and record.age_years is not None:
        options.append(value(f"Keep {record.age_years} years", "keep"))  # after the fixed option
    return options


def _weight_date_shown(answers: Answers) -> str:
    if answers.weight_date is not None:
        return f" (weighed {answers.weight_date})"
    return " (weighing date not known)" if answers.weight_date_unknown else ""


def _weighed_applies(answers: Answers, env: Env) -> bool:
    """Every newly typed weight (adults too): its date is the user's to give, or "not known"."""
    if answers.drug is None or not _profile(answers).weight_based:
        return False
    return answers.weight_kg is not None and not answers.weight_from_record


def _weighed_question(answers: Answers, env: Env) -> str:
    child = answers.age_years is not None and answers.age_years < romiplostim.PEDIATRIC_BELOW_YEARS
    weeks = romiplostim.PEDIATRIC_WEIGHT_MAX_AGE_DAYS // 7
    tail = f" In children it is reassessed every {weeks} weeks." if answers.drug == "romiplostim" and child else ""
    return f"When was that weight measured?{tail}"


def _parse_weighed(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() in ("not known", "unknown", "don't know", "dont know"):
        return {"weight_date": None, "weight_date_unknown": True}
    day = parse_date(text, env.today, what="date of the weighing")
    return day if isinstance(day, Problem) else {"weight_date": day, "weight_date_unknown": False}


def _weighed_options(answers: Answers, env: Env) -> Options:
    keep = _date_options(answers, env, keep=answers.weight_date)[2:]
    return [value("Today", "today"), value("Yesterday", "yesterday"), value("Not known", "not known"), *keep]


def _parse_child_pugh(text: str, answers: Answers, env: Env) -> Parsed:
    typed = text.strip().upper().removeprefix("CHILD-PUGH ").strip()
    if typed in ("A", "B", "C"):
        return {"child_pugh": typed, "child_pugh_unknown": False}
    if typed == "UNKNOWN":
        return {"child_pugh": None, "child_pugh_unknown": True}
    return Problem("Choose the Child-Pugh class: A, B or C (or Unknown).")


def _parse_procedure(text: str, answers: Answers, env: Env) -> Parsed:
    day = parse_date(text, env.today, what="procedure date", future=True, past=False)
    return day if isinstance(day, Problem) else {"procedure_date": day}


# --- treatment status and dose -----------------------------------------------------------------


def _status_options(answers: Answers, env: Env) -> Options:
    if answers.drug == "lusutrombopag":
        options = [value("Not started yet", "new"), value("Course started", "on")]
    else:
        options = [value("Starting now", "new"), value("On treatment", "on"), value("On hold", "held")]
    record = _same_drug_record(answers, env)
    if record is not None:  # last: the fixed options keep their numbers whether or not it is offered
        options.append(value(f"As saved: {_recorded_regimen(answers, record)}", "same"))
    return options


def _recorded_regimen(answers: Answers, record: PatientSummary) -> str:
    state = "on hold at" if record.on_hold else "on"
    shown = f"{fmt(Decimal(record.dose_amount or '0'))} {_profile(answers).dosing_unit}"
    return f"{state} {shown} since {record.dose_since}"


def _parse_status(text: str, answers: Answers, env: Env) -> Parsed:
    typed = text.strip().lower()
    record = _same_drug_record(answers, env)
    if typed == "same" and record is not None:
        return {
            "status": "held" if record.on_hold else "on",
            "dose_amount": Decimal(record.dose_amount or "0"),
            "dose_since": record.dose_since,
            "last_given": record.last_given,
            "doses_at_level": record.doses_at_level,
        }
    aliases = {
        "new": "new",
        "starting now": "new",
        "starting": "new",
        "start": "new",
        "not started yet": "new",
        "on": "on",
        "on treatment": "on",
        "course started": "on",
        "started": "on",
        "held": "held",
        "on hold": "held",
        "hold": "held",
    }
    status = aliases.get(typed)
    if status is None or (status == "held" and answers.drug == "lusutrombopag"):
        names = [b.label for b in _status_options(answers, env)]
        return Problem(f"Choose one of: {', '.join(names)}.")
    updates: dict[str, Any] = {"status": status}
    if status == "new":
        updates |= {"dose_amount": None, "dose_since": None, "last_given": None, "doses_at_level": None}
    recorded = None if record is None else ("held" if record.on_hold else "on")
    if recorded is not None and status != recorded and status != answers.status:
        # A choice the record contradicts is confirmed before it is used.
        assert record is not None
        asked = {
            "new": "Start from scratch (no current dose)?",
            "on": "Now on treatment, not on hold?",
            "held": "Now on hold?",
        }
        if answers.drug == "lusutrombopag":
            asked["new"] = "A new course, not started yet?"
        return Confirm(
            f"The record shows {record.label} {_recorded_regimen(answers, record)}. {asked[status]}",
            updates,
        )
    return updates


def _on_treatment(answers: Answers, env: Env) -> bool:
    return answers.status in ("on", "held")


def _dose_question(answers: Answers, env: Env) -> str:
    unit = _profile(answers).dosing_unit
    when = "before the hold" if answers.status == "held" else "now"
    return f"Dose {when}, in {unit}?"


DOSE_EXAMPLE = {"romiplostim": "3", "hetrombopag": "5", "lusutrombopag": "3", "luspatercept": "1"}
_DOSE_LEVELS = {
    ("hetrombopag", "itp"): ("2.5", "3.75", "5", "7.5"),
    ("hetrombopag", "cit"): ("2.5", "5", "7.5", "10", "12.5", "15"),
    ("lusutrombopag", "cld_procedure"): ("3",),
    ("luspatercept", "beta_thalassemia"): ("0.6", "0.8", "1", "1.25"),
    ("luspatercept", "mds"): ("0.6", "0.8", "1", "1.33", "1.75"),
}


def _dose_options(answers: Answers, env: Env) -> Options:
    unit = _profile(answers).dosing_unit
    levels = _DOSE_LEVELS.get((answers.drug or "", answers.indication or ""), ())
    current = fmt(answers.dose_amount) if answers.dose_amount is not None else None
    # Every level in the label's order, then Keep: a level keeps its number whatever the record holds.
    options = [value(f"{level} {unit}", level) for level in levels]
    if current is not None:
        options.append(value(f"Keep {current} {unit}", current))
    return options


def _parse_dose(text: str, answers: Answers, env: Env) -> Parsed:
    profile = _profile(answers)
    unit = profile.dosing_unit
    aliases = {
        "": unit,
        unit: unit,
        "mcg/kg": "mcg/kg",
        "µg/kg": "mcg/kg",
        "ug/kg": "mcg/kg",
        "mg/kg": "mg/kg",
        "mg": "mg",
        "mcg": "mcg",
        "µg": "mcg",
    }
    parsed = parse_number(text, what="dose", example=DOSE_EXAMPLE[profile.drug], units=aliases)
    if isinstance(parsed, Problem):
        return parsed
    amount, given = parsed
    if given != unit:
        drug = DRUG_NAMES[profile.drug]
        return Problem(
            f"{drug} is dosed in {unit}, not {given}. Type the dose in {unit}, e.g. {DOSE_EXAMPLE[drug.lower()]}."
        )
    if amount <= 0:
        return Problem("The dose must be more than 0.")
    outside = _outside_label(answers, amount)
    if outside is not None:
        return Confirm(outside, {"dose_amount": amount})
    return {"dose_amount": amount}


def _outside_label(answers: Answers, amount: Decimal) -> str | None:
    """A dose that is not a level of the label is asked about first (the rules would refer it)."""
    drug, unit = answers.drug or "", _profile(answers).dosing_unit
    name = DRUG_NAMES[drug]
    if drug == "romiplostim":
        if romiplostim.LOWEST <= amount <= romiplostim.HIGHEST:
            return None
        where = "outside the label's 1 to 10 mcg/kg"
    else:
        levels = _DOSE_LEVELS.get((drug, answers.indication or ""), ())
        if amount in {Decimal(level) for level in levels}:
            return None
        where = f"not a level of the label ({', '.join(levels)} {unit})"
    return (
        f"{fmt(amount)} {unit} of {name} is {where}. Is that really the current dose? "
        "(If so, the recommendation will refer the decision to the clinician.)"
    )


def _parse_since(text: str, answers: Answers, env: Env) -> Parsed:
    day = parse_date(text, env.today, what="first dose at this level")
    if isinstance(day, Problem):
        return day
    return {"dose_since": day}  # what was counted from the old date is re-asked: DEPENDANTS["dose_since"]


def _parse_last_given(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() == "same as start":
        return {"last_given": answers.dose_since}
    day = parse_date(text, env.today, what="last dose", not_before=answers.dose_since)
    return day if isinstance(day, Problem) else {"last_given": day}


def _last_given_options(answers: Answers, env: Env) -> Options:
    options = [value("Today", "today"), value("Yesterday", "yesterday")]
    if answers.dose_since is not None:
        options.append(value(f"Same as start ({answers.dose_since})", "same as start"))
    return options + _date_options(answers, env, keep=answers.last_given)[2:]


def _doses_apply(answers: Answers, env: Env) -> bool:
    if answers.drug == "romiplostim":
        return answers.status == "on" and answers.dose_amount == romiplostim.HIGHEST
    if answers.drug != "luspatercept" or answers.status != "on":
        return False
    # Counted only by the increase and no-response rules (RULES.md 4): at an increase level or the maximum.
    ladder = luspatercept.LADDERS.get(answers.indication or "")
    return ladder is None or answers.dose_amount in (*ladder.increase_from, ladder.maximum)


def _parse_doses(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() in ("estimate", "estimate from the dates"):
        return {"doses_at_level": None, "doses_estimated": True}
    parsed = parse_number(text, what="number of doses", example="2")
    if isinstance(parsed, Problem):
        return parsed
    count = parsed[0]
    if count != count.to_integral_value() or count < 1:
        return Problem("Type a whole number of doses, 1 or more (or press Estimate from the dates).")
    if answers.dose_since is not None and answers.last_given is not None:
        interval = _profile(answers).interval_days
        most = (answers.last_given - answers.dose_since).days // interval + 1
        if count > most:
            return Problem(
                f"From {answers.dose_since} to {answers.last_given}, every {interval} days, there can be at most "
                f"{most} dose{'s' if most > 1 else ''} at this level. Type the number again, or press Estimate."
            )
    return {"doses_at_level": int(count), "doses_estimated": False}


# --- labs --------------------------------------------------------------------------------------


def _deciding(answers: Answers) -> str:
    return _profile(answers).deciding_test


def _lab_optional(answers: Answers) -> bool:
    return answers.drug == "lusutrombopag" and answers.status == "on"


def _lab_question(answers: Answers, env: Env) -> str:
    if _deciding(answers) == "platelets":
        tail = " (optional once the course has started)" if _lab_optional(answers) else ""
        return f"Latest platelet count{tail}? In ×10^9/L, e.g. 32 (or 32000/µL, 32 G/L)."
    return "Latest pre-transfusion haemoglobin? In g/dL, e.g. 8.9 (or 89 g/L, 5.5 mmol/L)."


def _read_value(text: str, test: str) -> tuple[Decimal, str, bool] | Problem | Suggestion:
    """A lab value: (value, unit, unusual), a Problem, or a likely unit slip to confirm."""
    parsed = parse_number(
        text,
        what="platelet count" if test == "platelets" else "haemoglobin",
        example="32" if test == "platelets" else "8.9",
        units=LAB_UNITS[test],
    )
    if isinstance(parsed, Problem):
        return parsed
    number, unit = parsed
    checked = check_lab(test, number, unit)
    if checked is not None:
        return checked
    return number, unit, is_unusual(test, number, unit)


def _read_lab(text: str, test: str, fields: tuple[str, str]) -> Parsed:
    read = _read_value(text, test)
    if isinstance(read, Problem):
        return read
    value_field, unit_field = fields
    date_field = value_field.replace("_value", "_date")
    if isinstance(read, Suggestion):
        return Confirm(read.message, {value_field: read.value, unit_field: read.unit, date_field: None})
    number, unit, unusual = read
    updates: dict[str, Any] = {value_field: number, unit_field: unit, date_field: None}
    if unusual:
        return Confirm(f"{with_unit(number, unit)} is unusual. Is that right?", updates)
    return updates


def _parse_lab(text: str, answers: Answers, env: Env) -> Parsed:
    if _lab_optional(answers) and text.strip().lower() == "skip":
        return {"lab_value": None, "lab_unit": None, "lab_date": None, "lab_skipped": True}
    parsed = _read_lab(text, _deciding(answers), ("lab_value", "lab_unit"))
    # A new value needs its own date: asked next, with the old one offered as Keep.
    return parsed | {"lab_skipped": False, "lab_date": None} if isinstance(parsed, dict) else parsed


def _test_name(answers: Answers) -> str:
    return "count" if _deciding(answers) == "platelets" else "haemoglobin"


def _parse_lab_date(text: str, answers: Answers, env: Env) -> Parsed:
    day = parse_date(text, env.today, what="date of the result")
    if isinstance(day, Problem):
        return day
    age = (env.today - day).days
    checked = not _lab_optional(answers)  # a lusutrombopag course under way has no lab check (RULES.md 0)
    if checked and age > FRESH_DAYS:
        # lab.stale: said at once, not first on the card; "No" asks for a newer result.
        return Confirm(
            f"That {_test_name(answers)} is {age} days old: the rules need one from the last {FRESH_DAYS} days, "
            "so the recommendation will be to repeat it. Use it anyway, or No to enter a newer one?",
            {"lab_date": day},
            retry="lab_value",
        )
    return {"lab_date": day}


def _deciding_in_unit(answers: Answers) -> Decimal | None:
    if answers.lab_value is None or answers.lab_unit is None:
        return None
    return answers.lab_value * UNITS_BY_TEST[_deciding(answers)][answers.lab_unit]


def _recorded_in(answers: Answers, first: dt.date, last: dt.date) -> bool:
    test = _deciding(answers)
    return any(first <= lab.date <= last and lab.test == test for lab in answers.history_labs)


def _week_before(day: dt.date) -> tuple[dt.date, dt.date]:
    """The window of Q in the romiplostim reduce rule: 10 to 4 days before the deciding count."""
    return day - dt.timedelta(days=10), day - dt.timedelta(days=4)


def _rise_window(day: dt.date) -> tuple[dt.date, dt.date]:
    """luspatercept.hb_rise: a haemoglobin dated in the 21 days before the latest."""
    return day - dt.timedelta(days=luspatercept.RISE_WINDOW_DAYS), day - dt.timedelta(days=1)


def _previous_applies(answers: Answers, env: Env) -> bool:
    """Romiplostim: the week before, when the two-week reduce rule may apply; luspatercept: a rise."""
    if answers.status != "on" or answers.lab_date is None:
        return False
    day = answers.lab_date
    if answers.drug == "romiplostim":
        count = _deciding_in_unit(answers)
        limits = romiplostim.THRESHOLDS[answers.region or "us"]
        # Only where it can decide: above the reduce threshold, not above the hold one (a hold wins).
        needed = count is not None and limits.reduce_above < count <= limits.hold_above
        return needed and not _recorded_in(answers, *_week_before(day))
    if answers.drug == "luspatercept":
        return not _recorded_in(answers, *_rise_window(day))
    if answers.drug == "lusutrombopag" and answers.region == "jp" and answers.dose_since is not None:
        # The Japanese day-5 stop compares a count from day 5 on with the one before the course.
        day_five = answers.dose_since + dt.timedelta(days=4)
        before_course = any(lab.date <= answers.dose_since for lab in answers.history_labs)
        return day >= day_five and not before_course
    return False


def _previous_question(answers: Answers, env: Env) -> str:
    day = answers.lab_date
    assert day is not None
    if answers.drug == "lusutrombopag":
        return (
            f"The platelet count from before the course (on or before day 1, {answers.dose_since})? The course "
            "stops early when a count from day 5 on is 50 or more and at least 20 above it."
        )
    if answers.drug == "romiplostim":
        threshold = romiplostim.THRESHOLDS[answers.region or "us"].reduce_above
        first, last = _week_before(day)
        return (
            f"The previous week's platelet count (taken {first} to {last})? "
            f"The dose is reduced only if both are above {fmt(threshold)}."
        )
    first, last = _rise_window(day)
    # luspatercept.hb_rise reads any such value with no transfusion after it: the lowest decides.
    return (
        f"The lowest haemoglobin from the 3 weeks before ({first} to {last}) with no transfusion after it, "
        "if there is one? A rise of more than 2 g/dL above it reduces the dose."
    )


def _parse_previous(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() in ("skip", "none", "no", "none / skip"):
        return {"previous_value": None, "previous_unit": None, "previous_date": None, "previous_skipped": True}
    parsed = _read_lab(text, _deciding(answers), ("previous_value", "previous_unit"))
    return parsed | {"previous_skipped": False, "previous_date": None} if isinstance(parsed, dict) else parsed


def _parse_previous_date(text: str, answers: Answers, env: Env) -> Parsed:
    assert answers.lab_date is not None
    day = parse_date(text, env.today, what="date of the earlier result")
    if isinstance(day, Problem):
        return day
    if answers.drug == "lusutrombopag" and answers.dose_since is not None and day > answers.dose_since:
        return Problem(f"The count before the course must be dated on or before day 1 ({answers.dose_since}).")
    if day >= answers.lab_date:
        return Problem(f"The earlier result must be dated before the latest one ({answers.lab_date}).")
    window = {"romiplostim": _week_before, "luspatercept": _rise_window}.get(answers.drug or "")
    if window is not None:
        first, last = window(answers.lab_date)
        if not first <= day <= last:
            gap = (answers.lab_date - day).days
            rule = (
                "the two-week rule reads only a count from 4 to 10 days before the latest"
                if answers.drug == "romiplostim"
                else "the rise rule reads only a haemoglobin from the 21 days before the latest"
            )
            return Confirm(
                f"That result is {gap} day{'s' if gap != 1 else ''} before the latest ({answers.lab_date}): "
                f"{rule} ({first} to {last}), so it will not count. Use it anyway, or No to enter another?",
                {"previous_date": day},
                retry="previous_value",
            )
    return {"previous_date": day}


# --- romiplostim and hetrombopag: every count since `since` (stable -> monthly monitoring) -----------


STABLE_RULE_DRUGS = frozenset({"romiplostim", "hetrombopag"})  # monthly monitoring once "stable"
_STABLE_DAYS = dict.fromkeys(STABLE_RULE_DRUGS, STABLE_DAYS)


def _stable_range(answers: Answers) -> tuple[Decimal, Decimal]:
    """The counts that show stability: romiplostim 50 to the reduce threshold; hetrombopag low to 250."""
    if answers.drug == "romiplostim":
        return romiplostim.LOW, romiplostim.THRESHOLDS[answers.region or "us"].reduce_above
    return hetrombopag.LADDERS[answers.indication or "itp"].low, hetrombopag.REDUCE_ABOVE


def _pre_procedure_from(answers: Answers) -> dt.date | None:
    """Lusutrombopag: the first day whose count the pre-procedure warning reads (RULES.md 3), or None."""
    if answers.drug != "lusutrombopag" or answers.procedure_date is None:
        return None
    return answers.procedure_date - dt.timedelta(days=lusutrombopag.PRE_PROCEDURE_DAYS)


def _counts_from(answers: Answers) -> dt.date | None:
    """The first date of the counts this step collects: `since` for the stable rule, or the start of
    lusutrombopag's pre-procedure window."""
    return _pre_procedure_from(answers) if answers.drug == "lusutrombopag" else answers.dose_since


def _counts_apply(answers: Answers, env: Env) -> bool:
    """Only where the counts can decide: monthly monitoring (RULES.md 1 and 2, "stable"), or
    lusutrombopag's critical `pre_procedure_platelets_low` (RULES.md 3, every count from the
    procedure date - 2).

    Stable: on treatment (not on hold), at least STABLE_DAYS at the level, and the latest count fresh,
    in the period and in the stable range (a count out of range rules monthly monitoring out, whatever
    the others say; a stale one refers). Pre-procedure: a course under way once today is in the window
    (before it, no count there can exist yet).
    """
    window = _pre_procedure_from(answers)
    if window is not None:
        return answers.status == "on" and env.today >= window
    stable_days = _STABLE_DAYS.get(answers.drug or "")
    since, day, count = answers.dose_since, answers.lab_date, _deciding_in_unit(answers)
    if stable_days is None or answers.status != "on" or since is None or day is None or count is None:
        return False
    if (env.today - since).days < stable_days or day < since or (env.today - day).days > FRESH_DAYS:
        return False
    low, high = _stable_range(answers)
    return low <= count <= high


def _counts_in_period(answers: Answers, today: dt.date) -> list[tuple[dt.date, Decimal, str]]:
    """Every count the request will carry dated from the step's first date to today, oldest first."""
    first = _counts_from(answers)
    assert first is not None
    entered = [
        (day, value_, unit)
        for value_, unit, day in (
            (answers.previous_value, answers.previous_unit, answers.previous_date),
            (answers.lab_value, answers.lab_unit, answers.lab_date),
        )
        if value_ is not None and unit is not None and day is not None
    ]
    known = [
        (lab.date, lab.value, lab.unit)
        for lab in [*answers.history_labs, *answers.added_labs]
        if lab.test == _deciding(answers)
    ]
    seen = {(day, value_) for day, value_, _ in entered}
    every = [row for row in known if (row[0], row[1]) not in seen] + entered
    return sorted((row for row in every if first <= row[0] <= today), key=lambda row: row[0])


def _count_shown(count: Decimal, unit: str) -> str:
    return fmt(count) if unit == "10^9/L" else with_unit(count, unit)


def _counts_listed(answers: Answers, today: dt.date) -> str:
    return ", ".join(f"{day} {_count_shown(value_, unit)}" for day, value_, unit in _counts_in_period(answers, today))


def _counts_question(answers: Answers, env: Env) -> str:
    listed = _counts_listed(answers, env.today) or "none yet"
    window = _pre_procedure_from(answers)
    if window is not None:
        return (
            f"Platelet counts from {window} ({lusutrombopag.PRE_PROCEDURE_DAYS} days before the procedure): "
            f"{listed}. Any count there below {fmt(lusutrombopag.PRE_PROCEDURE_LOW)} is a critical warning. "
            "Add any others as 'YYYY-MM-DD value' (one per message), or press Done."
        )
    low, high = _stable_range(answers)
    return (
        f"Platelet counts since {answers.dose_since} (the first dose at this level): {listed}. "
        f"Counts are checked monthly instead of weekly only when enough of them since then are all "
        f"{fmt(low)} to {fmt(high)}. Add any others as 'YYYY-MM-DD value' (one per message), or press Done."
    )


def _parse_count(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() in ("done", "none", "no", "skip"):
        return {"counts_done": True}
    if text.strip().lower() in ("remove", "remove the ones added"):  # a slip is undone; the record's stay
        return {"added_labs": [], "counts_done": False, "_stay": True}
    first = _counts_from(answers)
    assert first is not None
    example = f"{max(first, env.today - dt.timedelta(days=14))} 80"
    dated = _split_dated(text, env.today, what="count", example=example)
    if isinstance(dated, Problem):
        return dated
    day, rest = dated
    if day < first:
        what = "the first dose at this level" if first == answers.dose_since else "the pre-procedure window"
        return Problem(
            f"{day} is before {first}, {what}; only counts from then on are read here. Send another, or press Done."
        )
    read = _read_value(rest, "platelets")
    if isinstance(read, Problem):
        return read
    if isinstance(read, Suggestion):
        added = [*answers.added_labs, LabAnswer(test="platelets", value=read.value, unit=read.unit, date=day)]
        return Confirm(read.message, {"added_labs": added, "counts_done": False, "_stay": True})
    number, unit, unusual = read
    added = [*answers.added_labs, LabAnswer(test="platelets", value=number, unit=unit, date=day)]
    updates: dict[str, Any] = {"added_labs": added, "counts_done": False, "_stay": True}
    if unusual:
        return Confirm(f"{with_unit(number, unit)} is unusual. Is that right?", updates)
    return updates


# --- luspatercept: transfusions, baseline, adverse reaction ------------------------------------


def _transfusions_apply(answers: Answers, env: Env) -> bool:
    return answers.drug == "luspatercept" and answers.status == "on"


def _transfusion_start(answers: Answers) -> dt.date | None:
    """From `since` (luspatercept.increase and no_response scale the units from it, RULES.md 4), and from
    21 days before the haemoglobin (hb_high: "in the absence of transfusion") if that is earlier."""
    starts = [answers.dose_since] if answers.dose_since is not None else []
    if answers.lab_date is not None:
        starts.append(answers.lab_date - dt.timedelta(days=luspatercept.TRANSFUSION_FREE_DAYS))
    return min(starts, default=None)


def _transfusion_period(answers: Answers, env: Env) -> dt.date:
    start = _transfusion_start(answers)
    return start if start is not None else env.today - dt.timedelta(days=luspatercept.TWELVE_WEEKS_DAYS)


def _transfusions_in_period(answers: Answers, env: Env) -> list[TransfusionAnswer]:
    first = _transfusion_period(answers, env)
    return sorted((t for t in answers.transfusions if first <= t.date <= env.today), key=lambda t: t.date)


def _transfusions_question(answers: Answers, env: Env) -> str:
    first = _transfusion_period(answers, env)
    listed = "; ".join(f"{t.date}: {fmt(t.units)} u" for t in _transfusions_in_period(answers, env)) or "none yet"
    reason = (
        "the first dose at this level"
        if first == answers.dose_since
        else f"3 weeks before the haemoglobin; the first dose at this level was {answers.dose_since}"
    )
    return (
        f"Red-cell transfusions from {first} ({reason}) to today: send each as 'YYYY-MM-DD units' (e.g. "
        f"{env.today - dt.timedelta(days=14)} 2), then press Done. So far: {listed}."
    )


def _transfusions_options(answers: Answers, env: Env) -> Options:
    done = [value("Done", "done")] if _transfusions_in_period(answers, env) else [value("None", "none")]
    typed = answers.transfusions != _recorded_transfusions(answers, env)
    return [*done, value("Remove the ones added", "remove")] if typed else done


def _recorded_transfusions(answers: Answers, env: Env) -> list[TransfusionAnswer]:
    if answers.record is None or answers.record.drug != "luspatercept":
        return []
    return _prefill("luspatercept", answers.record, env)["transfusions"]  # type: ignore[no-any-return]


def _parse_transfusion(text: str, answers: Answers, env: Env) -> Parsed:
    typed = text.strip().lower()
    if typed in ("none", "done", "no"):
        return {"transfusions_done": True}
    if typed in ("remove", "remove the ones added"):  # a slip is undone; the record's stay
        return {"transfusions": _recorded_transfusions(answers, env), "transfusions_done": False, "_stay": True}
    example = f"{env.today - dt.timedelta(days=14)} 2"
    dated = _split_dated(text, env.today, what="transfusion", example=example, then="units")
    if isinstance(dated, Problem):
        return dated
    day, rest = dated
    match = _TRANSFUSION_UNITS.fullmatch(rest.strip())
    if not match:
        return Problem(f"After the date, send the number of units, e.g. '{day} 2' (not '{rest}').")
    first = _transfusion_period(answers, env)
    if day < first:
        return Problem(f"{day} is before {first}; transfusions before then are not read. Send another, or press Done.")
    units = Decimal(match.group(1).replace(",", "."))
    if units <= 0 or units > 20:
        return Problem(f"{fmt(units)} units is not a plausible transfusion; type 1 to 20 units.")
    added = [*answers.transfusions, TransfusionAnswer(date=day, units=units)]
    return {"transfusions": added, "transfusions_done": False, "_stay": True}


def _baseline_applies(answers: Answers, env: Env) -> bool:
    if answers.drug != "luspatercept" or answers.status != "on" or answers.dose_amount is None:
        return False
    dose = answers.dose_amount
    if answers.indication == "beta_thalassemia":
        return dose in (Decimal(1), Decimal("1.25"))
    return dose == Decimal("1.75")


def _parse_baseline(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() in ("skip", "unknown"):
        return {"baseline": None, "baseline_skipped": True}
    parsed = parse_number(
        text, what="baseline units", example="6", units={"": "u", "u": "u", "units": "u", "unit": "u"}
    )
    if isinstance(parsed, Problem):
        return parsed
    if parsed[0] < 0 or parsed[0] > 100:
        return Problem("Type the red-cell units given in the 12 weeks before the first dose (0 to 100).")
    return {"baseline": parsed[0], "baseline_skipped": False}


def _parse_adverse(text: str, answers: Answers, env: Env) -> Parsed:
    chosen = _choose(text, ADVERSE_NAMES, "answer")
    return chosen if isinstance(chosen, Problem) else {"adverse": chosen}


# --- the steps, in order -------------------------------------------------------------------------


def _always(answers: Answers, env: Env) -> bool:
    return True


def _none(answers: Answers, env: Env) -> Options:
    return []


def _fixed(text: str) -> Callable[[Answers, Env], str]:
    return lambda answers, env: text


def _date_or(keep: Callable[[Answers], dt.date | None]) -> Callable[[Answers, Env], Options]:
    return lambda answers, env: _date_options(answers, env, keep=keep(answers))


def _lab_line(value_: Decimal | None, unit: str | None, day: dt.date | None) -> str:
    if value_ is None or unit is None:
        return "skipped"
    return f"{fmt(value_)} {SHOWN_UNIT[unit]}" + (f" on {day}" if day else "")


STEPS: tuple[Step, ...] = (
    Step(
        "drug",
        "Drug",
        _always,
        _fixed("Which drug?"),
        lambda a, e: [value(name, key) for key, name in DRUG_NAMES.items()],
        _parse_drug,
        lambda a: DRUG_NAMES.get(a.drug or "", "-"),
    ),
    Step(
        "indication",
        "Indication",
        lambda a, e: len(_profile(a).indications) > 1,
        _fixed("Which indication?"),
        lambda a, e: [value(INDICATION_NAMES[k], k) for k in _profile(a).indications],
        _parse_indication,
        lambda a: INDICATION_NAMES.get(a.indication or "", "-"),
    ),
    Step(
        "region",
        "Label",
        lambda a, e: len(_profile(a).regions) > 1,
        _fixed("Which label's rules?"),
        lambda a, e: [value(REGION_NAMES[k], k) for k in _profile(a).regions],
        _parse_region,
        lambda a: REGION_NAMES.get(a.region or "", "-"),
    ),
    Step(
        "patient",
        "Patient",
        _always,
        lambda a, e: (
            "Which patient? Choose one, or type a label for a new one (a code with a digit, e.g. RX-12; no names)."
            if e.patients
            else "Type a label for the patient (a code with a digit, e.g. RX-12 or bed 4; no names)."
        ),
        _patient_options,
        _parse_patient,
        lambda a: f"{a.patient_label}{' (new)' if a.patient_is_new else ''}",
    ),
    Step(
        "weight",
        "Weight",
        lambda a, e: _profile(a).weight_based,
        _fixed("Body weight in kg?"),
        _weight_options,
        _parse_weight,
        lambda a: f"{fmt(a.weight_kg)} kg" + _weight_date_shown(a) if a.weight_kg is not None else "-",
    ),
    Step(
        "age",
        "Age",
        lambda a, e: a.drug == "romiplostim",
        _fixed("Age in years? Children's weight is reassessed every 12 weeks."),
        _age_options,
        _parse_age,
        lambda a: (
            "adult"
            if a.adult and a.age_years is None
            else f"{fmt(a.age_years)} years"
            if a.age_years is not None
            else "-"
        ),
    ),
    Step(
        "weight_date",
        "Weighed on",
        _weighed_applies,
        _weighed_question,
        _weighed_options,
        _parse_weighed,
        lambda a: str(a.weight_date) if a.weight_date else "not known",
    ),
    Step(
        "child_pugh",
        "Child-Pugh",
        lambda a, e: a.drug == "lusutrombopag",
        _fixed("Child-Pugh class?"),
        lambda a, e: [value(c, c) for c in ("A", "B", "C")] + [value("Unknown", "unknown")],
        _parse_child_pugh,
        lambda a: a.child_pugh or ("unknown" if a.child_pugh_unknown else "-"),
    ),
    Step(
        "procedure_date",
        "Procedure date",
        lambda a, e: a.drug == "lusutrombopag",
        _fixed("Date of the procedure (YYYY-MM-DD, or 'in 10 days')?"),
        _none,
        _parse_procedure,
        lambda a: _weekday(a.procedure_date) if a.procedure_date else "-",
    ),
    Step(
        "status",
        "Treatment",
        _always,
        _fixed("Treatment status?"),
        _status_options,
        _parse_status,
        lambda a: (
            "course started"
            if a.drug == "lusutrombopag" and a.status == "on"
            else {"new": "starting", "on": "on treatment", "held": "on hold", None: "-"}[a.status]
        ),
    ),
    Step(
        "dose_amount",
        "Dose",
        _on_treatment,
        _dose_question,
        _dose_options,
        _parse_dose,
        lambda a: f"{fmt(a.dose_amount)} {_profile(a).dosing_unit}" if a.dose_amount is not None else "-",
    ),
    Step(
        "dose_since",
        "At this dose since",
        _on_treatment,
        _fixed("Date of the first dose at this level?"),
        _date_or(lambda a: a.dose_since),
        _parse_since,
        lambda a: str(a.dose_since or "-"),
    ),
    Step(
        "last_given",
        "Last dose",
        _on_treatment,
        _fixed("Date of the last dose given?"),
        _last_given_options,
        _parse_last_given,
        lambda a: str(a.last_given or "-"),
    ),
    Step(
        "doses_at_level",
        "Doses at this level",
        _doses_apply,
        _fixed("How many doses at this level so far?"),
        lambda a, e: [
            value("Estimate from the dates", "estimate"),
            *([value(f"Keep {a.doses_at_level} (recorded)", str(a.doses_at_level))] if a.doses_at_level else []),
        ],
        _parse_doses,
        lambda a: str(a.doses_at_level) if a.doses_at_level else "estimated from the dates",
    ),
    # Asked before the results: a grade 3 or more reaction decides without them (RULES.md 4, rules using no lab).
    Step(
        "adverse",
        "Adverse reaction",
        lambda a, e: a.drug == "luspatercept",
        _fixed("Any current adverse reaction (worst grade)?"),
        lambda a, e: [value(name, key) for key, name in ADVERSE_NAMES.items()],
        _parse_adverse,
        lambda a: ADVERSE_NAMES.get(a.adverse or "", "-"),
    ),
    Step(
        "lab_value",
        "Latest result",
        _always,
        _lab_question,
        lambda a, e: [value("Skip", "skip")] if _lab_optional(a) else [],
        _parse_lab,
        lambda a: _lab_line(a.lab_value, a.lab_unit, a.lab_date),
    ),
    Step(
        "lab_date",
        "Result date",
        lambda a, e: a.lab_value is not None,
        _fixed("Date of that result?"),
        _date_or(lambda a: a.lab_date),
        _parse_lab_date,
        lambda a: str(a.lab_date or "-"),
    ),
    Step(
        "previous_value",
        "Earlier result",
        _previous_applies,
        _previous_question,
        lambda a, e: [value("None / skip", "skip")],
        _parse_previous,
        lambda a: _lab_line(a.previous_value, a.previous_unit, a.previous_date),
    ),
    Step(
        "previous_date",
        "Earlier result date",
        lambda a, e: _previous_applies(a, e) and a.previous_value is not None,
        _fixed("Date of that earlier result?"),
        _date_or(lambda a: a.previous_date),
        _parse_previous_date,
        lambda a: str(a.previous_date or "-"),
    ),
    Step(
        "counts",
        "Counts at this dose",
        _counts_apply,
        _counts_question,
        lambda a, e: [value("Done", "done"), *([value("Remove the ones added", "remove")] if a.added_labs else [])],
        _parse_count,
        lambda a: _counts_listed(a, dt.date.max) if _counts_from(a) is not None else "-",
    ),
    Step(
        "transfusions",
        "Transfusions",
        _transfusions_apply,
        _transfusions_question,
        _transfusions_options,
        _parse_transfusion,
        lambda a: "; ".join(f"{t.date} ({fmt(t.units)} u)" for t in a.transfusions) or "none",
    ),
    Step(
        "baseline",
        "Baseline burden",
        _baseline_applies,
        _fixed("Red-cell units transfused in the 12 weeks before the first dose (baseline burden)?"),
        lambda a, e: [value("Unknown / skip", "skip")],
        _parse_baseline,
        lambda a: f"{fmt(a.baseline)} units / 12 weeks" if a.baseline is not None else "unknown",
    ),
)
STEP_BY_NAME = {step.name: step for step in STEPS}
NUMERIC_STEPS = frozenset({"weight", "age", "dose_amount", "doses_at_level", "lab_value", "previous_value", "baseline"})

# Whether a step has its answer (an edit that makes a new step apply asks it before the review).
ANSWERED: dict[str, Callable[[Answers], bool]] = {
    "drug": lambda a: a.drug is not None,
    "indication": lambda a: a.indication is not None,
    "region": lambda a: a.region is not None,
    "patient": lambda a: a.patient_label is not None,
    "weight": lambda a: a.weight_kg is not None,
    "age": lambda a: a.age_years is not None or a.adult,
    "weight_date": lambda a: a.weight_date is not None or a.weight_date_unknown,
    "child_pugh": lambda a: a.child_pugh is not None or a.child_pugh_unknown,
    "procedure_date": lambda a: a.procedure_date is not None,
    "status": lambda a: a.status is not None,
    "dose_amount": lambda a: a.dose_amount is not None,
    "dose_since": lambda a: a.dose_since is not None,
    "last_given": lambda a: a.last_given is not None,
    "doses_at_level": lambda a: a.doses_at_level is not None or a.doses_estimated,
    "lab_value": lambda a: a.lab_value is not None or a.lab_skipped,
    "lab_date": lambda a: a.lab_date is not None,
    "previous_value": lambda a: a.previous_value is not None or a.previous_skipped,
    "previous_date": lambda a: a.previous_date is not None,
    "counts": lambda a: a.counts_done,
    "transfusions": lambda a: a.transfusions_done,
    "baseline": lambda a: a.baseline is not None or a.baseline_skipped,
    "adverse": lambda a: a.adverse is not None,
}
assert set(ANSWERED) == set(STEP_BY_NAME)


# --- answers that others derive from ---------------------------------------------------------------

# What each step's answer is made of (a change to any of these is a change of the answer).
FIELDS: dict[str, tuple[str, ...]] = {
    "drug": ("drug",),
    "indication": ("indication",),
    "region": ("region",),
    "patient": ("record",),  # another record (a renamed new patient keeps every answer)
    "weight": ("weight_kg",),
    "age": ("age_years", "adult"),
    "weight_date": ("weight_date", "weight_date_unknown"),
    "child_pugh": ("child_pugh", "child_pugh_unknown"),
    "procedure_date": ("procedure_date",),
    "status": ("status",),
    "dose_amount": ("dose_amount",),
    "dose_since": ("dose_since",),
    "last_given": ("last_given",),
    "doses_at_level": ("doses_at_level", "doses_estimated"),
    "lab_value": ("lab_value", "lab_unit", "lab_skipped"),
    "lab_date": ("lab_date",),
    "previous_value": ("previous_value", "previous_unit", "previous_skipped"),
    "previous_date": ("previous_date",),
    "counts": ("added_labs",),
    "transfusions": ("transfusions",),
    "baseline": ("baseline", "baseline_skipped"),
    "adverse": ("adverse",),
}

# step -> the steps whose answers were given relative to it, and are asked again when it changes
# (transitively: a changed dose re-asks "since", which re-asks the counts and transfusions since then).
DEPENDANTS: dict[str, tuple[str, ...]] = {
    "drug": ("indication", "region", "child_pugh", "procedure_date", "status", "lab_value", "baseline", "adverse"),
    "procedure_date": ("counts",),  # lusutrombopag: the pre-procedure window moves with it
    "patient": ("weight", "age", "status", "counts", "transfusions"),  # what the record offered
    "weight": ("weight_date",),
    "status": ("dose_amount", "counts", "transfusions"),
    "dose_amount": ("dose_since", "last_given", "doses_at_level"),  # a new level starts its own history
    "dose_since": ("last_given", "doses_at_level", "counts", "transfusions"),
    "last_given": ("doses_at_level",),
    "lab_value": ("lab_date", "previous_value", "counts"),
    "lab_date": ("previous_value", "counts", "transfusions"),
    "previous_value": ("previous_date",),
}

# How a step is asked again: its answer cleared, except lists whose entries stay offered as they were.
_KEEP_ENTRIES = {"counts": {"counts_done": False}, "transfusions": {"transfusions_done": False}}


def _reopening(step: str) -> dict[str, Any]:
    if step in _KEEP_ENTRIES:
        return _KEEP_ENTRIES[step]
    return {name: Answers.model_fields[name].get_default(call_default_factory=True) for name in FIELDS[step]}


def dependants_of(step: str) -> list[str]:
    """Every step derived from `step`, directly or through another, in the order they are asked."""
    found: set[str] = set()
    todo = list(DEPENDANTS.get(step, ()))
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += DEPENDANTS.get(name, ())
    return [name for name in STEP_BY_NAME if name in found]


def reopen_dependants(before: Answers, after: Answers, step: str, updates: dict[str, Any]) -> Answers:
    """`after` with the dependants of `step` asked again when its answer changed.

    A field the same answer set (an "As saved" status sets the dose and its dates) is kept.
    """
    if all(getattr(before, name) == getattr(after, name) for name in FIELDS[step]):
        return after
    names = dependants_of(step)
    # Transfusions follow the result's date only where it moves their period's start (21 days before the
    # haemoglobin, if earlier than `since`): a new value re-asks its date, which decides that.
    period_kept = step == "lab_value" or (
        step == "lab_date" and _transfusion_start(before) == _transfusion_start(after)
    )
    if "transfusions" in names and period_kept:
        names.remove("transfusions")
    changes: dict[str, Any] = {}
    for name in names:
        changes |= {field: default for field, default in _reopening(name).items() if field not in updates}
    return after.model_copy(update=changes) if changes else after


assert set(FIELDS) == set(STEP_BY_NAME)
assert all(name in STEP_BY_NAME for names in DEPENDANTS.values() for name in names)
