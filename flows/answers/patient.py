"""Drug, indication, label, the patient (and what their record offers), weight, age, liver, procedure."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from core import romiplostim
from core.numbers import fmt
from core.registry import rules_for
from core.units import PLAUSIBILITY
from flows.answers.common import Confirm, Options, Parsed, choose, date_options, profile_of, record_of, value
from flows.names import DRUG_NAMES, INDICATION_NAMES, REGION_NAMES
from flows.parsing import Problem, parse_date, parse_number
from flows.replies import Env, PatientSummary
from flows.state import Answers, LabAnswer, TransfusionAnswer

LB_TO_KG = Decimal("0.45359237")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._#/-]{0,23}$")
# Two or more words of letters only (any case, hyphens and apostrophes allowed): most likely a name.
_FULL_NAME = re.compile(r"^[^\W\d_][^\W\d_'-]*(?:['-][^\W\d_]+)*(?: +[^\W\d_][^\W\d_'-]*(?:['-][^\W\d_]+)*)+$")
# A label is a code with a digit (RX-12, bed 4, AB12); a run of four letters or more is most likely a
# name ('Smith 1950', 'john.smith1'), unless it is one of the words codes are made of.
_LONG_WORD = re.compile(r"[^\W\d_]{4,}")
CODE_WORDS = frozenset({"room", "ward", "unit", "case", "site", "study", "trial", "patient", "subject", "cohort"})
NO_DIGIT = "A patient label needs at least one digit, e.g. RX-12 or bed 4; no names."
# The age question is romiplostim's: a child is under its pediatric age, and their weight is reassessed.
ADULT_FROM = romiplostim.PEDIATRIC_BELOW_YEARS
CHILD_WEIGHT_WEEKS = romiplostim.PEDIATRIC_WEIGHT_MAX_AGE_DAYS // 7
ADULT = f"Adult ({fmt(ADULT_FROM)} or over)"
PATIENT_BUTTONS = 12  # saved patients offered as buttons at the patient question (the service reads only these)


# --- drug, indication, region ------------------------------------------------------------------


def parse_drug(text: str, answers: Answers, env: Env) -> Parsed:
    chosen = choose(text, DRUG_NAMES, "drug")
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
        updates |= prefill(chosen, answers.record, env)
    return updates


def parse_indication(text: str, answers: Answers, env: Env) -> Parsed:
    allowed = {key: INDICATION_NAMES[key] for key in profile_of(answers).indications}
    chosen = choose(text, allowed, "indication")
    return chosen if isinstance(chosen, Problem) else {"indication": chosen}


def parse_region(text: str, answers: Answers, env: Env) -> Parsed:
    allowed = {key: REGION_NAMES[key] for key in profile_of(answers).regions}
    aliases = {"japan": "jp", "europe": "eu", "usa": "us", "china": "cn"}
    typed = aliases.get(text.strip().lower(), text)
    chosen = choose(typed, allowed, "label")
    return chosen if isinstance(chosen, Problem) else {"region": chosen}


# --- patient -----------------------------------------------------------------------------------


def parse_patient(text: str, answers: Answers, env: Env) -> Parsed:
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
    return {"patient_label": record.label, "patient_is_new": False, "record": record} | prefill(drug, record, env)


def prefill(drug: str | None, record: PatientSummary, env: Env) -> dict[str, Any]:
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


def patient_options(answers: Answers, env: Env) -> Options:
    return [value(label, label) for label in sorted(env.patients)[:PATIENT_BUTTONS]]


# --- weight, age, liver function, procedure ----------------------------------------------------

_WEIGHT_UNITS = {"": "kg", "kg": "kg", "kgs": "kg", "lb": "lb", "lbs": "lb", "g": "g"}


def parse_weight(text: str, answers: Answers, env: Env) -> Parsed:
    record = record_of(answers, env)
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


def weight_options(answers: Answers, env: Env) -> Options:
    record = record_of(answers, env)
    if record is None or record.weight_kg is None:
        return []
    when = str(record.weight_date) if record.weight_date else "date not known"
    return [value(f"Keep {fmt(Decimal(record.weight_kg))} kg, {when}", "keep")]


def parse_age(text: str, answers: Answers, env: Env) -> Parsed:
    typed = text.strip().lower()
    if typed in ("adult", ADULT.lower(), f"{fmt(ADULT_FROM)}+"):
        return {"age_years": None, "adult": True}
    record = record_of(answers, env)
    if typed == "keep" and record is not None and record.age_years is not None:
        return {"age_years": Decimal(record.age_years), "adult": False}
    parsed = parse_number(text, what="age in years", example="45")
    if isinstance(parsed, Problem):
        return parsed
    age = parsed[0]
    if age > PLAUSIBILITY["age_years"].high:
        return Confirm(
            f"{fmt(age)} years is not possible; is it months, {fmt((age / 12).quantize(Decimal('0.1')))} years?",
            {"age_years": (age / 12).quantize(Decimal("0.1")), "adult": False},
        )
    if age < 0:
        return Problem("The age cannot be negative.")
    return {"age_years": age, "adult": age >= ADULT_FROM}


def age_options(answers: Answers, env: Env) -> Options:
    options = [value(ADULT, "adult")]
    record = record_of(answers, env)
    if record is not None and record.age_years is not None:
        options.append(value(f"Keep {record.age_years} years", "keep"))  # after the fixed option
    return options


def weight_date_shown(answers: Answers) -> str:
    if answers.weight_date is not None:
        return f" (weighed {answers.weight_date})"
    return " (weighing date not known)" if answers.weight_date_unknown else ""


def weighed_applies(answers: Answers, env: Env) -> bool:
    """Every newly typed weight (adults too): its date is the user's to give, or "not known"."""
    if answers.drug is None or not profile_of(answers).weight_based:
        return False
    return answers.weight_kg is not None and not answers.weight_from_record


def weighed_question(answers: Answers, env: Env) -> str:
    child = answers.age_years is not None and answers.age_years < romiplostim.PEDIATRIC_BELOW_YEARS
    tail = (
        f" In children it is reassessed every {CHILD_WEIGHT_WEEKS} weeks."
        if answers.drug == "romiplostim" and child
        else ""
    )
    return f"When was that weight measured?{tail}"


def parse_weighed(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() in ("not known", "unknown", "don't know", "dont know"):
        return {"weight_date": None, "weight_date_unknown": True}
    day = parse_date(text, env.today, what="date of the weighing")
    return day if isinstance(day, Problem) else {"weight_date": day, "weight_date_unknown": False}


def weighed_options(answers: Answers, env: Env) -> Options:
    keep = date_options(answers, env, keep=answers.weight_date)[2:]
    return [value("Today", "today"), value("Yesterday", "yesterday"), value("Not known", "not known"), *keep]


def parse_child_pugh(text: str, answers: Answers, env: Env) -> Parsed:
    typed = text.strip().upper().removeprefix("CHILD-PUGH ").strip()
    if typed in ("A", "B", "C"):
        return {"child_pugh": typed, "child_pugh_unknown": False}
    if typed == "UNKNOWN":
        return {"child_pugh": None, "child_pugh_unknown": True}
    return Problem("Choose the Child-Pugh class: A, B or C (or Unknown).")


def parse_procedure(text: str, answers: Answers, env: Env) -> Parsed:
    day = parse_date(text, env.today, what="procedure date", future=True, past=False)
    return day if isinstance(day, Problem) else {"procedure_date": day}
