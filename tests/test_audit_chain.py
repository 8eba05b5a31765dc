"""The audit's hash chain: a clean chain verifies; an edited, deleted, moved or cut-off entry is named;
entries from before the chain are chained by migration 0003; concurrent writers keep one chain."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from bot.storage import open_storage
from bot.storage.audit_chain import GENESIS, Verdict, entry_hash, payload_digest, verify
from bot.storage.repository import MIGRATIONS
from flows.replies import AuditRecommendation
from tests.databases import ENV, ON_POSTGRES
from tests.helpers import romiplostim
from tests.test_storage import consultation

HEMADOSE = Path(sys.executable).parent / "hemadose"
ROOT = Path(__file__).parent.parent


async def audited(path: Path, count: int) -> None:
    """A database with `count` audit entries for one patient."""
    storage = await open_storage(f"sqlite:///{path}")
    effect = consultation("RX-12", romiplostim())
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        await storage.save_consultation(session, user, effect)
        for _ in range(count):
            await storage.audit(session, user, AuditRecommendation("RX-12", effect.request, effect.response))
    await storage.close()


async def verdict(path: Path) -> Verdict:
    storage = await open_storage(f"sqlite:///{path}")
    async with storage.session() as session:
        found = await verify(session)
    await storage.close()
    return found


def tamper(path: Path, *statements: str) -> None:
    connection = sqlite3.connect(path)
    try:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


def hashes(path: Path) -> list[tuple[int, int, str, str]]:
    connection = sqlite3.connect(path)
    rows = connection.execute("select id, seq, prev_hash, hash from audit order by id").fetchall()
    connection.close()
    return rows


@pytest.fixture
async def chain(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    await audited(path, 4)
    return path


async def test_a_clean_chain_verifies_and_links_each_entry_to_the_one_before(chain: Path):
    rows = hashes(chain)
    assert [row[:2] for row in rows] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert rows[0][2] == GENESIS
    assert all(rows[i][2] == rows[i - 1][3] for i in range(1, 4))
    assert await verdict(chain) == Verdict(4, rows[-1][3])


async def test_an_edited_entry_is_named(chain: Path):
    tamper(chain, "update audit set response = json_set(response, '$.action', 'decrease') where id = 3")
    found = await verdict(chain)
    assert (found.problem, found.entry_id, found.entries) == (
        "audit entry id 3 (#3): its content does not match its hash (edited)",
        3,
        2,
    )


async def test_an_edited_entry_given_a_fresh_hash_is_found_at_the_next_one(chain: Path):
    """Whoever rewrites an entry's hash breaks the link of the entry after it."""
    connection = sqlite3.connect(chain)
    row = connection.execute("select prev_hash, user_id, at, ruleset, request, response, payload_salt from audit")
    prev, user, at, ruleset, request, response, salt = row.fetchone()
    payload = payload_digest(salt, "RX-99", ruleset, *map(json.loads, (request, response)))
    forged = entry_hash(prev, 1, user, "recommendation", dt.datetime.fromisoformat(at), None, payload)
    connection.execute(
        "update audit set patient_label = 'RX-99', payload_hash = ?, hash = ? where id = 1", (payload, forged)
    )
    connection.commit()
    connection.close()
    found = await verdict(chain)
    assert found.problem == (
        "audit entry id 2 (#2): does not follow the entry before it, id 1 (#1) (that entry was changed or replaced)"
    )
    assert found.entry_id == 2


async def test_a_deleted_entry_is_named(chain: Path):
    tamper(chain, "delete from audit where id = 2")
    found = await verdict(chain)
    assert (found.problem, found.entry_id) == ("audit entry #2 missing (deleted): the next entry is id 3 (#3)", 3)


async def test_two_deleted_entries_are_named_as_a_range(chain: Path):
    tamper(chain, "delete from audit where id in (2, 3)")
    assert (await verdict(chain)).problem == "audit entry #2 to #3 missing (deleted): the next entry is id 4 (#4)"


async def test_a_deleted_last_entry_is_found_against_the_head(chain: Path):
    tamper(chain, "delete from audit where id = 4")
    found = await verdict(chain)
    assert (found.problem, found.entries) == ("audit entry #4 missing at the end (deleted): the head says 4", 3)


async def test_reordered_entries_are_named(chain: Path):
    """Entries 2 and 3 swapped in the table (their ids exchanged): the first out of place is named."""
    tamper(chain, "update audit set id = -2 where id = 2", "update audit set id = 2 where id = 3")
    tamper(chain, "update audit set id = 3 where id = -2")
    found = await verdict(chain)
    assert (found.problem, found.entry_id) == (
        "audit entry id 2 (#3): out of order, #2 (id 3) is stored after it (moved)",
        3,
    )


async def test_a_copied_entry_cannot_take_a_number_and_one_slipped_in_at_the_end_is_found(chain: Path):
    copy = (
        "insert into audit (id, user_id, patient_label, at, ruleset, request, response, seq, prev_hash, hash, "
        "kind, payload_salt, payload_hash) select {id}, user_id, patient_label, at, ruleset, request, response, "
        "{seq}, {prev}, hash, kind, payload_salt, payload_hash from audit where id = 4"
    )
    with pytest.raises(sqlite3.IntegrityError):  # the same number twice is refused outright (unique)
        tamper(chain, copy.format(id=9, seq=4, prev="prev_hash"))
    # Entry #5 forged, linked and hashed correctly, but written past the chain's head:
    connection = sqlite3.connect(chain)
    user, at, payload, last = connection.execute(
        "select user_id, at, payload_hash, hash from audit where id = 4"
    ).fetchone()
    connection.close()
    forged = entry_hash(last, 5, user, "recommendation", dt.datetime.fromisoformat(at), None, payload)
    tamper(chain, copy.format(id=9, seq=5, prev=f"'{last}'"), f"update audit set hash = '{forged}' where id = 9")
    found = await verdict(chain)
    assert (found.problem, found.entries) == ("the audit chain's head does not match its last entry (#5): changed", 5)


