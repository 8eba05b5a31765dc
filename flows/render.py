"""Words for people: the review screen, the recommendation, its rationale, help, and record views."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from core import hetrombopag, luspatercept, lusutrombopag, romiplostim
from core.engine import RULESET_VERSION
from core.errors import RequestError
from core.framework import FRESH_DAYS, Context
from core.models import DoseRequest, DoseResponse
from core.numbers import fmt
from core.registry import rules_for
from flows.administration import administration
from flows.buttons import Edit, RecordButton, RecordKind, Word
from flows.replies import Button, Env, Reply, rows
from flows.request import build_request
from flows.state import Answers
from flows.steps import ADVERSE_NAMES, DRUG_NAMES, INDICATION_NAMES, REGION_NAMES, Step

# The ruleset the card and Why? name: the core's response names only drug/region, so the version
# is read from the core.
RULES_VERSION = RULESET_VERSION  # one source: the core's
RULES_NAME = f"HemaDose rules {RULES_VERSION}"
DISCLAIMER = "This supports, and does not replace, clinical judgement."
COMMANDS_LINE = (
    "Commands: /new a consultation, /patients your patients, /history LABEL a patient's record, "
    "/trend LABEL a patient's chart, /reminders, /settings, /cancel, /help."
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
    "drug": f"Choose the drug to dose. Each has its own rules (RULES.md {RULES_VERSION}).",
    "patient": "A label identifies the patient in your records only: a code with at least one digit (e.g. RX-12 or "
    "bed 4), never a name.",
    "weight": "Actual body weight in kg (you may type lb or g: I will convert and ask you to confirm).",
    "lab_value": "Platelets in ×10^9/L (the same number as ×10^3/µL or G/L). A count per µL such as 52000 "
    "is offered as 52 ×10^9/L for you to confirm (Yes, use it) or re-enter. Haemoglobin in g/dL, g/L or mmol/L.",
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
    edits = [Button(f"Edit {step.title.lower()}", Edit(step.name).encode()) for step in shown]
    buttons = (
        (Button("✅ Get recommendation", Word.CONFIRM.value),),
        *rows(edits, 3),
        (Button("⬅ Back", Word.BACK.value), Button("✖ Cancel", Word.CANCEL.value)),
    )
    return Reply("\n".join(lines), buttons)


def result_buttons(saved: bool) -> tuple[Button, ...]:
    why, new = Button("Why?", Word.WHY.value), Button("New consultation", Word.NEW.value)
    if saved:
        return (Button("Set reminders", Word.REMIND.value), why, new)
    return (Button("Save to patient", Word.SAVE.value), why, new)


def trend_rows(label: str | None) -> tuple[tuple[Button, ...], ...]:
    """The card's Trend button (the patient's chart, flows/trend.py), where the consultation has a patient."""
    return ((Button("Trend", RecordButton(RecordKind.TREND, label).encode()),),) if label else ()


def _amount(value: Any) -> str:
    return fmt(Decimal(str(value)))


def recommendation(response: DoseResponse, answers: Answers, env: Env, request: DoseRequest | None = None) -> Reply:
    """The card: what to do first (with its reason for a refer or a hold), then how and when.

    `request` is the one the core decided on; by default it is built again from the answers.
    """
    drug_key, region_key = response.ruleset.split("/")[:2]
    drug = DRUG_NAMES[drug_key]
    region = REGION_NAMES.get(region_key, "")
    head = f"{drug} · {INDICATION_NAMES.get(answers.indication or '', '')} · {region} · patient {answers.patient_label}"
    lines = [head, ""]
    ctx = _context(answers, env) if request is None else Context.of(request, rules_for(request.drug).profile)
    lines.append(_headline(response, answers, ctx))
    if response.dose is not None:
        given = administration(drug_key, response.model_dump(mode="json"))
        if response.dose.unit.endswith("/kg") and answers.weight_kg is not None:  # the weight it was worked from
            per_kg = f"({_amount(response.dose.amount)} {response.dose.unit})"
            given = given.replace(per_kg, f"{per_kg[:-1]} × {fmt(answers.weight_kg)} kg)", 1)
        lines.append(f"Dose: {given}")
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
    if response.action == "hold":
        pass  # the headline says when to recheck
    elif response.next_monitoring is not None:
        tests = " and ".join(TEST_NAMES[t] for t in response.next_monitoring.tests)
        lines.append(f"Next check: {tests} on {_day(response.next_monitoring.date)}")
    else:
        lines.append("Next check: none (treatment stopped)")
    if response.warnings:
        lines += ["", "Warnings:"]
        lines += [f"{SEVERITY_MARK[w.severity]} {w.message}" for w in response.warnings]
    rule = response.rationale[0]
    lines += ["", f"Rule: {rule.rule} · {rule.source}", f"{RULES_NAME}. {DISCLAIMER}"]
    return Reply("\n".join(lines), (result_buttons(False), *trend_rows(answers.patient_label)))


def _context(answers: Answers, env: Env) -> Context | None:
    """The core's view of the request the card answers (the deciding result, the dose, the dates).

    The card is rendered right after the request was built from the same answers, so this is the
    request the core decided on; None only if it can no longer be built (then the headline is generic).
    """
    try:
        request = DoseRequest.model_validate(build_request(answers, env))
        return Context.of(request, rules_for(request.drug).profile)
    except (ValidationError, RequestError, AssertionError, KeyError):
        return None


def _headline(response: DoseResponse, answers: Answers, ctx: Context | None) -> str:
    action = ACTION_WORDS[response.action]
    if response.action == "refer":
        reason = _refer_reason(response.rationale[0].rule, ctx, answers) if ctx is not None else None
        return f"REFER: {reason}" if reason else action
    if response.action == "hold":
        return f"{action}. {_hold_next(response, answers, ctx)}"
    if response.action == "discontinue" and ctx is not None:
        reason = _stop_reason(response.rationale[0].rule, ctx)
        return f"{action}: {reason}" if reason else action
    if response.dose is not None:
        was = ""
        if answers.dose_amount is not None and response.action in ("increase", "decrease", "resume"):
            was = f" (was {fmt(answers.dose_amount)})"
        return f"{action}: {_amount(response.dose.amount)} {response.dose.unit}{was}"
    return action


def _hold_next(response: DoseResponse, answers: Answers, ctx: Context | None) -> str:
    """'Recheck the platelet count on Sun 2026-11-29; resume at 2 mcg/kg when it is below 200 ×10^9/L.'"""
    drug = response.ruleset.split("/")[0]
    recheck = ""
    if response.next_monitoring is not None:
        tests = " and ".join(_TEST_SHORT[t] for t in response.next_monitoring.tests)
        recheck = f"Recheck the {tests} on {_day(response.next_monitoring.date)}"
    before = answers.dose_amount  # the dose held (a hold from treatment) or the pre-hold dose (still held)
    if ctx is not None and ctx.request.current_dose is not None:
        before = ctx.request.current_dose.amount
    resume = _resume_rule(drug, ctx.region if ctx is not None else "", ctx, before)
    parts = [part for part in (recheck, resume) if part]
    return "; ".join(parts) + "." if parts else ""


def _resume_rule(drug: str, region: str, ctx: Context | None, before: Decimal | None) -> str:
    """The drug's resume rule with its threshold and dose, all read from the core."""
    if before is None or ctx is None:
        return ""
    if drug == "romiplostim":
        below = romiplostim.THRESHOLDS[region].resume_below
        resumed = before - romiplostim.STEP
        if resumed < romiplostim.LOWEST:
            return (
                f"when it is below {fmt(below)} ×10^9/L the clinician decides how to resume "
                f"({fmt(before)} minus {fmt(romiplostim.STEP)} mcg/kg is under {fmt(romiplostim.LOWEST)} mcg/kg)"
            )
        return f"resume at {fmt(resumed)} mcg/kg when it is below {fmt(below)} ×10^9/L"
    if drug == "hetrombopag":
        below = hetrombopag.RESUME_BELOW
        resumed = before - hetrombopag.RESUME_STEP
        if resumed not in hetrombopag.LADDERS[ctx.request.indication].levels:
            return (
                f"when it is below {fmt(below)} ×10^9/L the clinician decides how to resume "
                f"({fmt(before)} minus {fmt(hetrombopag.RESUME_STEP)} mg is not a level)"
            )
        return f"resume at {fmt(resumed)} mg when it is below {fmt(below)} ×10^9/L"
    if drug == "luspatercept":
        return (
            f"resume at the pre-hold {fmt(before)} mg/kg when it is {fmt(luspatercept.RESUME_AT_OR_BELOW)} g/dL or less"
        )
    return ""


