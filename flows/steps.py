"""The questions of a consultation, as data: when each applies, how it is asked, how it is read.

A step's parser returns updates to the answers, a `Problem` (ask again, nothing lost) or a
`Suggestion`-style confirmation (`Confirm`). It asks only what RULES.md needs for the drug and
the patient's state, and offers what the patient's record already holds as a one-tap answer,
after the fixed options (so an option keeps its number whether or not the record adds one).
An answer that others were given relative to (the dose, its first date, the result's date...)
re-asks them when it changes: `DEPENDANTS`, applied by `reopen_dependants` on every answer.

How each answer is read lives in flows/answers/ (one module per topic), the names people see in
flows/names.py; the `name as name` imports re-export what other modules import from here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from core.numbers import fmt
from flows.answers import dose, labs, luspatercept, patient
from flows.answers.common import Confirm as Confirm
from flows.answers.common import Options, Parsed, date_options, profile_of, weekday
from flows.answers.common import value as value
from flows.answers.labs import STABLE_RULE_DRUGS as STABLE_RULE_DRUGS
from flows.answers.patient import record_answers as record_answers
from flows.names import ADVERSE_NAMES as ADVERSE_NAMES
from flows.names import DRUG_NAMES as DRUG_NAMES
from flows.names import INDICATION_NAMES as INDICATION_NAMES
from flows.names import REGION_NAMES as REGION_NAMES
from flows.replies import Env
from flows.state import Answers


@dataclass(frozen=True, slots=True)
class Step:
    """One question: when it applies, how it is asked and read, how it is shown, and when it is answered."""

    name: str
    title: str  # for the review screen's edit button
    applies: Callable[[Answers, Env], bool]
    question: Callable[[Answers, Env], str]
    options: Callable[[Answers, Env], Options]
    parse: Callable[[str, Answers, Env], Parsed]
    shown: Callable[[Answers], str]  # the review line
    answered: Callable[[Answers], bool]  # has its answer (an edit that makes a new step apply asks it first)
    numeric: bool = False  # the question takes a typed number (Reply.numeric)


# --- the steps, in order -------------------------------------------------------------------------


def _always(answers: Answers, env: Env) -> bool:
    return True


def _none(answers: Answers, env: Env) -> Options:
    return []


def _fixed(text: str) -> Callable[[Answers, Env], str]:
    return lambda answers, env: text


def _date_or(keep: Callable[[Answers], dt.date | None]) -> Callable[[Answers, Env], Options]:
    return lambda answers, env: date_options(answers, env, keep=keep(answers))


STEPS: tuple[Step, ...] = (
    Step(
        "drug",
        "Drug",
        _always,
        _fixed("Which drug?"),
        lambda a, e: [value(name, key) for key, name in DRUG_NAMES.items()],
        patient.parse_drug,
        lambda a: DRUG_NAMES.get(a.drug or "", "-"),
        lambda a: a.drug is not None,
    ),
    Step(
        "indication",
        "Indication",
        lambda a, e: len(profile_of(a).indications) > 1,
        _fixed("Which indication?"),
        lambda a, e: [value(INDICATION_NAMES[k], k) for k in profile_of(a).indications],
        patient.parse_indication,
        lambda a: INDICATION_NAMES.get(a.indication or "", "-"),
        lambda a: a.indication is not None,
    ),
    Step(
        "region",
        "Label",
        lambda a, e: len(profile_of(a).regions) > 1,
        _fixed("Which label's rules?"),
        lambda a, e: [value(REGION_NAMES[k], k) for k in profile_of(a).regions],
        patient.parse_region,
        lambda a: REGION_NAMES.get(a.region or "", "-"),
        lambda a: a.region is not None,
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
        patient.patient_options,
        patient.parse_patient,
        lambda a: f"{a.patient_label}{' (new)' if a.patient_is_new else ''}",
        lambda a: a.patient_label is not None,
    ),
    Step(
        "weight",
        "Weight",
        lambda a, e: profile_of(a).weight_based,
        _fixed("Body weight in kg?"),
        patient.weight_options,
        patient.parse_weight,
        lambda a: f"{fmt(a.weight_kg)} kg" + patient.weight_date_shown(a) if a.weight_kg is not None else "-",
        lambda a: a.weight_kg is not None,
        numeric=True,
    ),
    Step(
        "age",
        "Age",
        lambda a, e: a.drug == "romiplostim",
        _fixed(f"Age in years? Children's weight is reassessed every {patient.CHILD_WEIGHT_WEEKS} weeks."),
        patient.age_options,
        patient.parse_age,
        lambda a: (
            "adult"
            if a.adult and a.age_years is None
            else f"{fmt(a.age_years)} years"
            if a.age_years is not None
            else "-"
        ),
        lambda a: a.age_years is not None or a.adult,
        numeric=True,
    ),
    Step(
        "weight_date",
        "Weighed on",
        patient.weighed_applies,
        patient.weighed_question,
        patient.weighed_options,
        patient.parse_weighed,
        lambda a: str(a.weight_date) if a.weight_date else "not known",
        lambda a: a.weight_date is not None or a.weight_date_unknown,
    ),
    Step(
        "child_pugh",
        "Child-Pugh",
        lambda a, e: a.drug == "lusutrombopag",
        _fixed("Child-Pugh class?"),
        lambda a, e: [value(c, c) for c in ("A", "B", "C")] + [value("Unknown", "unknown")],
        patient.parse_child_pugh,
        lambda a: a.child_pugh or ("unknown" if a.child_pugh_unknown else "-"),
        lambda a: a.child_pugh is not None or a.child_pugh_unknown,
    ),
    Step(
        "procedure_date",
        "Procedure date",
        lambda a, e: a.drug == "lusutrombopag",
        _fixed("Date of the procedure (YYYY-MM-DD, or 'in 10 days')?"),
        _none,
        patient.parse_procedure,
        lambda a: weekday(a.procedure_date) if a.procedure_date else "-",
        lambda a: a.procedure_date is not None,
    ),
    Step(
        "status",
        "Treatment",
        _always,
        _fixed("Treatment status?"),
        dose.status_options,
        dose.parse_status,
        lambda a: (
            "course started"
            if a.drug == "lusutrombopag" and a.status == "on"
            else {"new": "starting", "on": "on treatment", "held": "on hold", None: "-"}[a.status]
        ),
        lambda a: a.status is not None,
    ),
    Step(
        "dose_amount",
        "Dose",
        dose.on_treatment,
        dose.dose_question,
        dose.dose_options,
        dose.parse_dose,
        lambda a: f"{fmt(a.dose_amount)} {profile_of(a).dosing_unit}" if a.dose_amount is not None else "-",
        lambda a: a.dose_amount is not None,
        numeric=True,
    ),
    Step(
        "dose_since",
        "At this dose since",
        dose.on_treatment,
        _fixed("Date of the first dose at this level?"),
        _date_or(lambda a: a.dose_since),
        dose.parse_since,
        lambda a: str(a.dose_since or "-"),
        lambda a: a.dose_since is not None,
    ),
    Step(
        "last_given",
        "Last dose",
        dose.on_treatment,
        _fixed("Date of the last dose given?"),
        dose.last_given_options,
        dose.parse_last_given,
        lambda a: str(a.last_given or "-"),
        lambda a: a.last_given is not None,
    ),
    Step(
        "doses_at_level",
        "Doses at this level",
        dose.doses_apply,
        _fixed("How many doses at this level so far?"),
        lambda a, e: [
            value("Estimate from the dates", "estimate"),
            *([value(f"Keep {a.doses_at_level} (recorded)", str(a.doses_at_level))] if a.doses_at_level else []),
        ],
        dose.parse_doses,
        lambda a: str(a.doses_at_level) if a.doses_at_level else "estimated from the dates",
        lambda a: a.doses_at_level is not None or a.doses_estimated,
        numeric=True,
    ),
    # Asked before the results: a grade 3 or more reaction decides without them (RULES.md 4, rules using no lab).
    Step(
        "adverse",
        "Adverse reaction",
        lambda a, e: a.drug == "luspatercept",
        _fixed("Any current adverse reaction (worst grade)?"),
        lambda a, e: [value(name, key) for key, name in ADVERSE_NAMES.items()],
        luspatercept.parse_adverse,
        lambda a: ADVERSE_NAMES.get(a.adverse or "", "-"),
        lambda a: a.adverse is not None,
    ),
    Step(
        "lab_value",
        "Latest result",
        _always,
        labs.lab_question,
        lambda a, e: [value("Skip", "skip")] if labs.lab_optional(a) else [],
        labs.parse_lab,
        lambda a: labs.lab_line(a.lab_value, a.lab_unit, a.lab_date),
        lambda a: a.lab_value is not None or a.lab_skipped,
        numeric=True,
    ),
    Step(
        "lab_date",
        "Result date",
        lambda a, e: a.lab_value is not None,
        _fixed("Date of that result?"),
        _date_or(lambda a: a.lab_date),
        labs.parse_lab_date,
        lambda a: str(a.lab_date or "-"),
        lambda a: a.lab_date is not None,
    ),
    Step(
        "previous_value",
        "Earlier result",
        labs.previous_applies,
        labs.previous_question,
        lambda a, e: [value("None / skip", "skip")],
        labs.parse_previous,
        lambda a: labs.lab_line(a.previous_value, a.previous_unit, a.previous_date),
        lambda a: a.previous_value is not None or a.previous_skipped,
        numeric=True,
    ),
    Step(
        "previous_date",
        "Earlier result date",
        lambda a, e: labs.previous_applies(a, e) and a.previous_value is not None,
        _fixed("Date of that earlier result?"),
        _date_or(lambda a: a.previous_date),
        labs.parse_previous_date,
        lambda a: str(a.previous_date or "-"),
        lambda a: a.previous_date is not None,
    ),
    Step(
        "counts",
        "Counts at this dose",
        labs.counts_apply,
        labs.counts_question,
        lambda a, e: [value("Done", "done"), *([value("Remove the ones added", "remove")] if a.added_labs else [])],
        labs.parse_count,
        lambda a: labs.counts_listed(a, dt.date.max) if labs.counts_from(a) is not None else "-",
        lambda a: a.counts_done,
    ),
    Step(
        "transfusions",
        "Transfusions",
        luspatercept.transfusions_apply,
        luspatercept.transfusions_question,
        luspatercept.transfusions_options,
        luspatercept.parse_transfusion,
        lambda a: "; ".join(f"{t.date} ({fmt(t.units)} u)" for t in a.transfusions) or "none",
        lambda a: a.transfusions_done,
    ),
    Step(
        "baseline",
        "Baseline burden",
        luspatercept.baseline_applies,
        _fixed(
            f"Red-cell units transfused in the {luspatercept.BASELINE_WEEKS} weeks before the first dose "
            "(baseline burden)?"
        ),
        lambda a, e: [value("Unknown / skip", "skip")],
        luspatercept.parse_baseline,
        lambda a: (
            f"{fmt(a.baseline)} units / {luspatercept.BASELINE_WEEKS} weeks" if a.baseline is not None else "unknown"
        ),
        lambda a: a.baseline is not None or a.baseline_skipped,
        numeric=True,
    ),
)
STEP_BY_NAME = {step.name: step for step in STEPS}
NUMERIC_STEPS = frozenset(step.name for step in STEPS if step.numeric)

# Whether a step has its answer (an edit that makes a new step apply asks it before the review).
ANSWERED: dict[str, Callable[[Answers], bool]] = {step.name: step.answered for step in STEPS}
