"""The audit as a hash chain: an edited, deleted or reordered entry is found and named, and a deleted
patient's entries can lose their clinical content without breaking it (migration 0010, decision 11).

Entry number `seq` (1, 2, 3, ... in the order written) stores `prev_hash`, the hash of entry
seq - 1 (GENESIS for the first), and `hash`:

    payload_hash = SHA-256( canonical JSON of {"salt", "patient_label", "ruleset", "request", "response"} )
    hash = SHA-256( prev_hash + "\\n" + canonical JSON of
                    {"seq", "user_id", "kind", "at", "refers_to", "payload_hash"} )

canonical JSON: keys sorted, separators "," and ":", UTF-8 (not ASCII-escaped); `at` as
YYYY-MM-DDTHH:MM:SS.ffffff (UTC). `kind` is recommendation, correction, undo or tombstone; `refers_to`
the entry an undo undoes. The clinical part (label, ruleset: the drug and region, request, response) and
its random `salt` are
stored beside the chain, not in it: erasing them when a patient is deleted (`erase`) leaves the chain
intact, and without the salt the digest left behind cannot be tested against guessed contents. An
erased entry names its tombstone (`erased_by`), and the tombstone's own (kept) payload lists it: an
entry erased any other way is named by `verify`. This format is fixed: entries already written are
checked with it, so a change needs a migration that re-chains (0010 re-chained those of 0003's format,
`legacy_entry_hash`, after checking them).

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
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
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


class Kind(StrEnum):
    """What an entry records."""

    RECOMMENDATION = "recommendation"  # a recommendation given (saved or not)
    CORRECTION = "correction"  # a value of the record changed or deleted: old and new
    UNDO = "undo"  # a save undone (`refers_to`: the recommendation it had saved)
    TOMBSTONE = "tombstone"  # a patient deleted: no clinical data, the entries it erased


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_digest(salt: str, patient_label: str | None, ruleset: str | None, request: Any, response: Any) -> str:
    """The digest of an entry's clinical part, which the chain holds in its place."""
    content = {
        "salt": salt,
        "patient_label": patient_label,
        "ruleset": ruleset,
        "request": request,
        "response": response,
    }
    return hashlib.sha256(canonical(content).encode()).hexdigest()


def entry_hash(
    prev_hash: str,
    seq: int,
    user_id: int,
    kind: str,
    at: dt.datetime,
    refers_to: int | None,
    payload_hash: str,
) -> str:
    content = {
        "seq": seq,
        "user_id": user_id,
        "kind": kind,
        "at": at.isoformat(timespec="microseconds"),
        "refers_to": refers_to,
        "payload_hash": payload_hash,
    }
    return _linked(prev_hash, content)


def legacy_entry_hash(
    prev_hash: str,
    seq: int,
    user_id: int,
    patient_label: str | None,
    at: dt.datetime,
    ruleset: str,
    request: Any,
    response: Any,
) -> str:
    """The format of migration 0003 (the clinical part inside the chain): for migrations 0003 and 0010 only."""
    content = {
        "seq": seq,
        "user_id": user_id,
        "patient_label": patient_label,
        "at": at.isoformat(timespec="microseconds"),
        "ruleset": ruleset,
        "request": request,
        "response": response,
    }
    return _linked(prev_hash, content)


def _linked(prev_hash: str, content: dict[str, Any]) -> str:
    """SHA-256 of the previous hash, a newline and the entry's canonical JSON: one link of the chain."""
    return hashlib.sha256(f"{prev_hash}\n{canonical(content)}".encode()).hexdigest()


def new_salt() -> str:
    return secrets.token_hex(16)


async def append(
    session: DbSession,
    user_id: int,
    patient_label: str | None,
    at: dt.datetime,
    ruleset: str,
    request: dict[str, Any],
    response: dict[str, Any],
    *,
    kind: Kind = Kind.RECOMMENDATION,
    refers_to: int | None = None,
) -> int:
    """Add one entry at the chain's end, in the caller's transaction; its number."""
    seq, prev_hash = (await session.execute(_MOVE_HEAD)).one()
    salt = new_salt()
    payload = payload_digest(salt, patient_label, ruleset, request, response)
    digest = entry_hash(prev_hash, seq, user_id, kind, at, refers_to, payload)
    entry: dict[str, Any] = {"user_id": user_id, "patient_label": patient_label, "at": at, "ruleset": ruleset}
    entry |= {"request": request, "response": response, "seq": seq, "prev_hash": prev_hash, "hash": digest}
    entry |= {"kind": kind.value, "refers_to": refers_to, "payload_salt": salt, "payload_hash": payload}
    await session.execute(insert(_AUDIT).values(entry))
    await session.execute(update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(hash=digest))
    return int(seq)


