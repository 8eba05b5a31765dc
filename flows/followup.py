"""A follow-up visit, "Same regimen, new result": the record in one message, then only the new results.

The record message (from `/patients LABEL`, or a reminder's "Enter today's count") shows everything
the recommendation will use from the record; pressing "Same regimen, new result" confirms it. The
follow-up then pre-fills every answer from the record and asks only what the record cannot hold
(the new result and its date; for luspatercept also transfusions not yet on record and the current
adverse reaction) and anything the record lacks that the rules need (never guessed). No review
screen: the record was confirmed in the record message.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from core.numbers import fmt
from core.registry import rules_for
from flows.answers.luspatercept import BASELINE_WEEKS
from flows.answers.patient import ADULT_FROM
from flows.buttons import RecordButton, RecordKind
from flows.parsing import with_unit
from flows.replies import Button, Env, Reply
from flows.state import Answers, PatientSummary
from flows.steps import (
    DRUG_NAMES,
    INDICATION_NAMES,
    REGION_NAMES,
    STABLE_RULE_DRUGS,
    STEP_BY_NAME,
    record_answers,
    value,
)

# The prefixes of flows.buttons.RecordButton data ('fu:' + label), for the callers that still match them.
FOLLOWUP = f"{RecordKind.FOLLOWUP}:"  # start the follow-up (also on romiplostim and luspatercept dose reminders)
FULL = f"{RecordKind.FULL}:"  # a full consultation for the patient, the record's answers offered as Keep
HISTORY = f"{RecordKind.HISTORY}:"  # the patient's history
TREND = f"{RecordKind.TREND}:"  # the patient's trend chart (flows/trend.py)
SAME_REGIMEN = "Same regimen, new result"
_ACTION = {"decrease": "REDUCE", "hold": "HOLD", "complete": "COURSE COMPLETE"}
_RECENT = 4  # deciding results shown in the record message


def find(label: str, env: Env) -> PatientSummary | None:
    """The user's patient by label, as the chat matches labels (ignoring case)."""
    if label in env.patients:
        return env.patients[label]
    found = [record for known, record in env.patients.items() if known.lower() == label.lower()]
    return found[0] if len(found) == 1 else None


def has_regimen(record: PatientSummary) -> bool:
    return record.drug is not None and record.dose_amount is not None and record.dose_since is not None


def record_buttons(record: PatientSummary) -> tuple[tuple[Button, ...], ...]:
    def data(kind: RecordKind) -> str:
        return RecordButton(kind, record.label).encode()

    first = (Button(SAME_REGIMEN, data(RecordKind.FOLLOWUP)),) if has_regimen(record) else ()
    return (
        *((first,) if first else ()),
        (Button("Full consultation", data(RecordKind.FULL)),),
        (Button("History", data(RecordKind.HISTORY)), Button("Trend", data(RecordKind.TREND))),
    )


