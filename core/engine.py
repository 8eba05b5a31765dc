"""The one entry point of the dosing core: a validated request in, a recommendation out.

The drug module decides the action; this builder applies the conventions every drug shares
(RULES.md section 0): totals and rounding, volume and vials, the next dose date, monitoring,
modifiers, warnings in the contract's order, and the rationale with its sources.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from functools import lru_cache
from typing import Any

from core.errors import RequestError
from core.framework import DOSE_ACTIONS, ONE_DAY, Context, Decision, Dispensing, DrugRules, Modifier, Packaging, days
from core.models import DoseRequest, DoseResponse
from core.numbers import HUNDREDTH, TENTH, fmt, json_number, round_half_up
from core.registry import REGISTRY, rules_for
from core.units import PLAUSIBILITY
from core.validation import check_plausibility
from core.warnings import ordered_warnings

RULESET_VERSION = "v1.1"  # the rules' version (RULES.md); not the response's `ruleset` field

# Section 0, "Rationale": modifiers follow the deciding rule in this order.
MODIFIER_ORDER = (
    "romiplostim.pediatric_weight",
    "dose.dilution",
    "dose.split_injection",
    "dose.late",
    "dose.missed",
    "value.unusual",
    "lusutrombopag.window",
    "lusutrombopag.pre_procedure",
    "lusutrombopag.child_pugh_c",
)
_MODIFIER_RANK = {rule: rank for rank, rule in enumerate(MODIFIER_ORDER)}
_INTERVALS = {rules.profile.interval_days: days(rules.profile.interval_days) for rules in REGISTRY.values()}


def validate(request: DoseRequest) -> Context:
    """Raise `RequestError` for what the models alone cannot see; else the request's context."""
    try:
        rules = rules_for(request.drug)
    except KeyError:  # pragma: no cover - the model's Literal admits only registered drugs
        raise RequestError("invalid_request", f"drug: '{request.drug}' has no rules", "drug") from None
    ctx = Context.of(request, rules.profile)  # drug-dependent shape was checked by the model's validators
    check_plausibility(ctx)
    return ctx


def recommend(request: DoseRequest) -> DoseResponse:
    """The next dose, its date, the next monitoring and the warnings, with rule ids and sources."""
    return DoseResponse.model_validate(recommend_data(request))


def recommend_data(request: DoseRequest) -> dict[str, Any]:
    """The response as plain data in the model's field order, for the JSON path to serialise as is.

    Building it once and validating it once (in `recommend`) is cheaper than building each nested
    model; tests hold the JSON of this data byte-identical to the validated model's.
    """
    ctx = validate(request)
    rules = rules_for(request.drug)
    return _build(ctx, rules, rules.decide(ctx))


def _build(ctx: Context, rules: DrugRules, decision: Decision) -> dict[str, Any]:
    """The response as plain data; this is the hot path of a batch, so it stays flat."""
    profile = ctx.profile
    drug, region = profile.drug, ctx.region
    modifiers = _unusual_values(ctx) + rules.modifiers(ctx, decision, None)
    dose = total = volume_ml = injections = next_dose = None
    vials: list[dict[str, Any]] = []
    schedule: list[dt.date] = []
    if decision.dose is not None:
        assert decision.action in DOSE_ACTIONS, decision
        weight = ctx.request.patient.weight_kg if profile.weight_based else None
        dispensing = dispense(profile.packaging, decision.dose, weight)
        next_dose, timing = _next_dose_date(ctx, decision)
        modifiers += dispensing.modifiers + timing
        dose = {"amount": json_number(decision.dose), "unit": profile.dosing_unit}
        total = {"amount": json_number(dispensing.total), "unit": profile.total_unit}
        if dispensing.volume_ml is not None:
            volume_ml = json_number(dispensing.volume_ml)
        injections = dispensing.injections
        vials = [{"size": size, "unit": profile.total_unit, "count": count} for size, count in dispensing.vials]
        schedule = decision.schedule if decision.schedule is not None else [next_dose]
    if len(modifiers) > 1:
        modifiers.sort(key=lambda m: _MODIFIER_RANK[m.rule])
    codes = {*decision.warnings, *rules.standing_warnings(ctx, decision)}
    rationale = [{"rule": decision.rule, "source": _source(drug, decision.rule, region), "text": decision.text}]
    for modifier in modifiers:
        codes.add(modifier.code)
        rationale.append({"rule": modifier.rule, "source": _source(drug, modifier.rule, region), "text": modifier.text})
    monitor_on = decision.monitor_on or rules.monitoring(ctx, decision, next_dose)
    return {
        "action": decision.action,
        "dose": dose,
        "total": total,
        "volume_ml": volume_ml,
        "injections": injections,
        "vials": vials,
        "next_dose_date": next_dose,
        "schedule": schedule,
        "next_monitoring": None if monitor_on is None else {"date": monitor_on, "tests": [profile.deciding_test]},
        "warnings": ordered_warnings(drug, codes),
        "rationale": rationale,
        "ruleset": f"{drug}/{region}",
    }