_TEST_SHORT = {"platelets": "platelet count", "hemoglobin": "haemoglobin"}
_CLINICIAN = "the clinician decides"


def _refer_reason(rule: str, ctx: Context, answers: Answers) -> str | None:
    """Why the rules refer, and what to do, from the deciding rule and the request's data."""
    request = ctx.request
    drug = ctx.profile.drug
    test = _TEST_SHORT[ctx.profile.deciding_test]
    result = ctx.deciding
    dose = request.current_dose
    if rule == "lab.missing":
        return f"no {test} — take one today (the rules need one from the last {FRESH_DAYS} days)"
    if rule == "lab.stale" and result is not None:
        age = (ctx.as_of - result.date).days
        return (
            f"the {test} is {age} days old ({_day(result.date)}) — repeat it today "
            f"(the rules need one from the last {FRESH_DAYS} days)"
        )
    if rule == "dose.not_a_level" and dose is not None:
        unit = ctx.profile.dosing_unit
        return (
            f"{fmt(dose.amount)} {unit} is not a dose of the label ({_levels(drug, request.indication)}) — {_CLINICIAN}"
        )
    seen = _seen(ctx)
    if rule == "romiplostim.age" and request.patient.age_years is not None:
        return (
            f"age {fmt(request.patient.age_years)} years — romiplostim is not approved below "
            f"{fmt(romiplostim.MIN_AGE_YEARS)} year; {_CLINICIAN}"
        )
    if rule in ("romiplostim.start", "hetrombopag.start") and seen:
        above = romiplostim.THRESHOLDS[ctx.region].hold_above if drug == "romiplostim" else hetrombopag.HOLD_ABOVE
        return f"not started — {seen} is above {fmt(above)} ×10^9/L; {_CLINICIAN}"
    if rule == "luspatercept.start" and seen:
        return f"not started — {seen} is {fmt(luspatercept.HOLD_AT_OR_ABOVE)} g/dL or more; {_CLINICIAN}"
    if rule == "romiplostim.resume" and dose is not None and seen:
        below = romiplostim.THRESHOLDS[ctx.region].resume_below
        return (
            f"{seen} is below {fmt(below)} ×10^9/L, but resuming at {fmt(dose.amount)} minus "
            f"{fmt(romiplostim.STEP)} mcg/kg would be under {fmt(romiplostim.LOWEST)} mcg/kg — "
            f"{_CLINICIAN} how to resume"
        )
    if rule == "romiplostim.reduce" and dose is not None:
        above = romiplostim.THRESHOLDS[ctx.region].reduce_above
        return (
            f"platelets above {fmt(above)} ×10^9/L for 2 consecutive weeks, but reducing {fmt(dose.amount)} by "
            f"{fmt(romiplostim.STEP)} mcg/kg would be under {fmt(romiplostim.LOWEST)} mcg/kg — {_CLINICIAN}"
        )
    if rule == "hetrombopag.resume" and dose is not None and seen:
        return (
            f"{seen} is below {fmt(hetrombopag.RESUME_BELOW)} ×10^9/L, but {fmt(dose.amount)} minus "
            f"{fmt(hetrombopag.RESUME_STEP)} mg is not a level — {_CLINICIAN} how to resume"
        )
    if rule == "hetrombopag.reduce" and dose is not None and seen:
        return (
            f"{seen} is above {fmt(hetrombopag.REDUCE_ABOVE)} ×10^9/L at the lowest level, {fmt(dose.amount)} mg "
            f"— there is no lower dose; {_CLINICIAN}"
        )
    if rule == "luspatercept.adverse_reaction" and request.adverse_reaction is not None:
        grade = ADVERSE_NAMES.get(answers.adverse or "", f"grade {request.adverse_reaction.grade}").lower()
        when = " before the first dose" if dose is None else ""
        return f"adverse reaction ({grade}){when} — the label's management was not confirmed; {_CLINICIAN}"
    if rule == "luspatercept.increase" and dose is not None:
        return (
            f"{ctx.doses_at_level} doses at {fmt(dose.amount)} mg/kg: whether to increase depends on the baseline "
            f"transfusion burden, which is not given — enter it, or {_CLINICIAN}"
        )
    if rule == "luspatercept.no_response" and dose is not None:
        return (
            f"{ctx.doses_at_level} doses at the maximum {fmt(dose.amount)} mg/kg: judging the response needs the "
            f"baseline transfusion burden, which is not given — enter it, or {_CLINICIAN}"
        )
    if rule == "lusutrombopag.child_pugh_c":
        what = "whether to stop the course" if dose is not None else "(do not start)"
        return f"contraindicated in Japan (Child-Pugh C) — {_CLINICIAN} {what}"
    if rule == "lusutrombopag.too_late" and request.procedure_date is not None:
        away = (request.procedure_date - ctx.as_of).days
        earliest, last = lusutrombopag.START_WINDOW[ctx.region]
        return (
            f"the procedure on {_day(request.procedure_date)} is {away} days away — too late for the "
            f"{lusutrombopag.COURSE_DAYS}-day course, which starts {earliest} to {last} days before; {_CLINICIAN}"
        )
    if rule == "lusutrombopag.not_low" and seen:
        return (
            f"{seen} is not below {fmt(lusutrombopag.NOT_LOW)} ×10^9/L — lusutrombopag is only for counts "
            f"below {fmt(lusutrombopag.NOT_LOW)}; {_CLINICIAN}"
        )
    return None


