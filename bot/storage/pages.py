"""The lists the chat shows in pages (/patients, /history): one page read, whatever the list's length.

Why: a user with 10,000 patients, or a patient with 10,000 results, made one reply of every row
(read, sorted and sent: over Telegram's 4,096 characters). A page is read by LIMIT/OFFSET on an index
in the list's order; how many pages there are is one count of the same index.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, NamedTuple, TypeVar, cast

from sqlalchemy import Table, bindparam, func, select

from bot.storage.session import DbSession
from bot.storage.tables import Audit, Dose, LabRow, PatientRow, Regimen, TransfusionRow

_PATIENTS, _REGIMENS, _DOSES, _LABS, _TRANSFUSIONS, _AUDIT = (
    cast(Table, model.__table__) for model in (PatientRow, Regimen, Dose, LabRow, TransfusionRow, Audit)
)
_UNDONE = cast(Table, Audit.__table__).alias("undone")
_COUNT_PATIENTS = select(func.count()).select_from(_PATIENTS).where(_PATIENTS.c.user_id == bindparam("user_id"))

T = TypeVar("T")


class Page(NamedTuple, Generic[T]):
    """One page of a list the chat shows in pages (/patients, /history): its entries and where it is."""

    entries: list[T]
    page: int  # 1-based; a page asked past the last is the last
    pages: int  # at least 1
    total: int  # entries in the whole list


def _pages(total: int, size: int | None, page: int) -> tuple[int, int]:
    """How many pages `total` entries make, and `page` brought within them."""
    pages = max(1, -(-total // size)) if size else 1
    return pages, min(max(page, 1), pages)


async def patients(session: DbSession, user_id: int, page: int, size: int | None) -> Page[tuple[str, str | None]]:
    """One page of (label, drug or None) in label order, and how many pages there are now.

    A page past the last (a stale button: patients are only ever added) is the last page. LIMIT/OFFSET
    on the (user_id, label) key: the rows before the page are skipped in the index, not read.
    """
    total = int(await session.scalar(_COUNT_PATIENTS, {"user_id": user_id}) or 0)
    pages, page = _pages(total, size, page)
    query = (
        select(_PATIENTS.c.label, _REGIMENS.c.drug)
        .outerjoin(_REGIMENS, _REGIMENS.c.patient_id == _PATIENTS.c.id)
        .where(_PATIENTS.c.user_id == user_id)
        .order_by(_PATIENTS.c.label)
    )
    if size is not None:
        query = query.limit(size).offset((page - 1) * size)
    rows = await session.execute(query)
    return Page([(label, drug) for label, drug in rows], page, pages, total)


class Entry(NamedTuple):
    """One line of a patient's record: a dose, result or transfusion (editable, by its row id) or a
    recommendation (the audit's: not editable)."""

    day: dt.date
    kind: str  # dose | lab | transfusion | recommendation
    row_id: int
    text: str


def recommendations(user_id: int, label: str) -> Any:
    """The audit's recommendations for the label, not undone (an undo entry refers to it): /history's and
    the follow-up's; corrections, undos and tombstones are not recommendations."""
    undone = select(_UNDONE.c.refers_to).where(
        _UNDONE.c.kind == "undo", _UNDONE.c.user_id == user_id, _UNDONE.c.refers_to == _AUDIT.c.seq
    )
    return (
        (_AUDIT.c.user_id == user_id)
        & (_AUDIT.c.patient_label == label)
        & (_AUDIT.c.kind == "recommendation")
        & ~undone.exists()
    )


async def history(
    session: DbSession, user_id: int, patient_id: int, label: str, page: int, size: int | None
) -> Page[tuple[dt.date, str]]:
    """One page of the patient's doses, results and recommendations, newest first (/history)."""
    found = await record(session, user_id, patient_id, label, page, size)
    return Page([(entry.day, entry.text) for entry in found.entries], found.page, found.pages, found.total)


async def record(
    session: DbSession, user_id: int, patient_id: int, label: str, page: int, size: int | None
) -> Page[Entry]:
    """One page of the patient's doses, results and recommendations, newest first, each with its kind and id.

    Each source is read newest first by its (patient, date) index, only as far as the page reaches,
    and merged: the first pages cost the same whatever the record's size.
    """
    counts = (
        await session.execute(
            select(
                select(func.count()).select_from(_DOSES).where(_DOSES.c.patient_id == patient_id).scalar_subquery(),
                select(func.count()).select_from(_LABS).where(_LABS.c.patient_id == patient_id).scalar_subquery(),
                select(func.count())
                .select_from(_TRANSFUSIONS)
                .where(_TRANSFUSIONS.c.patient_id == patient_id)
                .scalar_subquery(),
                select(func.count()).select_from(_AUDIT).where(recommendations(user_id, label)).scalar_subquery(),
            )
        )
    ).one()
    total = sum(int(count or 0) for count in counts)
    pages, page = _pages(total, size, page)
    reach = page * size if size is not None else None  # each source's newest `reach` entries hold the page

    def newest(query: Any, *order: Any) -> Any:
        query = query.order_by(*(column.desc() for column in order))
        return query.limit(reach) if reach is not None else query

    # (date, order, id, kind, text): recommendations above the results and doses of their date, newest first.
    events: list[tuple[dt.date, int, int, str, str]] = []
    doses = select(_DOSES.c.given_on, _DOSES.c.id, _DOSES.c.status, _DOSES.c.drug, _DOSES.c.amount, _DOSES.c.unit)
    for day, row_id, status, drug, amount, unit in await session.execute(
        newest(doses.where(_DOSES.c.patient_id == patient_id), _DOSES.c.given_on, _DOSES.c.id)
    ):
        events.append((day, 0, row_id, "dose", f"dose {status}: {drug} {amount} {unit}"))
    labs = select(_LABS.c.date, _LABS.c.id, _LABS.c.test, _LABS.c.value, _LABS.c.unit)
    for day, row_id, test, value, unit in await session.execute(
        newest(labs.where(_LABS.c.patient_id == patient_id), _LABS.c.date, _LABS.c.id)
    ):
        events.append((day, 1, row_id, "lab", f"{test} {value} {unit}"))
    transfusions = select(_TRANSFUSIONS.c.date, _TRANSFUSIONS.c.id, _TRANSFUSIONS.c.units)
    for day, row_id, units in await session.execute(
        newest(transfusions.where(_TRANSFUSIONS.c.patient_id == patient_id), _TRANSFUSIONS.c.date, _TRANSFUSIONS.c.id)
    ):
        events.append((day, 1, row_id, "transfusion", f"transfusion {units} units"))
    # The consultation's date (the request's as_of), not the server's: ordered by it in the query.
    as_of = _AUDIT.c.request["as_of"].as_string()
    audits = select(as_of, _AUDIT.c.id, _AUDIT.c.response).where(recommendations(user_id, label))
    for decided, row_id, response in await session.execute(newest(audits, as_of, _AUDIT.c.id)):
        given = response.get("dose")
        shown = f" {given['amount']} {given['unit']}" if isinstance(given, dict) else ""
        rule = response["rationale"][0]["rule"]
        text = f"recommendation: {response['action']}{shown} ({rule})"
        events.append((dt.date.fromisoformat(str(decided)), 2, row_id, "recommendation", text))
    events.sort(reverse=True)
    first = (page - 1) * size if size is not None else 0
    kept = events[first : first + size] if size is not None else events
    return Page([Entry(day, kind, row_id, text) for day, _, row_id, kind, text in kept], page, pages, total)
