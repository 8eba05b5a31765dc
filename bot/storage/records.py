"""What a consultation writes to the patient's record: weight, regimen, the last dose, results and
transfusions, in the update's transaction. Core statements, not ORM objects (a save is the heaviest
update); what is already on record is skipped by the tables' unique keys, never read to find out.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.storage.session import DbSession
from bot.storage.tables import Dose, LabRow, PatientRow, Regimen, Reminder, TransfusionRow
from core.models import DoseRequest, DoseResponse
from flows.replies import SaveConsultation

_PATIENTS, _REGIMENS, _DOSES, _LABS, _TRANSFUSIONS, _REMINDERS = (
    cast(Table, model.__table__) for model in (PatientRow, Regimen, Dose, LabRow, TransfusionRow, Reminder)
)


def _or_ignore(session: DbSession, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL (both spell it the same)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def save_consultation(session: DbSession, user_id: int, effect: SaveConsultation) -> dict[str, Any]:
    """The patient's record after a consultation: weight, regimen, the last dose, results, transfusions.

    Core statements, not ORM objects: a save is the heaviest update, and the unit of work cost
    more than the statements (about half of the update's time). Returns what it changed (the rows it
    added, the facts and regimen as they were), for Undo (bot/storage/corrections.py).
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
    facts_columns = [_PATIENTS.c[name] for name in FACTS]
    found = (
        await session.execute(
            select(_PATIENTS.c.id, *facts_columns).where(
                _PATIENTS.c.user_id == user_id, _PATIENTS.c.label == effect.patient_label
            )
        )
    ).first()
    changes: dict[str, Any] = {"created": found is None, "labs": [], "doses": [], "transfusions": []}
    if found is None:
        values = {"user_id": user_id, "label": effect.patient_label, "created_at": _now(), **known_facts}
        patient_id = await session.scalar(insert(_PATIENTS).values(values).returning(_PATIENTS.c.id))
    else:
        patient_id = found[0]
        changes["facts"] = {name: _json(value) for name, value in zip(FACTS, found[1:], strict=True)}
        if known_facts:
            await session.execute(update(_PATIENTS).where(_PATIENTS.c.id == patient_id).values(known_facts))
    changes["patient_id"] = patient_id
    # Reminders set from this save come after it: those with a higher id than any before (Undo stops them).
    changes["reminders_after"] = await session.scalar(select(func.max(_REMINDERS.c.id))) or 0
    before = (await session.execute(select(_REGIMENS).where(_REGIMENS.c.patient_id == patient_id))).first()
    changes["regimen"] = {k: _json(v) for k, v in before._mapping.items() if k != "id"} if before else None
    await _save_regimen(session, patient_id, request, response)
    current = request.current_dose
    # A dose, result or transfusion already on record is not added twice: the tables' unique keys skip
    # it (INSERT ... ON CONFLICT DO NOTHING), so nothing of the record is read to find out.
    if current is not None:
        dose = {"patient_id": patient_id, "drug": request.drug, "amount": _text(current.amount)}
        dose |= {"unit": current.unit, "given_on": current.last_given, "status": "given", "recorded_at": _now()}
        changes["doses"] = list(await session.scalars(_or_ignore(session, _DOSES).values(dose).returning(_DOSES.c.id)))
    if request.labs:
        common = {"patient_id": patient_id, "recorded_at": _now()}
        new_labs = {(lab.test, lab.date, _text(lab.value), lab.unit): None for lab in request.labs}
        for key in new_labs:  # one by one: the ids of those added (not those already on record), for Undo
            values = dict(zip(("test", "date", "value", "unit"), key, strict=True)) | common
            added = await session.scalar(_or_ignore(session, _LABS).values(values).returning(_LABS.c.id))
            changes["labs"] += [added] if added is not None else []
    if request.transfusions:
        new_transfusions = {(t.date, _text(t.units)): None for t in request.transfusions}
        for day, units in new_transfusions:
            values = {"patient_id": patient_id, "date": day, "units": units}
            added = await session.scalar(
                _or_ignore(session, _TRANSFUSIONS).values(values).returning(_TRANSFUSIONS.c.id)
            )
            changes["transfusions"] += [added] if added is not None else []
    return changes


FACTS = ("weight_kg", "weight_date", "age_years", "child_pugh", "baseline_rbc_units_per_12_weeks")


def _json(value: Any) -> Any:
    """A column's value as JSON keeps it (dates as ISO text), to be put back by Undo."""
    return value.isoformat() if isinstance(value, dt.date) else value


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
