"""Words for people: the review screen, the recommendation, its rationale, help, and record views."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from core.models import DoseResponse
from core.numbers import fmt
from flows.replies import Button, Env, Reply, rows
from flows.state import Answers
from flows.steps import DRUG_NAMES, INDICATION_NAMES, REGION_NAMES, Step

DISCLAIMER = "This supports, and does not replace, clinical judgement."
COMMANDS_LINE = (
    "Commands: /new a consultation, /patients your patients, /history LABEL a patient's record, "
    "/reminders, /settings, /cancel, /help."
)
WELCOME = (
    "Welcome to HemaDose, a dosing assistant for romiplostim, hetrombopag, lusutrombopag and "
    "luspatercept.\n"
    "I ask for the drug, the patient (a label you choose: no names needed), the dose and the latest "
    "results, and give the next dose with its date, the next blood test and the safety warnings, "
    "each with the rule and source behind it.\n"
    f"{DISCLAIMER}\n{COMMANDS_LINE}"
)
ACTION_WORDS = {
    "start": "START",
    "continue": "CONTINUE",
    "increase": "INCREASE",
    "decrease": "REDUCE",
    "hold": "HOLD: no dose now",
    "resume": "RESUME",
    "discontinue": "DISCONTINUE",
    "complete": "COURSE COMPLETE: no more doses",
    "refer": "REFER: the rules do not decide this case; the clinician decides",
}
SEVERITY_MARK = {"critical": "‼ CRITICAL:", "warning": "⚠", "info": "ℹ"}
TEST_NAMES = {"platelets": "platelet count", "hemoglobin": "haemoglobin (pre-dose)"}
_STEP_HELP = {
    "drug": "Choose the drug to dose. Each has its own rules (RULES.md v1).",
    "patient": "A label identifies the patient in your records only: a code or initials, never a name.",
    "weight": "Actual body weight in kg (you may type lb or g: I will convert and ask you to confirm).",
    "lab_value": "Platelets in ×10^9/L (the same number as ×10^3/µL or G/L); a count per µL such as 52000 "
    "is read as 52. Haemoglobin in g/dL, g/L or mmol/L.",
    "dose_since": "The date of the first administration at the current dose level.",
    "last_given": "The date of the most recent administration.",
    "transfusions": "Each red-cell transfusion as a date and units, one per message; then press Done.",
}


def _day(value: str | dt.date) -> str:
    day = dt.date.fromisoformat(value) if isinstance(value, str) else value
    return f"{day:%a} {day.isoformat()}"


def help_text(state: str) -> str:
    specific = _STEP_HELP.get(state, "")
    general = (
        "Answer with a button or by typing. Back returns to the previous question (your answers are kept); "
        "Cancel ends the consultation."
    )
    return "\n".join(part for part in (specific, general, COMMANDS_LINE) if part)


_SHOWN_WITH_VALUE = frozenset({"lab_date", "previous_date"})  # a result's date is on its value's line


def review(answers: Answers, steps: Sequence[Step]) -> Reply:
    shown = [step for step in steps if step.name not in _SHOWN_WITH_VALUE]
    lines = ["Please check before I calculate:"]
    lines += [f"• {step.title}: {step.shown(answers)}" for step in shown]
    edits = [Button(f"Edit {step.title.lower()}", f"edit:{step.name}") for step in shown]
    buttons = (
        (Button("✅ Get recommendation", "confirm"),),
        *rows(edits, 3),
        (Button("⬅ Back", "back"), Button("✖ Cancel", "cancel")),
    )
    return Reply("\n".join(lines), buttons)


def result_buttons(saved: bool) -> tuple[Button, ...]:
    why, new = Button("Why?", "why"), Button("New consultation", "new")
    return (Button("Set reminders", "remind"), why, new) if saved else (Button("Save to patient", "save"), why, new)


def _amount(value: Any) -> str:
    return fmt(Decimal(str(value)))


def recommendation(response: DoseResponse, answers: Answers, env: Env) -> Reply:
    drug = DRUG_NAMES[response.ruleset.split("/")[0]]
    region = REGION_NAMES.get(response.ruleset.split("/")[1], "")
    head = f"{drug} · {INDICATION_NAMES.get(answers.indication or '', '')} · {region} · patient {answers.patient_label}"
    lines = [head, ""]
    action = ACTION_WORDS[response.action]
    if response.dose is not None:
        was = ""
        if answers.dose_amount is not None and response.action in ("increase", "decrease", "resume"):
            was = f" (was {fmt(answers.dose_amount)})"
        lines.append(f"{action}: {_amount(response.dose.amount)} {response.dose.unit}{was}")
        assert response.total is not None
        total = f"Dose: {_amount(response.total.amount)} {response.total.unit}"
        if response.dose.unit.endswith("/kg") and answers.weight_kg is not None:
            total += f" ({_amount(response.dose.amount)} {response.dose.unit} × {fmt(answers.weight_kg)} kg)"
        if response.volume_ml is not None:
            total += f" · inject {_amount(response.volume_ml)} mL"
            if response.injections and response.injections > 1:
                total += f" in {response.injections} injections"
        lines.append(total)
        if response.vials:
            vials = " + ".join(f"{v.count} × {_amount(v.size)} {v.unit}" for v in response.vials)
            lines.append(f"Vials: {vials}")
        if response.next_dose_date is not None:
            lines.append(f"Next dose: {_day(response.next_dose_date)}")
        if len(response.schedule) > 1:
            lines.append(
                f"Course: {_day(response.schedule[0])} to {_day(response.schedule[-1])} "
                f"({len(response.schedule)} daily doses)"
            )
    else:
        lines.append(action)
    if response.next_monitoring is not None:
        tests = " and ".join(TEST_NAMES[t] for t in response.next_monitoring.tests)
        lines.append(f"Next check: {tests} on {_day(response.next_monitoring.date)}")
    else:
        lines.append("Next check: none (treatment stopped)")
    if response.warnings:
        lines += ["", "Warnings:"]
        lines += [f"{SEVERITY_MARK[w.severity]} {w.message}" for w in response.warnings]
    rule = response.rationale[0]
    lines += ["", f"Rule: {rule.rule} · {rule.source}", DISCLAIMER]
    return Reply("\n".join(lines), (result_buttons(False),))


def why(response: dict[str, Any], saved: bool) -> Reply:
    lines = ["Why this recommendation:"]
    for number, entry in enumerate(response["rationale"], 1):
        lines.append(f"{number}. {entry['text']} [{entry['rule']}; {entry['source']}]")
    if response["warnings"]:
        lines += ["", "Warnings in full:"]
        lines += [f"- {w['code']} ({w['severity']}): {w['message']}" for w in response["warnings"]]
    lines += ["", f"Ruleset {response['ruleset']} (HemaDose rules v1). {DISCLAIMER}"]
    return Reply("\n".join(lines), (result_buttons(saved),))


def patients(labels: Sequence[tuple[str, str | None]]) -> Reply:
    """`labels`: (label, drug or None) for each of the user's patients."""
    if not labels:
        return Reply(
            "You have no saved patients yet. A patient is saved with Save to patient after a recommendation.",
            ((Button("New consultation", "new"),),),
        )
    lines = ["Your patients:"]
    lines += [f"• {label}" + (f" ({DRUG_NAMES.get(drug, drug)})" if drug else "") for label, drug in labels]
    lines.append("Type /history LABEL to see one patient's record.")
    return Reply("\n".join(lines), ((Button("New consultation", "new"),),))


def history(label: str, events: Sequence[tuple[dt.date, str]]) -> Reply:
    """`events`: (date, line) for doses, results and recommendations, newest first."""
    if not events:
        return Reply(f"Nothing is recorded for {label} yet.")
    lines = [f"Record of {label} (newest first):"]
    lines += [f"{day} {text}" for day, text in events[:40]]
    if len(events) > 40:
        lines.append(f"… and {len(events) - 40} earlier entries.")
    return Reply("\n".join(lines))
