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

from core.errors import RequestError
from core.framework import Context, Decision, Dispensing, DrugRules, Modifier, Packaging
from core.models import Amount, DoseRequest, DoseResponse, Monitoring, Rationale, Vial, Warning
from core.numbers import HUNDREDTH, TENTH, fmt, json_number, round_half_up
from core.registry import rules_for
from core.units import PLAUSIBILITY
from core.validation import check_plausibility, check_shape
from core.warnings import message, severity, sort_key

RULESET_VERSION = "v1"

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
_DOSE_GIVEN = frozenset({"start", "continue", "increase", "decrease", "resume"})


def validate(request: DoseRequest) -> Context:
    """Raise `RequestError` for what the models alone cannot see; else the request's context."""
    try:
        rules = rules_for(request.drug)
    except KeyError:  # pragma: no cover - the model's Literal admits only registered drugs
        raise RequestError("invalid_request", f"drug: '{request.drug}' has no rules", "drug") from None
    check_shape(request, rules.profile)
    check_plausibility(request)
    return Context.of(request, rules.profile)


def recommend(request: DoseRequest) -> DoseResponse:
    """The next dose, its date, the next monitoring and the warnings, with rule ids and sources."""
    ctx = validate(request)
    rules = rules_for(request.drug)
    decision = rules.decide(ctx)
    return _build(ctx, rules, decision)


def _build(ctx: Context, rules: DrugRules, decision: Decision) -> DoseResponse:
    profile = ctx.profile
    request = ctx.request
    modifiers: list[Modifier] = []
    dispensing: Dispensing | None = None
    next_dose: dt.date | None = None
    schedule: list[dt.date] = []
    if decision.dose is not None:
        assert decision.action in _DOSE_GIVEN, decision
        weight = request.patient.weight_kg
        dispensing = dispense(profile.packaging, decision.dose, weight if profile.weight_based else None)
        modifiers += dispensing.modifiers
        next_dose, timing = _next_dose_date(ctx, decision)
        modifiers += timing
        schedule = decision.schedule if decision.schedule is not None else [next_dose]
    modifiers += _unusual_values(ctx)
    modifiers += rules.modifiers(ctx, decision, next_dose)
    modifiers.sort(key=lambda m: _MODIFIER_RANK[m.rule])

    codes = set(decision.warnings)
    codes.update(m.code for m in modifiers)
    codes.update(rules.standing_warnings(ctx, decision))
    drug = profile.drug
    warnings = [
        Warning(code=code, severity=severity(code), message=message(drug, code)) for code in sorted(codes, key=sort_key)
    ]
    rationale = [Rationale(rule=decision.rule, source=rules.source(decision.rule, ctx.region), text=decision.text)]
    rationale += [Rationale(rule=m.rule, source=rules.source(m.rule, ctx.region), text=m.text) for m in modifiers]

    monitor_on = decision.monitor_on or rules.monitoring(ctx, decision, next_dose)
    return DoseResponse(
        action=decision.action,
        dose=None if decision.dose is None else Amount(amount=json_number(decision.dose), unit=profile.dosing_unit),
        total=None if dispensing is None else Amount(amount=json_number(dispensing.total), unit=profile.total_unit),
        volume_ml=None if dispensing is None or dispensing.volume_ml is None else json_number(dispensing.volume_ml),
        injections=None if dispensing is None else dispensing.injections,
        vials=[]
        if dispensing is None
        else [Vial(size=json_number(size), unit=profile.total_unit, count=count) for size, count in dispensing.vials],
        next_dose_date=next_dose,
        schedule=schedule,
        next_monitoring=None if monitor_on is None else Monitoring(date=monitor_on, tests=[profile.deciding_test]),
        warnings=warnings,
        rationale=rationale,
        ruleset=f"{drug}/{ctx.region}",
    )


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
    return Dispensing(total, volume, injections, list(choose_vials(total, packaging.vial_sizes)), modifiers)


@lru_cache(maxsize=8192)
def choose_vials(total: Decimal, sizes: tuple[Decimal, ...]) -> tuple[tuple[Decimal, int], ...]:
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
    return tuple((size, count) for size, count in zip(sizes, best, strict=True) if count)


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
        next_date = as_of + dt.timedelta(days=1) if dose.last_given == as_of else as_of
        if dose.last_given < as_of - dt.timedelta(days=1) and not ctx.request.on_hold:
            return next_date, [
                Modifier(
                    "dose.missed",
                    "missed_doses",
                    f"Last dose given {dose.last_given}: the daily doses since then appear to have been missed.",
                )
            ]
        return next_date, []
    due = dose.last_given + dt.timedelta(days=interval)
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
    if weight is not None and PLAUSIBILITY["weight_kg"].unusual(weight):
        found.append(f"weight {fmt(weight)} kg")
    for result in ctx.platelets:
        if PLAUSIBILITY["platelets"].unusual(result.value):
            found.append(f"platelets {fmt(result.value)} x10^9/L on {result.date}")
    for result in ctx.hemoglobin:
        if PLAUSIBILITY["hemoglobin"].unusual(result.value):
            found.append(f"haemoglobin {fmt(result.value)} g/dL on {result.date}")
    if not found:
        return []
    return [Modifier("value.unusual", "unusual_value", "Unusual values, confirm them: " + "; ".join(found) + ".")]
