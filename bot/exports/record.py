"""One patient's whole record, as the exports write it and the imports read it back.

Read once per export (`read`): the patient's facts, regimen, every result, dose and transfusion, and
the recommendations the audit holds for the label. Written by an import (`add`) into the importing
user's records only, in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update

from bot.storage.pages import recommendations
from bot.storage.records import _now
from bot.storage.session import DbSession
from bot.storage.tables import Audit, Dose, LabRow, PatientRow, Regimen, Reminder, TransfusionRow, User
from core.models import DoseRequest, DoseResponse
from flows.exporting import Imported

FACTS = ("weight_kg", "weight_date", "age_years", "child_pugh", "baseline_rbc_units_per_12_weeks")


@dataclass(frozen=True, slots=True)
class Lab:
    test: str
    value: str  # as entered (decimal text)
    unit: str
    date: dt.date


@dataclass(frozen=True, slots=True)
class GivenDose:
    drug: str
    amount: str
    unit: str
    given_on: dt.date
    status: str = "given"  # given | skipped | missed


@dataclass(frozen=True, slots=True)
class Transfusion:
    date: dt.date
    units: str


@dataclass(frozen=True, slots=True)
class Treatment:
    """The regimen row: the current treatment."""

    drug: str
    indication: str
    region: str
    dose_amount: str | None
    dose_unit: str
    since: dt.date | None
    on_hold: bool


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One audited recommendation: the core's stored request and decision, who asked and when."""

    asked_by: str  # the user's key ('tg:1001', 'local:ward-3'): never a name
    at: dt.datetime  # UTC
    request: DoseRequest
    response: DoseResponse


@dataclass(slots=True)
class PatientRecord:
    label: str
    weight_kg: str | None = None
    weight_date: dt.date | None = None
    age_years: str | None = None
    child_pugh: str | None = None
    baseline_rbc_units_per_12_weeks: str | None = None
    treatment: Treatment | None = None
    labs: list[Lab] = field(default_factory=list)
    doses: list[GivenDose] = field(default_factory=list)
    transfusions: list[Transfusion] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)  # oldest first
    reminder_time: dt.time | None = None  # the active reminders' local time, if set
    time_zone: str | None = None  # the user's zone (the reminders' and the calendar's)

    def facts(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FACTS}

    @property
    def last(self) -> Recommendation | None:
        return self.recommendations[-1] if self.recommendations else None


async def read(session: DbSession, user_id: int, label: str) -> PatientRecord | None:
    """The user's patient `label` (as recorded), whole; None if the user has no such patient."""
    patient = await session.scalar(select(PatientRow).where(PatientRow.user_id == user_id, PatientRow.label == label))
    if patient is None:
        return None
    record = PatientRecord(label=patient.label, **{name: getattr(patient, name) for name in FACTS})
    regimen = await session.scalar(select(Regimen).where(Regimen.patient_id == patient.id))
    if regimen is not None:
        record.treatment = Treatment(
            regimen.drug,
            regimen.indication,
            regimen.region,
            regimen.dose_amount,
            regimen.dose_unit,
            regimen.since,
            regimen.on_hold,
        )
    labs = await session.scalars(select(LabRow).where(LabRow.patient_id == patient.id).order_by(LabRow.date, LabRow.id))
    record.labs = [Lab(lab.test, lab.value, lab.unit, lab.date) for lab in labs]
    doses = await session.scalars(select(Dose).where(Dose.patient_id == patient.id).order_by(Dose.given_on, Dose.id))
    record.doses = [GivenDose(d.drug, d.amount, d.unit, d.given_on, d.status) for d in doses]
    transfusions = await session.scalars(
        select(TransfusionRow).where(TransfusionRow.patient_id == patient.id).order_by(TransfusionRow.date)
    )
    record.transfusions = [Transfusion(t.date, t.units) for t in transfusions]
    entries = await session.execute(
        select(Audit.at, Audit.request, Audit.response, User.external_id)
        .join(User, User.id == Audit.user_id)
        .where(recommendations(user_id, patient.label))  # not corrections, undos, undone ones
        .order_by(Audit.id)
    )
    record.recommendations = [
        Recommendation(who, at, DoseRequest.model_validate(request), DoseResponse.model_validate(response))
        for at, request, response, who in entries
    ]
    reminder = await session.scalar(
        select(Reminder.local_time)
        .where(Reminder.patient_id == patient.id, Reminder.status == "active")
        .order_by(Reminder.id.desc())
        .limit(1)
    )
    record.reminder_time = dt.time.fromisoformat(reminder) if reminder else None
    record.time_zone = await session.scalar(select(User.time_zone).where(User.id == user_id))
    return record


