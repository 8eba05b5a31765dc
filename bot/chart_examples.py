"""Example patient records for the documentation charts (docs/charts/): consultations run through the core.

Why run the core: every dose, hold and recommendation on an example chart is one the rules gave for
the results listed here (a clinician following each recommendation), so the pictures cannot show a
number the core would not. Only the results, dates, weights and transfusions are made up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core import recommend
from core.models import DoseRequest
from core.registry import rules_for
from flows.state import LabRecord, TransfusionRecord
from flows.trend import DoseEntry, RecommendationEntry, TrendChart, TrendRecord, build


@dataclass
class Scenario:
    """One patient: results by consultation, each consultation a day after its result."""

    label: str
    drug: str
    indication: str
    region: str
    first: dt.date
    every_days: int  # days between consultations
    results: list[float | int]  # the deciding result before each consultation
    unit: str
    patient: dict[str, Any] = field(default_factory=dict)
    transfusions: dict[int, int] = field(default_factory=dict)  # consultation index -> units, 3 days before it
    extra: dict[str, Any] = field(default_factory=dict)  # request fields (procedure_date, baseline, ...)
    consultation_days: list[int] | None = None  # days after `first`, instead of every `every_days`


def run(scenario: Scenario) -> TrendRecord:
    """Each consultation through `core.recommend`, its advice followed: the record a chart is drawn from."""
    profile = rules_for(scenario.drug).profile
    test = profile.deciding_test
    labs: list[LabRecord] = []
    doses: list[DoseEntry] = []
    transfusions: list[TransfusionRecord] = []
    recommendations: list[RecommendationEntry] = []
    amount: Decimal | None = None
    since: dt.date | None = None
    last_given: dt.date | None = None
    on_hold = False
    offsets = scenario.consultation_days or [n * scenario.every_days for n in range(len(scenario.results))]
    for index, (offset, value) in enumerate(zip(offsets, scenario.results, strict=True)):
        as_of = scenario.first + dt.timedelta(days=offset)
        labs.append(LabRecord(test=test, value=str(value), unit=scenario.unit, date=as_of - dt.timedelta(days=1)))
        if index in scenario.transfusions:
            day = as_of - dt.timedelta(days=3)
            transfusions.append(TransfusionRecord(date=day, units=str(scenario.transfusions[index])))
        if amount is not None and not on_hold and profile.interval_days == 1 and scenario.drug == "hetrombopag":
            last_given = as_of - dt.timedelta(days=1)  # a daily tablet, taken every day up to the consultation
            doses.append(DoseEntry(last_given, _text(amount), profile.dosing_unit))
        request: dict[str, Any] = {
            "drug": scenario.drug,
            "indication": scenario.indication,
            "region": scenario.region,
            "as_of": as_of.isoformat(),
            "patient": scenario.patient,
            "labs": [
                {"test": lab.test, "value": float(lab.value), "unit": lab.unit, "date": lab.date.isoformat()}
                for lab in labs
            ],
            "transfusions": [{"date": t.date.isoformat(), "units": float(t.units)} for t in transfusions],
            "on_hold": on_hold,
            **scenario.extra,
        }
        if amount is not None and since is not None and last_given is not None:
            request["current_dose"] = {
                "amount": float(amount),
                "unit": profile.dosing_unit,
                "since": since.isoformat(),
                "last_given": last_given.isoformat(),
            }
        response = recommend(DoseRequest.model_validate(request))
        dose = response.dose
        recommendations.append(
            RecommendationEntry(
                decided=as_of,
                drug=scenario.drug,
                action=response.action,
                rule=response.rationale[0].rule,
                dose_amount=_text(Decimal(str(dose.amount))) if dose else None,
                dose_unit=dose.unit if dose else None,
                next_dose_date=response.next_dose_date,
            )
        )
        action = response.action
        if dose is not None and action in ("start", "increase", "decrease", "resume", "continue"):
            level = Decimal(str(dose.amount))
            if action != "continue" or amount is None:
                since = response.next_dose_date or as_of
            amount, on_hold = level, False
            if response.next_dose_date is not None and profile.interval_days > 1:
                last_given = response.next_dose_date  # the injection given on its day
                doses.append(DoseEntry(last_given, _text(level), profile.dosing_unit))
            elif last_given is None or scenario.drug == "lusutrombopag":
                last_given = response.next_dose_date or as_of
        elif action == "hold":
            on_hold = True
        elif action in ("discontinue", "complete"):
            amount = since = last_given = None
            on_hold = False
    return TrendRecord(
        scenario.label,
        scenario.drug,
        scenario.indication,
        scenario.region,
        tuple(labs),
        tuple(doses),
        tuple(transfusions),
        tuple(recommendations),
    )


def _text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


SCENARIOS = (
    Scenario(
        "EX-R1",
        "romiplostim",
        "itp",
        "us",
        dt.date(2026, 9, 6),
        7,
        [18, 24, 31, 38, 46, 72, 160, 240, 265, 430, 290, 180, 120, 96],
        "10^9/L",
        patient={"weight_kg": 72},
    ),
    Scenario(
        "EX-H1",
        "hetrombopag",
        "itp",
        "cn",
        dt.date(2026, 8, 2),
        14,
        [22, 31, 44, 78, 190, 310, 440, 260, 130, 92],
        "10^9/L",
    ),
    Scenario(
        "EX-L1",
        "lusutrombopag",
        "cld_procedure",
        "jp",
        dt.date(2026, 11, 10),
        1,
        [36, 41, 64],
        "10^9/L",
        extra={"procedure_date": "2026-11-22", "patient": {"child_pugh": "A"}},
        consultation_days=[0, 2, 5],
    ),
    Scenario(
        "EX-P1",
        "luspatercept",
        "mds",
        "us",
        dt.date(2026, 5, 3),
        21,
        [7.6, 8.1, 8.4, 9.2, 10.1, 11.8, 11.3, 10.6, 10.2],
        "g/dL",
        patient={"weight_kg": 70},
        transfusions={0: 2, 1: 2, 2: 1, 3: 1},
    ),
)


def example_records() -> dict[str, TrendRecord]:
    return {scenario.drug: run(scenario) for scenario in SCENARIOS}


def example_charts() -> dict[str, TrendChart]:
    """drug -> its example chart."""
    charts = {}
    for drug, record in example_records().items():
        chart = build(record)
        assert chart is not None, f"the {drug} example has results"
        charts[drug] = chart
    return charts
