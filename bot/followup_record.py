"""The patient's record as a follow-up consultation starts from: the stored summary with the last
recommendation given for the label, and the doses counted at the current level."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from bot.storage import Storage
from bot.storage.pages import recommendations
from bot.storage.session import DbSession
from bot.storage.tables import Audit, Dose, PatientRow
from flows.replies import PatientSummary


async def follow_up_record(
    storage: Storage, session: DbSession, user_id: int, label: str, today: dt.date
) -> PatientSummary | None:
    """The patient's record as the follow-up uses it, with the last recommendation given for the label."""
    exact = await storage.find_label(session, user_id, label)
    if exact is None:
        return None
    record = (await storage.summaries(session, user_id, today, labels=[exact])).get(exact)
    if record is None:
        return None
    entry = await session.scalar(
        select(Audit).where(recommendations(user_id, exact)).order_by(Audit.id.desc()).limit(1)
    )
    if entry is None:
        return record
    request: dict[str, Any] = entry.request
    response: dict[str, Any] = entry.response
    dose = response.get("dose")
    updates = {
        "last_decided": dt.date.fromisoformat(str(request["as_of"])),
        "last_action": response["action"],
        "last_dose": f"{dose['amount']} {dose['unit']}" if isinstance(dose, dict) else None,
        "last_rule": response["rationale"][0]["rule"],
    }
    # The record keeps no procedure date: the last consultation for this drug's is offered (shown to confirm).
    if request.get("drug") == record.drug and request.get("procedure_date"):
        updates["procedure_date"] = dt.date.fromisoformat(str(request["procedure_date"]))
    counted = await _doses_at_level(session, user_id, exact, record, request, response)
    if counted is not None:
        updates["doses_at_level"] = counted
    return record.model_copy(update=updates)


async def _doses_at_level(
    session: DbSession,
    user_id: int,
    label: str,
    record: PatientSummary,
    request: dict[str, Any],
    response: dict[str, Any],
) -> int | None:
    """Doses at the current level: the number the clinician gave last time, plus those recorded since.

    The record holds one dose row per consultation (its last dose) and the reminders' Taken ones,
    so counting rows alone misses the earlier doses that the clinician counted (e.g. 2 at 1 mg/kg).
    """
    current = request.get("current_dose") or {}
    if (
        request.get("drug") != record.drug
        or record.dose_amount is None
        or current.get("doses_at_level") is None
        or Decimal(str(current.get("amount"))) != Decimal(record.dose_amount)
        or current.get("since") != (record.dose_since.isoformat() if record.dose_since else None)
        or response["action"] in ("start", "increase", "decrease", "resume")
    ):
        return None
    then = dt.date.fromisoformat(str(current["last_given"]))
    later = await session.scalar(
        select(func.count(Dose.id))
        .join(PatientRow, PatientRow.id == Dose.patient_id)
        .where(
            PatientRow.user_id == user_id,
            PatientRow.label == label,
            Dose.drug == record.drug,
            Dose.status == "given",
            Dose.amount == record.dose_amount,
            Dose.given_on > then,
        )
    )
    return int(current["doses_at_level"]) + int(later or 0)
