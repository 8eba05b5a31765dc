"""Luspatercept: red-cell transfusions, the baseline burden and the adverse reaction."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from core import luspatercept
from core.numbers import fmt
from flows.answers.common import Options, Parsed, choose, split_dated, value
from flows.answers.patient import prefill
from flows.names import ADVERSE_NAMES
from flows.parsing import Problem, parse_number
from flows.replies import Env
from flows.state import Answers, TransfusionAnswer

BASELINE_WEEKS = luspatercept.TWELVE_WEEKS_DAYS // 7  # the baseline burden's period (RULES.md 4)
_TRANSFUSION_UNITS = re.compile(r"(\d+(?:[.,]\d+)?)(?:\s*(?:units?|u))?", re.IGNORECASE)  # whole, stripped


def transfusions_apply(answers: Answers, env: Env) -> bool:
    return answers.drug == "luspatercept" and answers.status == "on"


def transfusion_start(answers: Answers) -> dt.date | None:
    """From `since` (luspatercept.increase and no_response scale the units from it, RULES.md 4), and from
    21 days before the haemoglobin (hb_high: "in the absence of transfusion") if that is earlier."""
    starts = [answers.dose_since] if answers.dose_since is not None else []
    if answers.lab_date is not None:
        starts.append(answers.lab_date - dt.timedelta(days=luspatercept.TRANSFUSION_FREE_DAYS))
    return min(starts, default=None)


def _transfusion_period(answers: Answers, env: Env) -> dt.date:
    start = transfusion_start(answers)
    return start if start is not None else env.today - dt.timedelta(days=luspatercept.TWELVE_WEEKS_DAYS)


def _transfusions_in_period(answers: Answers, env: Env) -> list[TransfusionAnswer]:
    first = _transfusion_period(answers, env)
    return sorted((t for t in answers.transfusions if first <= t.date <= env.today), key=lambda t: t.date)


def transfusions_question(answers: Answers, env: Env) -> str:
    first = _transfusion_period(answers, env)
    listed = "; ".join(f"{t.date}: {fmt(t.units)} u" for t in _transfusions_in_period(answers, env)) or "none yet"
    reason = (
        "the first dose at this level"
        if first == answers.dose_since
        else f"{luspatercept.TRANSFUSION_FREE_DAYS // 7} weeks before the haemoglobin; the first dose at this level "
        f"was {answers.dose_since}"
    )
    return (
        f"Red-cell transfusions from {first} ({reason}) to today: send each as 'YYYY-MM-DD units' (e.g. "
        f"{env.today - dt.timedelta(days=14)} 2), then press Done. So far: {listed}."
    )


def transfusions_options(answers: Answers, env: Env) -> Options:
    done = [value("Done", "done")] if _transfusions_in_period(answers, env) else [value("None", "none")]
    typed = answers.transfusions != _recorded_transfusions(answers, env)
    return [*done, value("Remove the ones added", "remove")] if typed else done


def _recorded_transfusions(answers: Answers, env: Env) -> list[TransfusionAnswer]:
    if answers.record is None or answers.record.drug != "luspatercept":
        return []
    return prefill("luspatercept", answers.record, env)["transfusions"]  # type: ignore[no-any-return]


def parse_transfusion(text: str, answers: Answers, env: Env) -> Parsed:
    typed = text.strip().lower()
    if typed in ("none", "done", "no"):
        return {"transfusions_done": True}
    if typed in ("remove", "remove the ones added"):  # a slip is undone; the record's stay
        return {"transfusions": _recorded_transfusions(answers, env), "transfusions_done": False, "_stay": True}
    example = f"{env.today - dt.timedelta(days=14)} 2"
    dated = split_dated(text, env.today, what="transfusion", example=example, then="units")
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
    implausible = units_problem(units)
    if implausible is not None:
        return implausible
    added = [*answers.transfusions, TransfusionAnswer(date=day, units=units)]
    return {"transfusions": added, "transfusions_done": False, "_stay": True}


def units_problem(units: Decimal) -> Problem | None:
    """A transfusion's units out of what is plausible (also for a corrected one, flows/records.py)."""
    if units <= 0 or units > 20:
        return Problem(f"{fmt(units)} units is not a plausible transfusion; type 1 to 20 units.")
    return None


def baseline_applies(answers: Answers, env: Env) -> bool:
    if answers.drug != "luspatercept" or answers.status != "on" or answers.dose_amount is None:
        return False
    # Where luspatercept.increase or no_response reads the baseline burden (RULES.md 4): beta-thalassaemia at
    # a level an increase starts from and at the maximum; MDS (whose increase reads transfusion-free) at the maximum.
    dose = answers.dose_amount
    if answers.indication == "beta_thalassemia":
        ladder = luspatercept.LADDERS["beta_thalassemia"]
        return dose in (*ladder.increase_from, ladder.maximum)
    return dose == luspatercept.LADDERS["mds"].maximum


def parse_baseline(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() in ("skip", "unknown"):
        return {"baseline": None, "baseline_skipped": True}
    parsed = parse_number(
        text, what="baseline units", example="6", units={"": "u", "u": "u", "units": "u", "unit": "u"}
    )
    if isinstance(parsed, Problem):
        return parsed
    if parsed[0] < 0 or parsed[0] > 100:
        return Problem(f"Type the red-cell units given in the {BASELINE_WEEKS} weeks before the first dose (0 to 100).")
    return {"baseline": parsed[0], "baseline_skipped": False}


def parse_adverse(text: str, answers: Answers, env: Env) -> Parsed:
    chosen = choose(text, ADVERSE_NAMES, "answer")
    return chosen if isinstance(chosen, Problem) else {"adverse": chosen}