def record_message(record: PatientSummary, env: Env) -> Reply:
    """The patient's record in one message: what a follow-up would use, to confirm with one press."""
    lines = [f"Patient {record.label}"]
    drug = record.drug
    if drug is None:
        lines.append("No current treatment on record (none was started, or it was stopped or completed).")
    else:
        profile = rules_for(drug).profile
        parts = [DRUG_NAMES[drug], INDICATION_NAMES.get(record.indication or "", "-")]
        parts.append(REGION_NAMES.get(record.region or "", "-"))
        lines.append(" · ".join(parts))
    if record.weight_kg is not None:
        weighed = f"weighed {record.weight_date}" if record.weight_date else "weighing date not known"
        lines.append(f"Weight: {fmt(Decimal(record.weight_kg))} kg ({weighed})")
    if record.age_years is not None:
        lines.append(f"Age: {fmt(Decimal(record.age_years))} years")
    elif drug == "romiplostim":
        lines.append("Age: adult")
    if drug == "lusutrombopag":
        lines.append(f"Child-Pugh: {record.child_pugh or 'not recorded'}")
        lines.append(f"Procedure: {record.procedure_date or 'not recorded'}")
    if drug is not None and record.dose_amount is not None:
        state = "on hold at" if record.on_hold else "on"
        lines.append(
            f"Dose: {state} {fmt(Decimal(record.dose_amount))} {profile.dosing_unit} since {record.dose_since}"
        )
        given = str(record.last_given) if record.last_given else "not recorded"
        if record.last_given is not None and record.dose_since is not None and record.last_given < record.dose_since:
            given += " (before this level)"
        if _last_given(record, env) is None:
            given += ": asked again"
        lines.append(f"Last given: {given}")
        # Only where the rules count them (luspatercept; romiplostim at its highest level).
        counted = STEP_BY_NAME["doses_at_level"].applies(prefill(record, env), env) if has_regimen(record) else False
        if record.doses_at_level and counted:
            lines.append(f"Doses at this level: {record.doses_at_level}")
    if drug is not None:
        test = rules_for(drug).profile.deciding_test
        name = "Platelet counts" if test == "platelets" else "Haemoglobin"
        results = [lab for lab in record.labs if lab.test == test]
        since = record.dose_since
        if since is not None and drug in STABLE_RULE_DRUGS:
            # Every count since the level began: the stable rule reads them all, and the follow-up takes
            # this message's list as confirmed (it does not ask for the counts again).
            results = [lab for lab in results if lab.date >= since]
            name = f"Platelet counts since {since}"
        else:
            results = results[-_RECENT:]
        shown = "; ".join(f"{with_unit(Decimal(lab.value), lab.unit)} on {lab.date}" for lab in reversed(results))
        lines.append(f"{name}: {shown or 'none recorded'}")
    if drug == "luspatercept":
        listed = "; ".join(f"{t.date} {fmt(Decimal(t.units))} u" for t in record.transfusions)
        lines.append(f"Transfusions: {listed or 'none recorded'}")
        if record.baseline_rbc_units_per_12_weeks is not None:
            baseline = fmt(Decimal(record.baseline_rbc_units_per_12_weeks))
            lines.append(f"Baseline burden: {baseline} units / {BASELINE_WEEKS} weeks")
    if record.last_action is not None:
        action = _ACTION.get(record.last_action, record.last_action.upper())
        dose = f" {record.last_dose}" if record.last_dose else ""
        rule = f" ({record.last_rule})" if record.last_rule else ""
        lines.append(f"Last recommendation ({record.last_decided}): {action}{dose}{rule}")
    if has_regimen(record):
        lines.append(f"If all this still holds, press {SAME_REGIMEN}: I ask only the new result.")
    return Reply("\n".join(lines), record_buttons(record))


def prefill(record: PatientSummary, env: Env) -> Answers:
    """Every answer the record holds; what it lacks stays unanswered and is asked (never guessed)."""
    assert has_regimen(record)
    answers = Answers(drug=record.drug, indication=record.indication, region=record.region, followup=True)
    answers = answers.model_copy(update=record_answers(record.drug, record, env))
    updates: dict[str, object] = {
        "status": "held" if record.on_hold else "on",
        "dose_amount": Decimal(record.dose_amount or "0"),
        "dose_since": record.dose_since,
        "doses_at_level": record.doses_at_level,
        "last_given": _last_given(record, env),
        "counts_done": True,  # every count since `since` is listed in the record message, confirmed there
    }
    if record.weight_kg is not None:
        updates |= {"weight_kg": Decimal(record.weight_kg), "weight_date": record.weight_date}
        # The consultation that saved this weight asked its date; none saved means it was "not known".
        updates["weight_date_unknown"] = record.weight_date is None
    if record.age_years is not None:
        age = Decimal(record.age_years)
        updates |= {"age_years": age, "adult": age >= ADULT_FROM}
    else:
        # RULES.md 8: a missing age is read as adult (the chat saves no age for "Adult (18 or over)").
        updates["adult"] = True
    if record.child_pugh is not None:
        updates["child_pugh"] = record.child_pugh
    if record.procedure_date is not None and record.procedure_date >= env.today:
        updates["procedure_date"] = record.procedure_date
    if record.baseline_rbc_units_per_12_weeks is not None:
        updates["baseline"] = Decimal(record.baseline_rbc_units_per_12_weeks)
    return answers.model_copy(update=updates)


def _last_given(record: PatientSummary, env: Env) -> dt.date | None:
    """The record's last dose, or None (then asked) where it cannot be the last dose at this level now.

    A last dose before the level began (the record after an increase) was given at the old level;
    one more than an interval ago means a dose fell due that the record does not show (a daily
    drug's record is a day old by the next day): the clinician is asked rather than the record's
    date declared the last (it would read as missed or late doses).
    """
    given, since = record.last_given, record.dose_since
    if given is None or since is None or given < since or record.drug is None:
        return None
    if record.on_hold:
        return given  # no dose falls due during a hold: the last one before it stands
    interval = rules_for(record.drug).profile.interval_days
    return given if given >= env.today - dt.timedelta(days=interval) else None


