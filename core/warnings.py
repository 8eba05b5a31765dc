"""Warning codes of RULES.md section 5: severity and the message shown to people."""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Final

from core import hetrombopag, luspatercept, lusutrombopag, romiplostim
from core.framework import FRESH_DAYS
from core.models import SafetyWarning, Severity
from core.numbers import fmt

CRITICAL: Final = frozenset({"platelets_high", "pre_procedure_platelets_low"})
WARNING: Final = frozenset(
    {
        "thrombosis_risk",
        "portal_vein_thrombosis",
        "platelets_not_low",
        "max_dose",
        "no_response",
        "rebound_thrombocytopenia",
        "missing_lab",
        "stale_lab",
        "missing_input",
        "dose_outside_label",
        "procedure_window",
        "severe_hepatic_impairment",
        "hypertension",
    }
)
_SEVERITY_RANK: Final = {"critical": 0, "warning": 1, "info": 2}

# The numbers the messages quote, read from the drug modules (one source: issue 11).
_ROMIPLOSTIM_PACKAGING = romiplostim.PROFILE.packaging
_LUSPATERCEPT_PACKAGING = luspatercept.PROFILE.packaging
assert _ROMIPLOSTIM_PACKAGING is not None  # both injected
assert _LUSPATERCEPT_PACKAGING is not None
assert _ROMIPLOSTIM_PACKAGING.dilute_below is not None
assert _ROMIPLOSTIM_PACKAGING.diluted_concentration_per_ml is not None
assert _LUSPATERCEPT_PACKAGING.max_ml_per_injection is not None
_US_START, _JP_START = lusutrombopag.START_WINDOW["us"], lusutrombopag.START_WINDOW["jp"]  # (earliest, latest)
_AFTER_LAST_DOSE = lusutrombopag.PROCEDURE_AFTER_LAST_DOSE

MESSAGES: Final[dict[str, str]] = {
    "thrombosis_risk": (
        "Thrombotic and thromboembolic complications can occur; portal vein thrombosis has been "
        "reported in chronic liver disease. Do not aim for normal platelet counts."
    ),
    "portal_vein_thrombosis": (
        "Thrombotic complications, including portal vein thrombosis, have been reported; take care "
        "in patients with known risk factors for thromboembolism."
    ),
    "platelets_high": "Platelet count is above the hold threshold: do not give the dose.",
    "platelets_not_low": ("Platelet count is not low: treatment is for low counts only, never to normalise them."),
    "pre_procedure_platelets_low": (
        f"Platelet count before the procedure is below {fmt(lusutrombopag.PRE_PROCEDURE_LOW)} x10^9/L; in the "
        "trials such patients were "
        "transfused. The treating clinician decides."
    ),
    "max_dose": "Already at the maximum dose; it cannot be increased further.",
    "no_response": "No adequate response at the maximum dose: treatment is to be stopped.",
    "rebound_thrombocytopenia": (
        "After stopping, platelets may fall below the pre-treatment level: check counts weekly for at least 2 weeks."
    ),
    "missing_lab": "No result of the deciding test: a new one is needed before deciding.",
    "stale_lab": f"The latest deciding result is more than {FRESH_DAYS} days old: repeat it before deciding.",
    "missing_input": "An input the rules need is missing; the clinician must decide.",
    "dose_outside_label": "The current dose is not a level of this drug's label.",
    "unusual_value": "A value is unusual: confirm it was entered correctly.",
    "late_dose": "The scheduled dose date has passed: give the dose today.",
    "missed_doses": "Doses appear to have been missed since the last one given.",
    "pediatric_weight_reassess": (
        f"In children the weight is reassessed every {romiplostim.PEDIATRIC_WEIGHT_MAX_AGE_DAYS // 7} weeks: weigh the "
        "patient and confirm the dose."
    ),
    "dilution_required": (
        f"Dose under {fmt(_ROMIPLOSTIM_PACKAGING.dilute_below)} {romiplostim.PROFILE.total_unit}: dilute the "
        f"reconstituted solution to {fmt(_ROMIPLOSTIM_PACKAGING.diluted_concentration_per_ml)} "
        f"{romiplostim.PROFILE.total_unit}/mL with preservative-free "
        "0.9% sodium chloride before measuring the volume."
    ),
    "split_injection": (
        f"Volume above {fmt(_LUSPATERCEPT_PACKAGING.max_ml_per_injection)} mL: split it between injection sites."
    ),
    "hypertension": "Hypertension can occur: check blood pressure before every dose.",
    "embryo_fetal_toxicity": (
        "Can harm an unborn baby: effective contraception during treatment and for 3 months after "
        "the last dose; not in pregnancy."
    ),
    "extramedullary_hematopoiesis": (
        "Extramedullary haematopoietic masses can occur in beta-thalassaemia: watch for symptoms "
        "of spinal cord compression."
    ),
    "lactation": "No breastfeeding during treatment and for 28 days after the last dose.",
    "empty_stomach": (
        "Take on an empty stomach, with no food for 2 hours after; dairy products and mineral "
        "supplements at least 2 hours after the dose."
    ),
    "severe_hepatic_impairment": (
        "Severe hepatic impairment (Child-Pugh C): not studied under the US label; contraindicated under the "
        "Japanese label."
    ),
    "procedure_window": (
        f"The timing does not fit the label: start {_US_START[1]} to {_US_START[0]} days before the procedure "
        f"({_JP_START[0]} in Japan) and do the procedure {_AFTER_LAST_DOSE[0]} to {_AFTER_LAST_DOSE[1]} days "
        "after the last dose."
    ),
    "protocol_derived": ("These thresholds come from a protocol-derived guide, not from the drug's label."),
    "cit_target_reached": (
        f"Platelet target for chemotherapy ({fmt(hetrombopag.CIT_TARGET)} x10^9/L or more) is reached."
    ),
    "label_update_pending": (
        "The label's dosing sections were revised (2/2026); re-check this recommendation against "
        "the current label before use."
    ),
}

