"""The save and audit effects carry the core's models, and what they store is what the dicts stored:
the audit's JSON byte for byte (the chat's `request_json` / `response_json`), the record's numbers as
the decimal text of the request's JSON numbers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.storage import Storage, open_storage
from bot.storage.tables import Audit, Dose, LabRow, PatientRow, Regimen, TransfusionRow
from core import recommend
from core.models import DoseRequest, DoseResponse
from flows.replies import AuditRecommendation, SaveConsultation, request_json, response_json
from tests.helpers import hetrombopag, luspatercept, lusutrombopag, romiplostim

CASES = {
    "romiplostim": romiplostim(),
    # More digits than a float keeps: the record holds the text of the JSON number, as before.
    "long numbers": romiplostim(patient={"weight_kg": Decimal("72.123456789012345678"), "age_years": Decimal("40.50")}),
    "hetrombopag": hetrombopag(),
    "lusutrombopag": lusutrombopag(),
    "luspatercept": luspatercept(
        transfusions=[{"date": "2026-11-08", "units": 1.5}, {"date": "2026-10-20", "units": 2}],
        baseline_rbc_units_per_12_weeks=4.0,
    ),
}


def _old_text(value: Any) -> str:
    """The record's text of a JSON number, as computed when the effects carried dicts."""
    return format(Decimal(str(value)).normalize(), "f")


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    opened = await open_storage(f"sqlite:///{tmp_path}/typed.db")
    yield opened
    await opened.close()


def test_the_chat_json_survives_a_round_trip_through_the_models() -> None:
    """The chat keeps the JSON between updates; Save rebuilds the models from it: nothing moves."""
    for request in CASES.values():
        parsed = DoseRequest.model_validate(request)
        kept, answer = request_json(parsed), response_json(recommend(parsed))
        assert json.dumps(request_json(DoseRequest.model_validate(kept))) == json.dumps(kept)
        assert json.dumps(response_json(DoseResponse.model_validate(answer))) == json.dumps(answer)


@pytest.mark.parametrize("case", list(CASES))
async def test_stored_rows_are_those_of_the_request_json(storage: Storage, case: str) -> None:
    parsed = DoseRequest.model_validate(CASES[case])
    response = recommend(parsed)
    kept, answer = request_json(parsed), response_json(response)
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        await storage.save_consultation(session, user, SaveConsultation("RX-1", parsed, response))
        await storage.audit(session, user, AuditRecommendation("RX-1", parsed, response))
    async with storage.session() as session:
        audit = (await session.scalars(select(Audit))).one()
        patient = (await session.scalars(select(PatientRow))).one()
        regimen = await session.scalar(select(Regimen))
        doses = (await session.scalars(select(Dose))).all()
        labs = (await session.scalars(select(LabRow))).all()
        transfusions = (await session.scalars(select(TransfusionRow))).all()
    # The audit: the same JSON, keys in the same order.
    assert json.dumps(audit.request) == json.dumps(kept)
    assert json.dumps(audit.response) == json.dumps(answer)
    assert audit.ruleset == answer["ruleset"]
    facts = kept.get("patient", {})
    assert patient.weight_kg == (_old_text(facts["weight_kg"]) if "weight_kg" in facts else None)
    assert patient.age_years == (_old_text(facts["age_years"]) if "age_years" in facts else None)
    baseline = kept.get("baseline_rbc_units_per_12_weeks")
    assert patient.baseline_rbc_units_per_12_weeks == (_old_text(baseline) if baseline is not None else None)
    current = kept.get("current_dose")
    assert [(d.drug, d.amount, d.unit, d.given_on.isoformat(), d.status) for d in doses] == (
        [(kept["drug"], _old_text(current["amount"]), current["unit"], current["last_given"], "given")]
        if current
        else []
    )
    assert sorted((lab.test, lab.date.isoformat(), lab.value, lab.unit) for lab in labs) == sorted(
        (lab["test"], lab["date"], _old_text(lab["value"]), lab["unit"]) for lab in kept.get("labs", [])
    )
    assert sorted((t.date.isoformat(), t.units) for t in transfusions) == sorted(
        (t["date"], _old_text(t["units"])) for t in kept.get("transfusions", [])
    )
    if regimen is not None:
        assert (regimen.drug, regimen.indication, regimen.region) == (
            kept["drug"],
            kept["indication"],
            answer["ruleset"].split("/")[1],
        )
        dose = answer["dose"]
        if answer["action"] in ("start", "increase", "decrease", "resume"):
            assert (regimen.dose_amount, regimen.dose_unit) == (_old_text(dose["amount"]), dose["unit"])
            assert regimen.since is not None
            assert regimen.since.isoformat() == answer["next_dose_date"]
        elif current:
            assert regimen.dose_amount == _old_text(current["amount"])