async def erase(session: DbSession, user_id: int, patient_label: str, at: dt.datetime, facts: dict[str, Any]) -> int:
    """A deleted patient: every entry of the user's for the label loses its clinical part (label, request,
    response, salt), and one tombstone entry, with no clinical data, says who, when and which entries."""
    mine = (_AUDIT.c.user_id == user_id) & (_AUDIT.c.patient_label == patient_label)
    erased = list(await session.scalars(select(_AUDIT.c.seq).where(mine).order_by(_AUDIT.c.seq)))
    tombstone = await append(session, user_id, None, at, "", {**facts, "erased": erased}, {}, kind=Kind.TOMBSTONE)
    cleared: dict[str, Any] = {"patient_label": None, "ruleset": None, "request": None, "response": None}
    cleared |= {"payload_salt": None, "erased_by": tombstone}
    await session.execute(update(_AUDIT).where(mine).values(cleared))
    return tombstone


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


def _payload_problem(row: Any, erasures: dict[int, set[int]]) -> str | None:
    """Whether the entry's clinical part is the one its chain digest was made of, or erased by a tombstone."""
    if row.erased_by is None:
        if row.payload_salt is None:
            return "its content was removed without a tombstone (erased)"
        if (
            payload_digest(row.payload_salt, row.patient_label, row.ruleset, row.request, row.response)
            != row.payload_hash
        ):
            return "its content does not match its hash (edited)"
        return None
    kept = (row.patient_label, row.ruleset, row.request, row.response)
    if row.erased_by <= row.seq or any(value is not None for value in kept):
        return "its content was erased in a way no tombstone records (erased)"
    erasures.setdefault(row.erased_by, set()).add(row.seq)
    return None


def _tombstone_problem(row: Any, erasures: dict[int, set[int]]) -> str | None:
    """A tombstone must list every entry that names it as their eraser."""
    named = erasures.pop(row.seq, set())
    if not named:
        return None
    listed = row.request.get("erased", []) if row.kind == Kind.TOMBSTONE and isinstance(row.request, dict) else []
    missing = sorted(named - set(listed))
    if missing:
        return f"entries #{', #'.join(map(str, missing))} name it as their tombstone but it does not list them (erased)"
    return None


async def verify(session: DbSession) -> Verdict:
    """Walk the chain in stored order; the first entry that is not what the chain says, named."""
    expected, previous, previous_id, count = 1, GENESIS, None, 0
    erasures: dict[int, set[int]] = {}  # tombstone seq -> entries erased naming it (checked when it is reached)
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
        digest = entry_hash(row.prev_hash, row.seq, row.user_id, row.kind, row.at, row.refers_to, row.payload_hash)
        wrong = "its content does not match its hash (edited)" if digest != row.hash else None
        wrong = wrong or _payload_problem(row, erasures) or _tombstone_problem(row, erasures)
        if wrong is not None:
            return Verdict(count - 1, previous, f"{where}: {wrong}", row.id)
        if row.prev_hash != previous:
            before = f"id {previous_id} (#{expected - 1})" if previous_id is not None else "the start"
            problem = f"{where}: does not follow the entry before it, {before} (that entry was changed or replaced)"
            return Verdict(count - 1, previous, problem, row.id)
        expected, previous, previous_id = expected + 1, row.hash, row.id
    if erasures:
        first = min(seq for named in erasures.values() for seq in named)
        return Verdict(count, previous, f"audit entry #{first}: erased by a tombstone that is not in the chain")
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
    """One entry as a JSON line: every field the hashes cover, and the hashes (an erased entry: its digest only)."""
    entry = {
        "id": row.id,
        "seq": row.seq,
        "kind": row.kind,
        "at": row.at.isoformat(timespec="microseconds"),
        "user_id": row.user_id,
        "ruleset": row.ruleset,
        "refers_to": row.refers_to,
        "patient_label": row.patient_label,
        "request": row.request,
        "response": row.response,
        "payload_salt": row.payload_salt,
        "payload_hash": row.payload_hash,
        "erased_by": row.erased_by,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }
    return json.dumps(entry, ensure_ascii=False)
