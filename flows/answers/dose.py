"""Treatment status, the dose, its dates and the number of doses at the level."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core import hetrombopag, luspatercept, lusutrombopag, romiplostim
from core.numbers import fmt
from flows.answers.common import Confirm, Options, Parsed, date_options, profile_of, same_drug_record, value
from flows.names import DRUG_NAMES
from flows.parsing import Problem, parse_date, parse_number
from flows.replies import Env, PatientSummary
from flows.state import Answers


def status_options(answers: Answers, env: Env) -> Options:
    if answers.drug == "lusutrombopag":
        options = [value("Not started yet", "new"), value("Course started", "on")]
    else:
        options = [value("Starting now", "new"), value("On treatment", "on"), value("On hold", "held")]
    record = same_drug_record(answers, env)
    if record is not None:  # last: the fixed options keep their numbers whether or not it is offered
        options.append(value(f"As saved: {_recorded_regimen(answers, record)}", "same"))
    return options


def _recorded_regimen(answers: Answers, record: PatientSummary) -> str:
    state = "on hold at" if record.on_hold else "on"
    shown = f"{fmt(Decimal(record.dose_amount or '0'))} {profile_of(answers).dosing_unit}"
    return f"{state} {shown} since {record.dose_since}"


def parse_status(text: str, answers: Answers, env: Env) -> Parsed:
    typed = text.strip().lower()
    record = same_drug_record(answers, env)
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
        names = [b.label for b in status_options(answers, env)]
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


def on_treatment(answers: Answers, env: Env) -> bool:
    return answers.status in ("on", "held")


def dose_question(answers: Answers, env: Env) -> str:
    unit = profile_of(answers).dosing_unit
    when = "before the hold" if answers.status == "held" else "now"
    return f"Dose {when}, in {unit}?"


DOSE_EXAMPLE = {"romiplostim": "3", "hetrombopag": "5", "lusutrombopag": "3", "luspatercept": "1"}
# The label's levels by (drug, indication), lowest first, as the core's ladders hold them; romiplostim's
# are a range (LOWEST to HIGHEST), typed rather than offered.
_LEVELS: dict[tuple[str, str], tuple[Decimal, ...]] = {
    **{("hetrombopag", key): ladder.levels for key, ladder in hetrombopag.LADDERS.items()},
    **{("lusutrombopag", key): (lusutrombopag.DOSE,) for key in lusutrombopag.PROFILE.indications},
    **{("luspatercept", key): ladder.levels for key, ladder in luspatercept.LADDERS.items()},
}
_DOSE_LEVELS = {key: tuple(fmt(level) for level in levels) for key, levels in _LEVELS.items()}


def dose_options(answers: Answers, env: Env) -> Options:
    unit = profile_of(answers).dosing_unit
    levels = _DOSE_LEVELS.get((answers.drug or "", answers.indication or ""), ())
    current = fmt(answers.dose_amount) if answers.dose_amount is not None else None
    # Every level in the label's order, then Keep: a level keeps its number whatever the record holds.
    options = [value(f"{level} {unit}", level) for level in levels]
    if current is not None:
        options.append(value(f"Keep {current} {unit}", current))
    return options


def parse_dose(text: str, answers: Answers, env: Env) -> Parsed:
    profile = profile_of(answers)
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
    drug, unit = answers.drug or "", profile_of(answers).dosing_unit
    name = DRUG_NAMES[drug]
    if drug == "romiplostim":
        if romiplostim.LOWEST <= amount <= romiplostim.HIGHEST:
            return None
        where = f"outside the label's {fmt(romiplostim.LOWEST)} to {fmt(romiplostim.HIGHEST)} mcg/kg"
    else:
        levels = _DOSE_LEVELS.get((drug, answers.indication or ""), ())
        if amount in {Decimal(level) for level in levels}:
            return None
        where = f"not a level of the label ({', '.join(levels)} {unit})"
    return (
        f"{fmt(amount)} {unit} of {name} is {where}. Is that really the current dose? "
        "(If so, the recommendation will refer the decision to the clinician.)"
    )


def parse_since(text: str, answers: Answers, env: Env) -> Parsed:
    day = parse_date(text, env.today, what="first dose at this level")
    if isinstance(day, Problem):
        return day
    return {"dose_since": day}  # what was counted from the old date is re-asked: DEPENDANTS["dose_since"]


def parse_last_given(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() == "same as start":
        return {"last_given": answers.dose_since}
    day = parse_date(text, env.today, what="last dose", not_before=answers.dose_since)
    return day if isinstance(day, Problem) else {"last_given": day}


def last_given_options(answers: Answers, env: Env) -> Options:
    options = [value("Today", "today"), value("Yesterday", "yesterday")]
    if answers.dose_since is not None:
        options.append(value(f"Same as start ({answers.dose_since})", "same as start"))
    return options + date_options(answers, env, keep=answers.last_given)[2:]


def doses_apply(answers: Answers, env: Env) -> bool:
    if answers.drug == "romiplostim":
        return answers.status == "on" and answers.dose_amount == romiplostim.HIGHEST
    if answers.drug != "luspatercept" or answers.status != "on":
        return False
    # Counted only by the increase and no-response rules (RULES.md 4): at an increase level or the maximum.
    ladder = luspatercept.LADDERS.get(answers.indication or "")
    return ladder is None or answers.dose_amount in (*ladder.increase_from, ladder.maximum)


def parse_doses(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() in ("estimate", "estimate from the dates"):
        return {"doses_at_level": None, "doses_estimated": True}
    parsed = parse_number(text, what="number of doses", example="2")
    if isinstance(parsed, Problem):
        return parsed
    count = parsed[0]
    if count != count.to_integral_value() or count < 1:
        return Problem("Type a whole number of doses, 1 or more (or press Estimate from the dates).")
    if answers.dose_since is not None and answers.last_given is not None:
        interval = profile_of(answers).interval_days
        most = (answers.last_given - answers.dose_since).days // interval + 1
        if count > most:
            return Problem(
                f"From {answers.dose_since} to {answers.last_given}, every {interval} days, there can be at most "
                f"{most} dose{'s' if most > 1 else ''} at this level. Type the number again, or press Estimate."
            )
    return {"doses_at_level": int(count), "doses_estimated": False}
