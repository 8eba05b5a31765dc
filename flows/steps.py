"""The questions of a consultation, as data: when each applies, how it is asked, how it is read.

A step's parser returns updates to the answers, a `Problem` (ask again, nothing lost) or a
`Suggestion`-style confirmation (`Confirm`). It asks only what RULES.md needs for the drug and
the patient's state, and offers what the patient's record already holds as a one-tap answer.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core import luspatercept, romiplostim
from core.framework import DrugProfile
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
_TRANSFUSION = re.compile(r"^(.+?)\s+(\d+(?:[.,]\d+)?)\s*(?:units?|u)?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Confirm:
    """Ask 'is that right?' before applying `updates`."""

    question: str
    updates: dict[str, Any]


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
    options = [value("Today", "today"), value("Yesterday", "yesterday")]
    if keep is not None and keep not in (env.today, env.today - dt.timedelta(days=1)):
        options.insert(0, value(f"Keep {keep}", keep.isoformat()))
    return options


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
    updates: dict[str, Any] = {"drug": chosen} | _DRUG_DEPENDENT  # what was asked for the old drug no longer holds
    updates["indication"] = profile.indications[0] if len(profile.indications) == 1 else None
    updates["region"] = profile.default_region if len(profile.regions) == 1 else None
    return updates


_DRUG_DEPENDENT: dict[str, Any] = {
    "status": None,
    "dose_amount": None,
    "dose_since": None,
    "last_given": None,
    "doses_at_level": None,
    "doses_estimated": False,
    "lab_value": None,
    "lab_unit": None,
    "lab_date": None,
    "lab_skipped": False,
    "previous_value": None,
    "previous_unit": None,
    "previous_date": None,
    "previous_skipped": False,
    "transfusions": [],
    "transfusions_done": False,
    "baseline": None,
    "baseline_skipped": False,
    "adverse": None,
    "child_pugh": None,
    "child_pugh_unknown": False,
    "procedure_date": None,
    "editing": False,
}


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
        return _prefill(answers, env.patients[known[typed.lower()]], env)
    if not _LABEL.match(typed):
        return Problem(
            "A patient label is 1 to 24 letters, digits, spaces or . _ # / - (for example RX-12 or bed 4). "
            "No names are needed."
        )
    if _FULL_NAME.match(typed):
        return Problem(f"'{typed}' looks like a person's name. Please use a code or initials instead (e.g. RX-12).")
    return {"patient_label": typed, "patient_is_new": True, "history_labs": [], "record": None}


def _prefill(answers: Answers, record: PatientSummary, env: Env) -> dict[str, Any]:
    """What the record holds, so a follow-up visit takes a few taps."""
    updates: dict[str, Any] = {"patient_label": record.label, "patient_is_new": False, "record": record}
    deciding = _profile(answers).deciding_test
    horizon = env.today - dt.timedelta(days=120)
    updates["history_labs"] = [
        LabAnswer.model_validate(lab.model_dump())
        for lab in record.labs
        if lab.test == deciding and horizon <= lab.date <= env.today
    ]
    if answers.drug == "luspatercept" and record.drug == "luspatercept":
        updates["transfusions"] = [
            TransfusionAnswer(date=t.date, units=Decimal(t.units)) for t in record.transfusions if t.date <= env.today
        ]
    return updates


def _patient_options(answers: Answers, env: Env) -> Options:
    return [value(label, label) for label in sorted(env.patients)[:12]]


# --- weight, age, liver function, procedure ----------------------------------------------------

_WEIGHT_UNITS = {"": "kg", "kg": "kg", "kgs": "kg", "lb": "lb", "lbs": "lb", "g": "g"}


def _parse_weight(text: str, answers: Answers, env: Env) -> Parsed:
    record = _record(answers, env)
    if text.strip().lower() == "keep" and record is not None and record.weight_kg is not None:
        return {"weight_kg": Decimal(record.weight_kg), "weight_date": record.weight_date}
    parsed = parse_number(text, what="weight", example="72", units=_WEIGHT_UNITS)
    if isinstance(parsed, Problem):
        return parsed
    number, unit = parsed
    kg = number if unit == "kg" else number / 1000 if unit == "g" else (number * LB_TO_KG).quantize(Decimal("0.1"))
    bounds = PLAUSIBILITY["weight_kg"]
    updates = {"weight_kg": kg, "weight_date": env.today, "weight_date_unknown": False}
    if kg > bounds.high and not bounds.implausible(kg / 1000):
        return Confirm(
            f"{fmt(kg)} kg is not possible; it looks like grams: {fmt(kg / 1000)} kg?",
            {"weight_kg": kg / 1000, "weight_date": env.today},
        )
    if bounds.implausible(kg):
        return Problem(f"A weight of {fmt(kg)} kg is not possible (1 to 350 kg). Type the weight in kg.")
    if bounds.unusual(kg):
        return Confirm(f"A weight of {fmt(kg)} kg is unusual. Is that right?", updates)
    if unit == "lb":
        return Confirm(f"{fmt(number)} lb is {fmt(kg)} kg. Use {fmt(kg)} kg?", updates)
    return updates


def _weight_options(answers: Answers, env: Env) -> Options:
    record = _record(answers, env)
    if record is None or record.weight_kg is None:
        return []
    when = f", {record.weight_date}" if record.weight_date else ""
    return [value(f"Keep {fmt(Decimal(record.weight_kg))} kg{when}", "keep")]


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
        options.insert(0, value(f"Keep {record.age_years} years", "keep"))
    return options


def _weighed_applies(answers: Answers, env: Env) -> bool:
    """Children on romiplostim: the weight's date decides the 12-week reassessment (RULES.md 1)."""
    return answers.drug == "romiplostim" and answers.age_years is not None and answers.age_years < 18