async def test_entries_written_before_the_chain_are_chained_by_the_migration(tmp_path: Path):
    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.execute(text("insert into users (id, external_id, created_at) values (1, 'tg:1', '2026-11-01')"))
        for day in (20, 21):
            connection.execute(
                text(
                    "insert into audit (user_id, patient_label, at, ruleset, request, response) "
                    "values (1, 'RX-1', :at, 'romiplostim/us', :request, :response)"
                ),
                {"at": f"2026-11-{day} 09:00:00.000000", "request": '{"as_of": "2026-11-20"}', "response": '{"a": 1}'},
            )
    engine.dispose()
    await audited(path, 1)  # opening migrates; one entry written after
    rows = hashes(path)
    assert [row[:2] for row in rows] == [(1, 1), (2, 2), (3, 3)]
    assert rows[0][2] == GENESIS
    assert (await verdict(path)).intact
    tamper(path, "update audit set at = '2026-11-19 09:00:00.000000' where id = 1")
    assert (await verdict(path)).problem == "audit entry id 1 (#1): its content does not match its hash (edited)"


WRITER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from bot.storage import open_storage
from flows.replies import AuditRecommendation
from tests.test_storage import consultation
from tests.helpers import romiplostim

async def main(who):
    effect = consultation("P" + who, romiplostim())
    storage = await open_storage({url!r})
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:" + who)
    for number in range(20):
        async with storage.session() as session, session.begin():
            entry = AuditRecommendation("P" + who, effect.request, effect.response)
            await storage.audit(session, user, entry)
    await storage.close()

asyncio.run(main(sys.argv[1]))
"""


async def chain_at(url: str) -> Verdict:
    storage = await open_storage(url)
    async with storage.session() as session:
        found = await verify(session)
    await storage.close()
    return found


def three_writers(url: str) -> tuple[Verdict, Verdict]:
    """The chain before, and after three processes appended 20 entries each at once."""
    before = asyncio.run(chain_at(url))  # opening migrates first (three processes migrating at once is not the point)
    writer = WRITER.format(root=str(ROOT), url=url)
    processes = [subprocess.Popen([sys.executable, "-c", writer, f"{os.getpid()}-{who}"]) for who in range(3)]
    assert [process.wait(timeout=120) for process in processes] == [0, 0, 0]
    return before, asyncio.run(chain_at(url))


def test_concurrent_writers_in_separate_processes_keep_one_chain(tmp_path: Path):
    """Three processes append at once to one file: 60 entries, numbered 1..60, one unbroken chain."""
    path = tmp_path / "busy.db"
    before, after = three_writers(f"sqlite:///{path}")
    assert [row[1] for row in hashes(path)] == list(range(1, 61))
    assert (before.entries, after.intact, after.entries) == (0, True, 60)


@pytest.mark.skipif(
    not ON_POSTGRES,
    reason=f"set {ENV} (a postgresql+asyncpg:// URL; .ci/postgres.sh starts a server) to run on PostgreSQL",
)
def test_concurrent_writers_keep_one_chain_on_postgresql(db_url: str):
    """The same on PostgreSQL, where the chain head's row lock serialises the writers."""
    before, after = three_writers(db_url)
    assert before.intact
    assert (after.intact, after.entries) == (True, before.entries + 60)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HEMADOSE), *args], capture_output=True, text=True, timeout=60, check=False)


def test_audit_verify_exits_0_when_intact_and_1_naming_the_broken_entry(chain: Path):
    head = hashes(chain)[-1][3]
    intact = run("audit", "verify", "--db", str(chain))
    assert (intact.returncode, intact.stdout) == (0, f"audit chain intact: 4 entries; head {head}\n")
    tamper(chain, "delete from audit where id = 3")
    broken = run("audit", "verify", "--db", str(chain))
    assert (broken.returncode, broken.stdout) == (
        1,
        "audit chain BROKEN: audit entry #3 missing (deleted): the next entry is id 4 (#4) "
        "(2 entries before it intact)\n",
    )


def test_audit_verify_of_a_missing_database_exits_2_and_creates_nothing(tmp_path: Path):
    done = run("audit", "verify", "--db", str(tmp_path / "none.db"))
    assert (done.returncode, done.stderr) == (2, f"hemadose audit verify: there is no database at {tmp_path}/none.db\n")
    assert not (tmp_path / "none.db").exists()


def test_audit_export_writes_json_lines_that_recompute_to_their_hashes(chain: Path, tmp_path: Path):
    out = tmp_path / "audit.jsonl"
    done = run("audit", "export", str(out), "--db", str(chain))
    assert (done.returncode, done.stderr) == (0, f"4 audit entries written to {out}\n")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4]
    previous = GENESIS
    for line in lines:  # anyone can check an export with the formula in the README
        assert line["prev_hash"] == previous
        at = dt.datetime.fromisoformat(line["at"])
        clinical = (line["patient_label"], line["ruleset"], line["request"], line["response"])
        payload = payload_digest(line["payload_salt"], *clinical)
        assert payload == line["payload_hash"]
        recomputed = entry_hash(previous, line["seq"], line["user_id"], line["kind"], at, line["refers_to"], payload)
        assert recomputed == line["hash"]
        previous = line["hash"]
    assert lines[0]["response"]["action"] == "increase"
    to_stdout = run("audit", "export", "--db", str(chain))
    assert to_stdout.stdout == out.read_text()