async def add(session: DbSession, user_id: int, incoming: PatientRecord) -> Imported:
    """`incoming` added to the user's patient of that label (created if new), in the caller's transaction.

    Nothing on record is overwritten: a fact or treatment already there is kept (and reported); a
    result, dose or transfusion already there (same test, date and value) is skipped and reported.
    """
    added = Imported(incoming.label)
    patient = await session.scalar(
        select(PatientRow).where(PatientRow.user_id == user_id, PatientRow.label == incoming.label)
    )
    facts = {name: value for name, value in incoming.facts().items() if value is not None}
    if patient is None:
        added.created = True
        values = {"user_id": user_id, "label": incoming.label, "created_at": _now(), **facts}
        patient_id = await session.scalar(insert(PatientRow).values(values).returning(PatientRow.id))
        added.facts = [name for name in facts if name != "weight_date"]
    else:
        patient_id = patient.id
        missing = {name: value for name, value in facts.items() if getattr(patient, name) is None}
        if "weight_kg" not in missing:
            missing.pop("weight_date", None)  # the date belongs to the weight on record
        added.facts = [name for name in missing if name != "weight_date"]
        added.kept = [name for name in facts if name not in missing and name != "weight_date"]
        if missing:
            await session.execute(update(PatientRow).where(PatientRow.id == patient_id).values(missing))
    assert patient_id is not None
    if incoming.treatment is not None:
        has = await session.scalar(select(Regimen.id).where(Regimen.patient_id == patient_id))
        if has is None:
            t = incoming.treatment
            regimen = {"patient_id": patient_id, "drug": t.drug, "indication": t.indication, "region": t.region}
            regimen |= {"dose_amount": t.dose_amount, "dose_unit": t.dose_unit, "since": t.since}
            regimen |= {"on_hold": t.on_hold, "updated_at": _now()}
            await session.execute(insert(Regimen).values(regimen))
            added.treatment = True
        else:
            added.kept.append("treatment")
    labs_on_record = {
        (row.test, row.date, row.value, row.unit)
        for row in await session.execute(
            select(LabRow.test, LabRow.date, LabRow.value, LabRow.unit).where(LabRow.patient_id == patient_id)
        )
    }
    for lab in incoming.labs:
        lab_key = (lab.test, lab.date, lab.value, lab.unit)
        if lab_key in labs_on_record:
            added.duplicates.append(f"{lab.test} {lab.value} {lab.unit} on {lab.date.isoformat()}")
            continue
        labs_on_record.add(lab_key)
        row = {"patient_id": patient_id, "test": lab.test, "value": lab.value, "unit": lab.unit}
        await session.execute(insert(LabRow).values(row | {"date": lab.date, "recorded_at": _now()}))
        added.labs += 1
    doses_on_record = {
        (row.drug, row.given_on, row.status)
        for row in await session.execute(
            select(Dose.drug, Dose.given_on, Dose.status).where(Dose.patient_id == patient_id)
        )
    }
    for dose in incoming.doses:
        dose_key = (dose.drug, dose.given_on, dose.status)
        if dose_key in doses_on_record:
            added.duplicates.append(f"{dose.drug} dose ({dose.status}) on {dose.given_on.isoformat()}")
            continue
        doses_on_record.add(dose_key)
        row = {"patient_id": patient_id, "drug": dose.drug, "amount": dose.amount, "unit": dose.unit}
        row |= {"given_on": dose.given_on, "status": dose.status, "recorded_at": _now()}
        await session.execute(insert(Dose).values(row))
        added.doses += 1
    transfusions_on_record = {
        (row.date, row.units)
        for row in await session.execute(
            select(TransfusionRow.date, TransfusionRow.units).where(TransfusionRow.patient_id == patient_id)
        )
    }
    for transfusion in incoming.transfusions:
        transfusion_key = (transfusion.date, transfusion.units)
        if transfusion_key in transfusions_on_record:
            added.duplicates.append(f"transfusion of {transfusion.units} units on {transfusion.date.isoformat()}")
            continue
        transfusions_on_record.add(transfusion_key)
        values = {"patient_id": patient_id, "date": transfusion.date, "units": transfusion.units}
        await session.execute(insert(TransfusionRow).values(values))
        added.transfusions += 1
    return added
