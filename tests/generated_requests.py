"""Seeded random dosing requests for every drug, indication and region (the contract test and the benchmark)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

AS_OF = dt.date(2026, 11, 22)


def _day(offset: int) -> str:
    return str(AS_OF - dt.timedelta(days=offset))


def _platelets(rng: random.Random, high: int = 600) -> dict[str, Any]:
    unit, factor = rng.choice([("10^9/L", 1), ("10^3/uL", 1), ("G/L", 1), ("/uL", 1000)])
    return {"test": "platelets", "value": rng.randint(5, high) * factor, "unit": unit, "date": _day(rng.randint(0, 9))}


def _hemoglobin(rng: random.Random, offset: int) -> dict[str, Any]:
    value = rng.randint(70, 125) / 10
    unit, shown = rng.choice([("g/dL", value), ("g/L", value * 10), ("mmol/L", round(value / 1.611, 2))])
    return {"test": "hemoglobin", "value": shown, "unit": unit, "date": _day(offset)}


def _dose(rng: random.Random, amount: float, unit: str, interval: int) -> dict[str, Any]:
    since = rng.randint(interval, 60)
    return {
        "amount": amount,
        "unit": unit,
        "since": _day(since),
        "last_given": _day(rng.randint(0, min(since, interval))),
    }


def make_request(rng: random.Random) -> dict[str, Any]:
    """One plausible request; roughly equal shares of the four drugs."""
    drug = rng.choice(["romiplostim", "hetrombopag", "lusutrombopag", "luspatercept"])
    request: dict[str, Any] = {"drug": drug, "as_of": str(AS_OF)}
    if drug == "romiplostim":
        request |= {
            "indication": "itp",
            "region": rng.choice(["us", "eu"]),
            "patient": {"weight_kg": rng.randint(10, 120), "age_years": rng.randint(2, 80)},
            "labs": [_platelets(rng) for _ in range(rng.randint(1, 3))],
        }
        if rng.random() < 0.85:
            request["current_dose"] = _dose(rng, rng.randint(1, 10), "mcg/kg", 7)
            request["on_hold"] = rng.random() < 0.15
    elif drug == "hetrombopag":
        indication = rng.choice(["itp", "cit"])
        levels = [2.5, 3.75, 5, 7.5] if indication == "itp" else [2.5, 5, 7.5, 10, 12.5, 15]
        request |= {"indication": indication, "labs": [_platelets(rng) for _ in range(rng.randint(1, 3))]}
        if rng.random() < 0.85:
            request["current_dose"] = _dose(rng, rng.choice(levels), "mg", 1)
            request["on_hold"] = rng.random() < 0.15
    elif drug == "lusutrombopag":
        request |= {
            "indication": "cld_procedure",
            "region": rng.choice(["us", "jp"]),
            "procedure_date": str(AS_OF + dt.timedelta(days=rng.randint(3, 20))),
            "labs": [_platelets(rng, high=80) for _ in range(rng.randint(1, 2))],
            "patient": {"child_pugh": rng.choice(["A", "B", "C"])},
        }
        if rng.random() < 0.4:
            since = rng.randint(0, 8)
            request["current_dose"] = {
                "amount": 3,
                "unit": "mg",
                "since": _day(since),
                "last_given": _day(rng.randint(0, since)),
            }
    else:
        indication = rng.choice(["beta_thalassemia", "mds"])
        levels = [0.6, 0.8, 1, 1.25] if indication == "beta_thalassemia" else [0.6, 0.8, 1, 1.33, 1.75]
        request |= {
            "indication": indication,
            "patient": {"weight_kg": rng.randint(40, 110)},
            "labs": [_hemoglobin(rng, rng.randint(0, 6)), _hemoglobin(rng, rng.randint(10, 25))],
            "transfusions": [
                {"date": _day(rng.randint(1, 40)), "units": rng.randint(1, 3)} for _ in range(rng.randint(0, 3))
            ],
            "baseline_rbc_units_per_12_weeks": rng.randint(0, 12),
        }
        if rng.random() < 0.85:
            request["current_dose"] = _dose(rng, rng.choice(levels), "mg/kg", 21) | {
                "doses_at_level": rng.randint(1, 4)
            }
            request["on_hold"] = rng.random() < 0.15
    return request
