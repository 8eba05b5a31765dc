"""Start-up imports: Alembic only when the schema is behind, and `hemadose recommend` on the core alone.

The times themselves are printed by tests/benchmarks/bench_startup.py (no timed asserts here: the
machine's load would make them flaky); these tests pin what makes them short.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from bot.storage import open_storage
from bot.storage.schema import HEAD_REVISION, MIGRATIONS
from tests.helpers import romiplostim

HEMADOSE = shutil.which("hemadose", path=str(Path(sys.executable).parent)) or shutil.which("hemadose")
# What `hemadose recommend` must never load: the event loop, the database and the chat stacks.
NOT_FOR_RECOMMEND = {"asyncio", "sqlalchemy", "alembic", "telegram", "httpx", "transitions", "yaml", "flows"}
NOT_FOR_RECOMMEND |= {"matplotlib", "PIL", "numpy"}  # the trend chart's drawing (bot/charts.py)


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _imported(stderr: str) -> set[str]:
    """Every module `python -X importtime` reported loading."""
    return {m.group(1).strip() for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \| (.+)$", stderr, re.MULTILINE)}


def _revision(database: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]
    finally:
        engine.dispose()


def test_head_revision_constant_is_alembics_head() -> None:
    """A new migration must update HEAD_REVISION, or a database would never be upgraded to it."""
    assert ScriptDirectory.from_config(_config()).get_heads() == [HEAD_REVISION]


def test_a_database_behind_head_is_still_upgraded(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
    engine.dispose()
    assert _revision(database) == ["0002"]

    async def open_and_close() -> None:
        await (await open_storage(f"sqlite:///{database}")).close()

    asyncio.run(open_and_close())
    assert _revision(database) == [HEAD_REVISION]


def test_a_new_database_gets_the_whole_schema(tmp_path: Path) -> None:
    database = tmp_path / "new.db"

    async def open_and_close() -> None:
        await (await open_storage(f"sqlite:///{database}")).close()

    asyncio.run(open_and_close())
    assert _revision(database) == [HEAD_REVISION]


def test_chat_on_a_database_at_head_does_not_import_alembic(tmp_path: Path) -> None:
    assert HEMADOSE
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEMADOSE_")} | {"XDG_DATA_HOME": str(tmp_path)}
    database = tmp_path / "chat.db"
    runs = [
        subprocess.run(
            [sys.executable, "-X", "importtime", HEMADOSE, "chat", "--db", str(database), "--today", "2026-11-22"],
            input="/quit\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        for _ in range(2)
    ]
    assert [run.returncode for run in runs] == [0, 0], runs[1].stderr[-2000:]
    first, second = (_imported(run.stderr) for run in runs)
    assert "alembic" in first  # the new database was migrated
    assert "sqlalchemy" in second  # (the parse of the import report works)
    assert not {m for m in second if m.split(".")[0] == "alembic"}
    assert _revision(database) == [HEAD_REVISION]


def test_recommend_process_loads_neither_asyncio_nor_the_database_nor_telegram(tmp_path: Path) -> None:
    """The real console script, as a user runs it: same answer, and none of the heavy stacks."""
    import json

    assert HEMADOSE
    request = tmp_path / "request.json"
    request.write_text(json.dumps(romiplostim()))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", HEMADOSE, "recommend", str(request)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["action"] == "increase"
    imported = _imported(done.stderr)
    assert "core.contract" in imported
    assert not sorted(m for m in imported if m.split(".")[0] in NOT_FOR_RECOMMEND)