def _stop_reason(rule: str, ctx: Context) -> str | None:
    """Why treatment stops, from the deciding rule and the core's thresholds."""
    dose = ctx.request.current_dose
    if rule == "romiplostim.no_response" and dose is not None:
        return (
            f"no response — platelets below {fmt(romiplostim.LOW)} ×10^9/L after {ctx.doses_at_level} doses at "
            f"the maximum {fmt(romiplostim.HIGHEST)} mcg/kg"
        )
    if rule == "luspatercept.no_response" and dose is not None:
        doses = ctx.doses_at_level
        return f"no reduction in transfusion burden after {doses} doses at the maximum {fmt(dose.amount)} mg/kg"
    if rule == "luspatercept.hypersensitivity":
        return f"hypersensitivity reaction of grade {luspatercept.SEVERE_GRADE} or more"
    if rule == "luspatercept.hb_rise":
        return f"haemoglobin rose more than {fmt(luspatercept.RISE_ABOVE)} g/dL at the lowest level"
    if rule == "lusutrombopag.jp_stop":
        return (
            f"target reached (a count of {fmt(lusutrombopag.NOT_LOW)} ×10^9/L or more, at least "
            f"{fmt(lusutrombopag.JP_STOP_RISE)} above the baseline) — stop the course"
        )
    return None