def _parse_weighed(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() in ("not known", "unknown"):
        return {"weight_date": None, "weight_date_unknown": True}
    day = parse_date(text, env.today, what="date of the weighing")
    return day if isinstance(day, Problem) else {"weight_date": day, "weight_date_unknown": False}


def _weighed_options(answers: Answers, env: Env) -> Options:
    return [*_date_options(answers, env, keep=answers.weight_date), value("Not known", "not known")]


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
    if record is not None:
        state = "on hold at" if record.on_hold else "on"
        shown = f"{fmt(Decimal(record.dose_amount or '0'))} {_profile(answers).dosing_unit}"
        options.insert(0, value(f"As saved: {state} {shown} since {record.dose_since}", "same"))
    return options


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
    # The dose on record first, as Keep; the other levels after it (no button twice).
    options = [value(f"{level} {unit}", level) for level in levels if level != current]
    if current is not None:
        options.insert(0, value(f"Keep {current} {unit}", current))
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
    updates: dict[str, Any] = {"dose_since": day}
    if answers.last_given is not None and answers.last_given < day:
        updates["last_given"] = None  # asked next; no longer consistent
    return updates


def _parse_last_given(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() == "same as start":
        return {"last_given": answers.dose_since}
    day = parse_date(text, env.today, what="last dose", not_before=answers.dose_since)
    return day if isinstance(day, Problem) else {"last_given": day}


def _last_given_options(answers: Answers, env: Env) -> Options:
    options = _date_options(answers, env, keep=answers.last_given)
    if answers.dose_since is not None:
        options.append(value(f"Same as start ({answers.dose_since})", "same as start"))
    return options


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


def _read_lab(text: str, test: str, fields: tuple[str, str]) -> Parsed:
    parsed = parse_number(
        text,
        what="platelet count" if test == "platelets" else "haemoglobin",
        example="32" if test == "platelets" else "8.9",
        units=LAB_UNITS[test],
    )
    if isinstance(parsed, Problem):
        return parsed
    number, unit = parsed
    value_field, unit_field = fields
    checked = check_lab(test, number, unit)
    if isinstance(checked, Problem):
        return checked
    date_field = value_field.replace("_value", "_date")
    if isinstance(checked, Suggestion):
        return Confirm(checked.message, {value_field: checked.value, unit_field: checked.unit, date_field: None})
    updates: dict[str, Any] = {value_field: number, unit_field: unit, date_field: None}
    if is_unusual(test, number, unit):
        return Confirm(f"{with_unit(number, unit)} is unusual. Is that right?", updates)
    return updates


def _parse_lab(text: str, answers: Answers, env: Env) -> Parsed:
    if _lab_optional(answers) and text.strip().lower() == "skip":
        return {"lab_value": None, "lab_unit": None, "lab_date": None, "lab_skipped": True}
    parsed = _read_lab(text, _deciding(answers), ("lab_value", "lab_unit"))
    # A new value needs its own date: asked next, with the old one offered as Keep.
    return parsed | {"lab_skipped": False, "lab_date": None} if isinstance(parsed, dict) else parsed


def _parse_lab_date(text: str, answers: Answers, env: Env) -> Parsed:
    day = parse_date(text, env.today, what="date of the result")
    return day if isinstance(day, Problem) else {"lab_date": day}


def _deciding_in_unit(answers: Answers) -> Decimal | None:
    if answers.lab_value is None or answers.lab_unit is None:
        return None
    return answers.lab_value * UNITS_BY_TEST[_deciding(answers)][answers.lab_unit]


def _recorded_in(answers: Answers, first: dt.date, last: dt.date) -> bool:
    return any(first <= lab.date <= last for lab in answers.history_labs)


def _previous_applies(answers: Answers, env: Env) -> bool:
    """Romiplostim: the week before, when the two-week reduce rule may apply; luspatercept: a rise."""
    if answers.status != "on" or answers.lab_date is None:
        return False
    day = answers.lab_date
    if answers.drug == "romiplostim":
        count = _deciding_in_unit(answers)
        limits = romiplostim.THRESHOLDS[answers.region or "us"]
        window = (day - dt.timedelta(days=10), day - dt.timedelta(days=4))
        # Only where it can decide: above the reduce threshold, not above the hold one (a hold wins).
        needed = count is not None and limits.reduce_above < count <= limits.hold_above
        return needed and not _recorded_in(answers, *window)
    if answers.drug == "luspatercept":
        return not _recorded_in(answers, day - dt.timedelta(days=21), day - dt.timedelta(days=1))
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
        return (
            f"The previous week's platelet count (taken {day - dt.timedelta(days=10)} to "
            f"{day - dt.timedelta(days=4)})? The dose is reduced only if both are above {fmt(threshold)}."
        )
    return (
        f"A haemoglobin from the 3 weeks before ({day - dt.timedelta(days=21)} to "
        f"{day - dt.timedelta(days=1)}), if there is one? It shows a rise of more than 2 g/dL."
    )


def _parse_previous(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() in ("skip", "none", "no"):
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
    return {"previous_date": day}


# --- luspatercept: transfusions, baseline, adverse reaction ------------------------------------


def _transfusions_apply(answers: Answers, env: Env) -> bool:
    return answers.drug == "luspatercept" and answers.status == "on"


def _transfusions_question(answers: Answers, env: Env) -> str:
    listed = "; ".join(f"{t.date}: {fmt(t.units)} u" for t in answers.transfusions) or "none yet"
    return (
        "Red-cell transfusions in the last 12 weeks: send each as 'YYYY-MM-DD units' (e.g. "
        f"{env.today - dt.timedelta(days=14)} 2), then press Done. So far: {listed}."
    )


def _transfusions_options(answers: Answers, env: Env) -> Options:
    return [value("Done", "done")] if answers.transfusions else [value("None", "none")]


def _parse_transfusion(text: str, answers: Answers, env: Env) -> Parsed:
    typed = text.strip().lower()
    if typed in ("none", "done", "no"):
        if typed == "none":
            return {"transfusions": [], "transfusions_done": True}
        return {"transfusions_done": True}
    match = _TRANSFUSION.match(text.strip())
    if not match:
        return Problem(
            f"Send a transfusion as a date and units, e.g. '{env.today - dt.timedelta(days=14)} 2', or press Done."
        )
    day = parse_date(match.group(1), env.today, what="transfusion date")
    if isinstance(day, Problem):
        return day
    units = Decimal(match.group(2).replace(",", "."))
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
            "Which patient? Choose one, or type a label for a new one (a code or initials; no names needed)."
            if e.patients
            else "Type a label for the patient (a code or initials, e.g. RX-12; no names needed)."
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
        lambda a: (
            f"{fmt(a.weight_kg)} kg" + (f" (weighed {a.weight_date})" if a.weight_date else "")
            if a.weight_kg is not None
            else "-"
        ),
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
        _fixed("When was that weight measured? In children it is reassessed every 12 weeks."),
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
            *([value(f"Keep {a.doses_at_level} (recorded)", str(a.doses_at_level))] if a.doses_at_level else []),
            value("Estimate from the dates", "estimate"),
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
    "transfusions": lambda a: a.transfusions_done,
    "baseline": lambda a: a.baseline is not None or a.baseline_skipped,
    "adverse": lambda a: a.adverse is not None,
}
assert set(ANSWERED) == set(STEP_BY_NAME)
