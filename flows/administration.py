"""How a decided dose is given, in one line: the card's dose line and every dose reminder use it.

RULES.md 6a: a dose is never shown without what changes how it is given. A volume of a diluted
solution always carries its concentration (0.1 mL of the undiluted romiplostim solution would be
four times a 12 mcg dose), a split injection its number of injections, a tablet its empty-stomach
rule. Every number comes from the core's decision and the drug's profile in `core`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from core.numbers import fmt
from core.registry import rules_for
from core.warnings import MESSAGES


def _number(value: Any) -> Decimal:
    return Decimal(str(value))


def _volume(value: Any) -> str:
    """Volumes to 0.01 mL as measured (0.10 mL, not 0.1): the syringe reads two decimals."""
    return f"{_number(value):.2f}"


def administration(drug: str, response: Mapping[str, Any]) -> str:
    """'12 mcg (1 mcg/kg) = 0.10 mL after dilution to 125 mcg/mL …' for a response in JSON form.

    Empty when the decision gives no dose (hold, refer, discontinue, complete).
    """
    dose, total = response.get("dose"), response.get("total")
    if not dose or not total:
        return ""
    profile = rules_for(drug).profile
    words = f"{fmt(_number(total['amount']))} {total['unit']}"
    if dose["unit"] != total["unit"]:
        words += f" ({fmt(_number(dose['amount']))} {dose['unit']})"
    packaging = profile.packaging
    codes = {warning["code"] for warning in response.get("warnings", ())}
    if packaging is None:  # tablets
        words += " by mouth once daily"
        if "empty_stomach" in codes:
            rule = MESSAGES["empty_stomach"]
            words += f"; {rule[:1].lower()}{rule[1:]}"
        return words
    volume = response.get("volume_ml")
    if volume is None:
        return words
    if "dilution_required" in codes and packaging.diluted_concentration_per_ml is not None:
        concentration = fmt(packaging.diluted_concentration_per_ml)
        words += (
            f" = {_volume(volume)} mL after dilution to {concentration} {total['unit']}/mL "
            "(preservative-free 0.9% sodium chloride)"
        )
    else:
        words += f" = {_volume(volume)} mL of the {fmt(packaging.concentration_per_ml)} {total['unit']}/mL solution"
    injections = response.get("injections") or 1
    if injections > 1 and packaging.max_ml_per_injection is not None:
        words += f", as {injections} injections (at most {fmt(packaging.max_ml_per_injection)} mL each)"
    return words
