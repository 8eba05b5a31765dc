"""The audit as a hash chain: an edited, deleted or reordered entry is found and named.

Entry number `seq` (1, 2, 3, ... in the order written) stores `prev_hash`, the hash of entry
seq - 1 (GENESIS for the first), and `hash`:

    hash = SHA-256( prev_hash + "\\n" + canonical JSON of
                    {"seq", "user_id", "patient_label", "at", "ruleset", "request", "response"} )

canonical JSON: keys sorted, separators "," and ":", UTF-8 (not ASCII-escaped); `at` as
YYYY-MM-DDTHH:MM:SS.ffffff (UTC). This format is fixed: entries already written are checked with
it, so a change needs a migration that re-chains.

Appending: the chain head row (`audit_head`) is moved first (UPDATE ... RETURNING), in the
transaction that inserts the entry. On SQLite the UPDATE takes the database's write lock, held to
the commit (writers are serialised, and no writer works on a stale snapshot); on PostgreSQL it
takes the head row's lock, so a second writer waits and then reads the new head. Either way the
previous hash read and the insert are one step of the chain.

What this does not prove: someone who can write the database can rewrite the whole chain from
the first changed entry and the head with it. Keep the head hash that `hemadose audit verify`
prints, with its entry count, somewhere else: a later export must still show that hash at that
entry, or the entries up to it were rewritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert, select, update

from bot.storage.session import DbSession
from bot.storage.tables import Audit, AuditHead

GENESIS = "0" * 64
HEAD_ID = 1
_AUDIT = cast(Table, Audit.__table__)
_HEAD = cast(Table, AuditHead.__table__)
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(seq=_HEAD.c.seq + 1).returning(_HEAD.c.seq, _HEAD.c.hash)
_PAGE = 500  # entries read per query when verifying or exporting


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    prev_hash: str,
    seq: int,
    user_id: int,
    patient_label: str | None,
    at: dt.datetime,
    ruleset: str,
    request: Any,
    response: Any,
) -> str:
    content = {
        "seq": seq,
        "user_id": user_id,
        "patient_label": patient_label,
        "at": at.isoformat(timespec="microseconds"),
        "ruleset": ruleset,
        "request": request,
        "response": response,
    }
    return hashlib.sha256(f"{prev_hash}\n{canonical(content)}".encode()).hexdigest()


async def append(
    session: DbSession,
    user_id: int,
    patient_label: str | None,
    at: dt.datetime,
    ruleset: str,
    request: dict[str, Any],
    response: dict[str, Any],
) -> int:
    """Add one entry at the chain's end, in the caller's transaction; its number."""
    seq, prev_hash = (await session.execute(_MOVE_HEAD)).one()
    digest = entry_hash(prev_hash, seq, user_id, patient_label, at, ruleset, request, response)
    entry: dict[str, Any] = {"user_id": user_id, "patient_label": patient_label, "at": at, "ruleset": ruleset}
    entry |= {"request": request, "response": response, "seq": seq, "prev_hash": prev_hash, "hash": digest}
    await session.execute(insert(_AUDIT).values(entry))
    await session.execute(update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(hash=digest))
    return int(seq)


async def entries(session: DbSession) -> AsyncIterator[Any]:
    """Every entry in the order stored (by id), a page at a time."""
    after = 0
    while True:
        rows = (
            await session.execute(select(_AUDIT).where(_AUDIT.c.id > after).order_by(_AUDIT.c.id).limit(_PAGE))
        ).all()
        for row in rows:
            yield row
        if len(rows) < _PAGE:
            return
        after = rows[-1].id


@dataclass(frozen=True)
class Verdict:
    entries: int  # entries checked
    head: str  # the hash of the last entry (GENESIS for an empty audit)
    problem: str | None = None  # the first broken entry and what is wrong with it
    entry_id: int | None = None  # its id (None: the chain's end or head)

    @property
    def intact(self) -> bool:
        return self.problem is None


async def verify(session: DbSession) -> Verdict:
    """Walk the chain in stored order; the first entry that is not what the chain says, named."""
    expected, previous, previous_id, count = 1, GENESIS, None, 0
    async for row in entries(session):
        count += 1
        where = f"audit entry id {row.id} (#{row.seq})"
        if row.seq != expected:
            if row.seq < expected:
                problem = f"{where}: out of order, it comes after #{expected - 1} (moved or copied)"
                return Verdict(count - 1, previous, problem, row.id)
            found = await session.scalar(select(_AUDIT.c.id).where(_AUDIT.c.seq == expected))
            if found is not None:
                problem = f"{where}: out of order, #{expected} (id {found}) is stored after it (moved)"
            else:
                missing = f"#{expected}" if row.seq == expected + 1 else f"#{expected} to #{row.seq - 1}"
                problem = f"audit entry {missing} missing (deleted): the next entry is id {row.id} (#{row.seq})"
            return Verdict(count - 1, previous, problem, found if found is not None else row.id)
        digest = entry_hash(
            row.prev_hash, row.seq, row.user_id, row.patient_label, row.at, row.ruleset, row.request, row.response
        )
        if digest != row.hash:
            return Verdict(count - 1, previous, f"{where}: its content does not match its hash (edited)", row.id)
        if row.prev_hash != previous:
            before = f"id {previous_id} (#{expected - 1})" if previous_id is not None else "the start"
            problem = f"{where}: does not follow the entry before it, {before} (that entry was changed or replaced)"
            return Verdict(count - 1, previous, problem, row.id)
        expected, previous, previous_id = expected + 1, row.hash, row.id
    head = (await session.execute(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == HEAD_ID))).first()
    if head is None:
        return Verdict(count, previous, "the audit chain's head row is missing (deleted)")
    if head.seq > count:
        missing = f"#{count + 1}" if head.seq == count + 1 else f"#{count + 1} to #{head.seq}"
        return Verdict(count, previous, f"audit entry {missing} missing at the end (deleted): the head says {head.seq}")
    if head.seq != count or head.hash != previous:
        return Verdict(count, previous, f"the audit chain's head does not match its last entry (#{count}): changed")
    return Verdict(count, previous)


def export_line(row: Any) -> str:
    """One entry as a JSON line: every field the hash covers, and the hashes."""
    entry = {
        "id": row.id,
        "seq": row.seq,
        "at": row.at.isoformat(timespec="microseconds"),
        "user_id": row.user_id,
        "patient_label": row.patient_label,
        "ruleset": row.ruleset,
        "request": row.request,
        "response": row.response,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }
    return json.dumps(entry, ensure_ascii=False)
