"""Drug name -> that drug's rules. Adding a drug is one module and one line here."""

from __future__ import annotations

from core import hetrombopag, luspatercept, lusutrombopag, romiplostim
from core.framework import DrugRules

REGISTRY: dict[str, DrugRules] = {
    rules.profile.drug: rules
    for rules in (romiplostim.RULES, hetrombopag.RULES, lusutrombopag.RULES, luspatercept.RULES)
}


def rules_for(drug: str) -> DrugRules:
    """The rules of a drug by name: the one lookup the engine, flows and reminders use."""
    return REGISTRY[drug]
