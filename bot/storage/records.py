"""What a consultation writes to the patient's record: weight, regimen, the last dose, results and
transfusions, in the update's transaction. Core statements, not ORM objects (a save is the heaviest
update); what is already on record is skipped by the tables' unique keys, never read to find out.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.storage.session import DbSession
from bot.storage.tables import Dose, LabRow, PatientRow, Regimen, TransfusionRow
from core.models import DoseRequest, DoseResponse
from flows.replies import SaveConsultation

_PATIENTS, _REGIMENS, _DOSES, _LABS, _TRANSFUSIONS = (
    cast(Table, model.__table__) for model in (PatientRow, Regimen, Dose, LabRow, TransfusionRow)
)


def _or_ignore(session: DbSession, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL (both spell it the same)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def save_consultation(session: DbSession, user_id: int, effect: SaveConsultation) -> None:
    """The patient's record after a consultation: weight, regimen, the last dose, results, transfusions.

    Core statements, not ORM objects: a save is the heaviest update, and the unit of work cost
    more than the statements (about half of the update's time).
    """
    request, response = effect.request, effect.response
    facts = request.patient
    known_facts: dict[str, Any] = {}
    if facts.weight_kg is not None:
        known_facts["weight_kg"] = _text(facts.weight_kg)
        known_facts["weight_date"] = facts.weight_date
    if facts.age_years is not None:
        known_facts["age_years"] = _text(facts.age_years)
    if facts.child_pugh is not None:
        known_facts["child_pugh"] = facts.child_pugh
    if request.baseline_rbc_units_per_12_weeks is not None:
        known_facts["baseline_rbc_units_per_12_weeks"] = _text(request.baseline_rbc_units_per_12_weeks)
    patient_id = await session.scalar(
        select(_PATIENTS.c.id).where(_PATIENTS.c.user_id == user_id, _PATIENTS.c.label == effect.patient_label)
    )
    if patient_id is None:
        values = {"user_id": user_id, "label": effect.patient_label, "created_at": _now(), **known_facts}
        patient_id = await session.scalar(insert(_PATIENTS).values(values).returning(_PATIENTS.c.id))
    elif known_facts:
        await session.execute(update(_PATIENTS).where(_PATIENTS.c.id == patient_id).values(known_facts))
    await _save_regimen(session, patient_id, request, response)
    current = request.current_dose
    # A dose, result or transfusion already on record is not added twice: the tables' unique keys skip
    # it (INSERT ... ON CONFLICT DO NOTHING), so nothing of the record is read to find out.
    if current is not None:
        dose = {"patient_id": patient_id, "drug": request.drug, "amount": _text(current.amount)}
        dose |= {"unit": current.unit, "given_on": current.last_given, "status": "given", "recorded_at": _now()}
        await session.execute(_or_ignore(session, _DOSES).values(dose))
    if request.labs:
        common = {"patient_id": patient_id, "recorded_at": _now()}
        new_labs = {(lab.test, lab.date, _text(lab.value), lab.unit): None for lab in request.labs}
        rows = [dict(zip(("test", "date", "value", "unit"), key, strict=True)) | common for key in new_labs]
        await session.execute(_or_ignore(session, _LABS), rows)
    if request.transfusions:
        new_transfusions = {(t.date, _text(t.units)): None for t in request.transfusions}
        await session.execute(
            _or_ignore(session, _TRANSFUSIONS),
            [{"patient_id": patient_id, "date": day, "units": units} for day, units in new_transfusions],
        )


async def _save_regimen(session: DbSession, patient_id: int, request: DoseRequest, response: DoseResponse) -> None:
    """The treatment from now on: the recommended dose from its date, a hold, or none after a stop."""
    action = response.action
    await session.execute(delete(_REGIMENS).where(_REGIMENS.c.patient_id == patient_id))
    if action in ("discontinue", "complete"):
        return
    current = request.current_dose
    amount: Decimal | int | float | None = current.amount if current else None
    since, on_hold = (current.since if current else None), request.on_hold
    if action in ("start", "increase", "decrease", "resume"):
        assert response.dose is not None, "a dose-giving action carries its dose"
        amount, since, on_hold = response.dose.amount, response.next_dose_date, False
    elif action == "continue":
        on_hold = False
    elif action == "hold":
        on_hold = True
    elif amount is None:  # a refer before any start: nothing to record as treatment
        return
    unit = response.dose.unit if response.dose else current.unit if current else ""
    regimen: dict[str, Any] = {"patient_id": patient_id, "drug": request.drug, "indication": request.indication}
    regimen |= {"region": response.ruleset.split("/")[1], "dose_amount": _text(amount), "dose_unit": unit}
    regimen |= {"since": since, "on_hold": on_hold, "updated_at": _now()}
    await session.execute(insert(_REGIMENS).values(regimen))


def _text(value: Any) -> str:
    """Numbers are kept as their decimal text: exact, and the same on SQLite and PostgreSQL.

    A request's Decimal is read as the request's JSON number first (`request_json`), so the text is
    the one stored before the effects carried models (an int where whole, else a float)."""
    if isinstance(value, Decimal):
        integral = value.to_integral_value()
        value = int(integral) if value == integral else float(value)
    return format(Decimal(str(value)).normalize(), "f")