@lru_cache(maxsize=1024)
def _source(drug: str, rule: str, region: str) -> str:
    """Sources are fixed per drug, rule and region: looked up once."""
    return rules_for(drug).source(rule, region)


def dispense(packaging: Packaging | None, dose: Decimal, weight_kg: Decimal | None) -> Dispensing:
    """Total (half-up to 0.1 for weight-based doses), then volume, injections and vials from it."""
    total = round_half_up(dose * weight_kg, TENTH) if weight_kg is not None else dose
    if packaging is None:  # a tablet: the fixed dose, given exactly
        return Dispensing(total)
    modifiers: list[Modifier] = []
    if packaging.dilute_below is not None and total < packaging.dilute_below:
        assert packaging.diluted_concentration_per_ml is not None
        volume = round_half_up(total / packaging.diluted_concentration_per_ml, HUNDREDTH)
        modifiers.append(
            Modifier(
                "dose.dilution",
                "dilution_required",
                f"Total {fmt(total)} is below {fmt(packaging.dilute_below)}: dilute to "
                f"{fmt(packaging.diluted_concentration_per_ml)} per mL, volume {fmt(volume)} mL.",
            )
        )
    else:
        volume = round_half_up(total / packaging.concentration_per_ml, HUNDREDTH)
    injections = 1
    limit = packaging.max_ml_per_injection
    if limit is not None and volume > limit:
        injections = math.ceil(volume / limit)
        modifiers.append(
            Modifier(
                "dose.split_injection",
                "split_injection",
                f"Volume {fmt(volume)} mL is above {fmt(limit)} mL per site: give it as {injections} injections.",
            )
        )
    return Dispensing(total, volume, injections, choose_vials(total, packaging.vial_sizes), modifiers)


@lru_cache(maxsize=8192)
def choose_vials(total: Decimal, sizes: tuple[Decimal, ...]) -> tuple[tuple[int | float, int], ...]:
    """The vials covering `total` with the least excess; among equals the fewest vials.

    Where two combinations still tie (500+125+125 and 3 x 250 for 750 mcg), the one with more of
    the larger vials is taken, so the answer is always the same.
    """
    *larger, smallest = sizes
    best_key: tuple[Decimal, int, tuple[int, ...]] | None = None
    best: tuple[int, ...] = ()

    def search(index: int, counts: tuple[int, ...], covered: Decimal) -> None:
        nonlocal best_key, best
        if index == len(larger):
            missing = total - covered
            last = max(0, math.ceil(missing / smallest))
            chosen = (*counts, last)
            excess = covered + last * smallest - total
            key = (excess, sum(chosen), tuple(-c for c in chosen))
            if best_key is None or key < best_key:
                best_key, best = key, chosen
            return
        size = larger[index]
        for count in range(math.ceil(max(Decimal(0), total - covered) / size) + 1):
            search(index + 1, (*counts, count), covered + count * size)

    search(0, (), Decimal(0))
    return tuple((json_number(size), count) for size, count in zip(sizes, best, strict=True) if count)


def _next_dose_date(ctx: Context, decision: Decision) -> tuple[dt.date, list[Modifier]]:
    """Section 0, "Next dose date"."""
    if decision.next_dose_date is not None:
        return decision.next_dose_date, []
    as_of = ctx.as_of
    dose = ctx.request.current_dose
    if decision.action in ("start", "resume") or dose is None:
        return as_of, []
    interval = ctx.profile.interval_days
    if interval == 1:
        next_date = as_of + ONE_DAY if dose.last_given == as_of else as_of
        if dose.last_given < as_of - ONE_DAY and not ctx.request.on_hold:
            return next_date, [
                Modifier(
                    "dose.missed",
                    "missed_doses",
                    f"Last dose given {dose.last_given}: the daily doses since then appear to have been missed.",
                )
            ]
        return next_date, []
    due = dose.last_given + _INTERVALS[interval]
    if due < as_of:
        return as_of, [
            Modifier(
                "dose.late",
                "late_dose",
                f"The dose was due on {due} ({interval} days after {dose.last_given}): give it today.",
            )
        ]
    return due, []


def _unusual_values(ctx: Context) -> list[Modifier]:
    """`value.unusual`: values inside the bounds but unusual, every one in the request."""
    found: list[str] = []
    weight = ctx.request.patient.weight_kg
    if weight is not None and not _WEIGHT_USUAL(weight):
        found.append(f"weight {fmt(weight)} kg")
    for result in ctx.platelets:
        if not _PLATELETS_USUAL(result.value):
            found.append(f"platelets {fmt(result.value)} x10^9/L on {result.date}")
    for result in ctx.hemoglobin:
        if not _HB_USUAL(result.value):
            found.append(f"haemoglobin {fmt(result.value)} g/dL on {result.date}")
    if not found:
        return []
    return [Modifier("value.unusual", "unusual_value", "Unusual values, confirm them: " + "; ".join(found) + ".")]


_WEIGHT_USUAL = PLAUSIBILITY["weight_kg"].is_usual
_PLATELETS_USUAL = PLAUSIBILITY["platelets"].is_usual
_HB_USUAL = PLAUSIBILITY["hemoglobin"].is_usual