def _seen(ctx: Context) -> str:
    """'the platelet count, 450 ×10^9/L on Sat 2026-11-21,' for the deciding result."""
    result = ctx.deciding
    if result is None:
        return ""
    if ctx.profile.deciding_test == "platelets":
        return f"the platelet count ({fmt(result.value)} ×10^9/L on {_day(result.date)})"
    return f"the haemoglobin ({fmt(result.value)} g/dL on {_day(result.date)})"


def _levels(drug: str, indication: str) -> str:
    """The drug's dose levels as the core defines them."""
    if drug == "romiplostim":
        return f"{fmt(romiplostim.LOWEST)} to {fmt(romiplostim.HIGHEST)} mcg/kg"
    if drug == "hetrombopag":
        return ", ".join(fmt(level) for level in hetrombopag.LADDERS[indication].levels) + " mg"
    if drug == "luspatercept":
        return ", ".join(fmt(level) for level in luspatercept.LADDERS[indication].levels) + " mg/kg"
    return f"{fmt(lusutrombopag.DOSE)} mg only"


def why(response: dict[str, Any], saved: bool) -> Reply:
    lines = ["Why this recommendation:"]
    for number, entry in enumerate(response["rationale"], 1):
        lines.append(f"{number}. {entry['text']} [{entry['rule']}; {entry['source']}]")
    if response["warnings"]:
        lines += ["", "Warnings in full:"]
        lines += [f"- {w['code']} ({w['severity']}): {w['message']}" for w in response["warnings"]]
    lines += ["", f"Ruleset {response['ruleset']} ({RULES_NAME}). {DISCLAIMER}"]
    return Reply("\n".join(lines), (result_buttons(saved),))