# Drug-specific wording where the label says more than the shared text.
DRUG_MESSAGES: Final[dict[tuple[str, str], str]] = {
    ("luspatercept", "thrombosis_risk"): (
        "Thromboembolic events can occur; splenectomy and hormone therapy raise the risk. Consider thromboprophylaxis."
    ),
    ("hetrombopag", "thrombosis_risk"): (
        "Thrombotic and thromboembolic complications can occur. Do not aim for normal platelet counts."
    ),
}


def severity(code: str) -> Severity:
    """A warning code's severity: critical, warning or info (the contract's ranking)."""
    if code in CRITICAL:
        return "critical"
    if code in WARNING:
        return "warning"
    return "info"


def sort_key(code: str) -> tuple[int, str]:
    """Critical, warning, info; then by code (the contract's order)."""
    return (_SEVERITY_RANK[severity(code)], code)


def message(drug: str, code: str) -> str:
    """The text of a warning code, in the drug's own wording where its label says more."""
    return DRUG_MESSAGES.get((drug, code)) or MESSAGES[code]


@cache
def warning(drug: str, code: str) -> SafetyWarning:
    """The warning entry of a response; immutable, so built once per drug and code."""
    return SafetyWarning(code=code, severity=severity(code), message=message(drug, code))


def ordered_warnings(drug: str, codes: set[str]) -> tuple[SafetyWarning, ...]:
    """Each code once, in the contract's order."""
    return _ordered(drug, frozenset(codes))


@lru_cache(maxsize=4096)
def _ordered(drug: str, codes: frozenset[str]) -> tuple[SafetyWarning, ...]:
    # A response's codes come from a small fixed set, so the ordered entries are built once per set.
    return tuple(warning(drug, code) for code in sorted(codes, key=_ORDER.__getitem__))


_ORDER: Final = {code: sort_key(code) for code in MESSAGES}
