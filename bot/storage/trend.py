"""The rows a trend chart is drawn from (flows/trend.py): one patient's results, doses, transfusions
and recommendations, each source read newest first by its (patient, date) index and LIMIT-ed, so a
chart costs the same whatever the record's size."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Table, select

from bot.storage.pages import recommendations as not_undone_recommendations
from bot.storage.session import DbSession
from bot.storage.tables import Audit, Dose, LabRow, Regimen, TransfusionRow
from flows.state import LabRecord, TransfusionRecord
from flows.trend import ROWS_READ, DoseEntry, RecommendationEntry, TrendRecord

_REGIMENS, _DOSES, _LABS, _TRANSFUSIONS, _AUDIT = (
    cast(Table, model.__table__) for model in (Regimen, Dose, LabRow, TransfusionRow, Audit)
)


def _recommendation(request: dict[str, Any], response: dict[str, Any]) -> RecommendationEntry:
    dose: dict[str, Any] = response.get("dose") or {}
    following = response.get("next_dose_date")
    return RecommendationEntry(
        decided=dt.date.fromisoformat(str(request["as_of"])),
        drug=str(request["drug"]),
        action=str(response["action"]),
        rule=str(response["rationale"][0]["rule"]),
        dose_amount=str(dose["amount"]) if dose else None,
        dose_unit=str(dose["unit"]) if dose else None,
        next_dose_date=dt.date.fromisoformat(str(following)) if following else None,
    )


async def read(session: DbSession, user_id: int, patient_id: int, label: str) -> TrendRecord:
    """The patient's record for the chart. The drug, indication and region are the regimen's, else
    the last recommendation's (a stopped or completed treatment has no regimen row)."""
    regimen = (
        await session.execute(
            select(_REGIMENS.c.drug, _REGIMENS.c.indication, _REGIMENS.c.region).where(
                _REGIMENS.c.patient_id == patient_id
            )
        )
    ).first()
    as_of = _AUDIT.c.request["as_of"].as_string()
    audits = (
        await session.execute(
            select(_AUDIT.c.request, _AUDIT.c.response)
            .where(not_undone_recommendations(user_id, label))  # not corrections, undos or undone recommendations
            .order_by(as_of.desc(), _AUDIT.c.id.desc())
            .limit(ROWS_READ)
        )
    ).all()
    recommendations = [_recommendation(request, response) for request, response in reversed(audits)]
    if regimen is not None:
        drug, indication, region = regimen
    elif audits:
        request = audits[0][0]
        drug, indication, region = request.get("drug"), request.get("indication"), request.get("region")
    else:
        drug = indication = region = None
    labs = await session.execute(
        select(_LABS.c.test, _LABS.c.value, _LABS.c.unit, _LABS.c.date)
        .where(_LABS.c.patient_id == patient_id)
        .order_by(_LABS.c.date.desc(), _LABS.c.id.desc())
        .limit(ROWS_READ)
    )
    doses = await session.execute(
        select(_DOSES.c.given_on, _DOSES.c.amount, _DOSES.c.unit, _DOSES.c.status)
        .where(_DOSES.c.patient_id == patient_id)
        .order_by(_DOSES.c.given_on.desc(), _DOSES.c.id.desc())
        .limit(ROWS_READ)
    )
    transfusions = await session.execute(
        select(_TRANSFUSIONS.c.date, _TRANSFUSIONS.c.units)
        .where(_TRANSFUSIONS.c.patient_id == patient_id)
        .order_by(_TRANSFUSIONS.c.date.desc(), _TRANSFUSIONS.c.id.desc())
        .limit(ROWS_READ)
    )
    return TrendRecord(
        label=label,
        drug=drug,
        indication=indication,
        region=region,
        labs=tuple(reversed([LabRecord(test=t, value=v, unit=u, date=d) for t, v, u, d in labs])),
        doses=tuple(reversed([DoseEntry(d, a, u, s) for d, a, u, s in doses])),
        transfusions=tuple(reversed([TransfusionRecord(date=d, units=u) for d, u in transfusions])),
        recommendations=tuple(recommendations),
    )
