"""`hemadose run`'s pre-flight: the database is connected to and brought to the schema's head before
the bot goes online; a missing driver or an unreachable server is one line and exit status 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from bot.storage.schema import HEAD_REVISION

ENV = {"TELEGRAM_BOT_TOKEN": "123456:SECRET-VALUE", "HEMADOSE_ALLOWED_USERS": "1"}


def run(env: dict[str, str], *, block: str = "") -> subprocess.CompletedProcess[str]:
    """`hemadose run` with only these settings; `block`: a module whose import fails (as if not installed).
    The Bot API points at a closed port, so a run that passed the pre-flight fails to reach Telegram."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "HEMADOSE_"))}
    clean["HEMADOSE_TELEGRAM_BASE_URL"] = f"http://127.0.0.1:{closed_port()}"
    blocked = f"sys.modules[{block!r}] = None; " if block else ""  # `import asyncpg` then fails
    code = f"import sys; {blocked}from bot.cli import main; sys.exit(main(['run']))"
    return subprocess.run(
        [sys.executable, "-c", code], env=clean | ENV | env, capture_output=True, text=True, timeout=90, check=False
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_missing_driver_stops_run_before_going_online_in_one_line():
    done = run({"HEMADOSE_DB_URL": "postgresql+asyncpg://hemadose:secret@127.0.0.1/hemadose"}, block="asyncpg")
    assert done.returncode == 2
    assert done.stderr == (
        "hemadose run: HEMADOSE_DB_URL: the database driver 'asyncpg' is not installed "
        "(pip install 'hemadose[postgres]')\n"
    )


def test_an_unreachable_database_server_stops_run_before_going_online_in_one_line():
    port = closed_port()
    done = run({"HEMADOSE_DB_URL": f"postgresql+asyncpg://hemadose:secret@127.0.0.1:{port}/hemadose"})
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"hemadose run: HEMADOSE_DB_URL: cannot open the database at "
        f"postgresql+asyncpg://hemadose:***@127.0.0.1:{port}/hemadose: "
    )
    assert done.stderr.count("\n") == 1
    assert "secret" not in done.stderr
    assert "Traceback" not in done.stderr


def test_the_preflight_migrates_a_new_database_before_going_online(tmp_path: Path):
    """Past the pre-flight the schema is at head; only then does run try Telegram (a closed port here)."""
    import sqlite3

    database = tmp_path / "bot.db"
    done = run({"HEMADOSE_DB_URL": f"sqlite:///{database}"})
    assert done.stderr.startswith("hemadose run: cannot reach Telegram: "), done.stderr
    assert done.stderr.count("\n") == 1
    with sqlite3.connect(database) as reader:
        assert reader.execute("select version_num from alembic_version").fetchall() == [(HEAD_REVISION,)]