def question(step: str, answers: Answers, env: Env) -> str | None:
    """The follow-up's own words for a question, or None for the consultation's."""
    label = answers.patient_label
    if step == "lab_value" and answers.drug is not None:
        dose = (
            f"{fmt(answers.dose_amount)} {rules_for(answers.drug).profile.dosing_unit}" if answers.dose_amount else ""
        )
        about = f"{label} ({DRUG_NAMES[answers.drug].lower()} {dose})"
        if rules_for(answers.drug).profile.deciding_test == "hemoglobin":
            return f"New pre-transfusion haemoglobin for {about}? In g/dL, e.g. 8.9 (or 89 g/L, 5.5 mmol/L)."
        optional = " (optional during a course: Skip if there is none)" if answers.drug == "lusutrombopag" else ""
        return f"New platelet count for {about}{optional}? In ×10^9/L, e.g. 32 (or 32000/µL, 32 G/L)."
    if step == "transfusions":
        record = answers.record
        on_record = {(t.date, Decimal(t.units)) for t in record.transfusions} if record is not None else set()
        known = "; ".join(f"{t.date} {fmt(t.units)} u" for t in answers.transfusions if (t.date, t.units) in on_record)
        added = "; ".join(
            f"{t.date} {fmt(t.units)} u" for t in answers.transfusions if (t.date, t.units) not in on_record
        )
        return (
            f"Red-cell transfusions since {answers.dose_since} that are not on the record? On record: "
            f"{known or 'none'}. Send each missing one as 'YYYY-MM-DD units' (e.g. "
            f"{env.today - dt.timedelta(days=7)} 2), then press Done. Added now: {added or 'none'}."
        )
    if step == "adverse":
        question = f"Any adverse reaction now in {label} (worst grade)?"
        if _transfusions_to_ask(answers, env):
            listed = _on_record(answers)
            question += (
                f" And is any red-cell transfusion since {answers.dose_since} missing from the record "
                f"(on record: {listed or 'none'})?"
            )
        return question
    return None


NOTHING_NEW = "nothing new"


def _on_record(answers: Answers) -> str:
    record = answers.record
    return "; ".join(f"{t.date} {fmt(Decimal(t.units))} u" for t in record.transfusions) if record else ""


def _transfusions_to_ask(answers: Answers, env: Env) -> bool:
    return STEP_BY_NAME["transfusions"].applies(answers, env) and not answers.transfusions_done


def nothing_new(step: str, answer: str, answers: Answers, env: Env) -> dict[str, object] | None:
    """Luspatercept: one press for no reaction and no transfusion missing (the two facts a record cannot hold)."""
    if step == "adverse" and answer.strip().lower() in (NOTHING_NEW, NOTHING_BUTTON.lower()):
        return {"adverse": "none"} | ({"transfusions_done": True} if _transfusions_to_ask(answers, env) else {})
    return None


NOTHING_BUTTON = "None, and no transfusion missing"


def options(step: str, answers: Answers, env: Env) -> list[Button] | None:
    if step == "adverse" and _transfusions_to_ask(answers, env):
        # Last, so that the reaction grades keep the numbers they have in a full consultation.
        grades = STEP_BY_NAME["adverse"].options(answers, env)
        return [*grades, value(NOTHING_BUTTON, NOTHING_NEW)]
    if step == "transfusions":
        record = answers.record
        on_record = len(record.transfusions) if record is not None else 0
        if len(answers.transfusions) > on_record:
            return [value("Done", "done")]
        return [value("None missing", "done")]
    return None


def translate(step: str, answer: str) -> str:
    """In a follow-up, 'none' for transfusions means none missing: the record's ones are kept."""
    if step == "transfusions" and answer.strip().lower() in ("none", "no", "none missing"):
        return "done"
    return answer


def typed_button(text: str, label: str) -> str | None:
    """The data of a record message's button typed by its label (as the chat reads typed labels)."""
    typed = " ".join(text.lower().split())
    kinds = {
        SAME_REGIMEN.lower(): RecordKind.FOLLOWUP,
        "same regimen": RecordKind.FOLLOWUP,
        "full consultation": RecordKind.FULL,
        "history": RecordKind.HISTORY,
        "trend": RecordKind.TREND,
    }
    kind = kinds.get(typed)
    return RecordButton(kind, label).encode() if kind is not None else None


def unknown(label: str) -> str:
    return f"You have no patient labelled '{label}'. /patients lists your labels."


def no_regimen(label: str) -> str:
    return (
        f"No current treatment is on record for {label} (none was started, or it was stopped or completed), "
        "so there is no regimen to continue: start a full consultation."
    )
