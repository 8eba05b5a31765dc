"""CI proves both databases: the suites that take their database from tests/conftest.py (`db_url`,
`new_db_url`, `fresh_url`) are exactly those .ci/run runs again on PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_suite_that_can_run_on_postgresql_is_run_on_it_in_ci():
    run = (ROOT / ".ci" / "run").read_text()
    start = run.index(".ci/postgres.sh start")
    part = run[start : run.index(".ci/postgres.sh stop", start)]
    listed = set(re.findall(r"tests/(test_\w+\.py)", part))
    uses = re.compile(r"\b(db_url|new_db_url|fresh_url)\b")
    portable = {path.name for path in (ROOT / "tests").glob("test_*.py") if uses.search(path.read_text())}
    assert portable - {Path(__file__).name} <= listed
    assert all((ROOT / "tests" / name).exists() for name in listed)
    assert "trap '.ci/postgres.sh stop \"$PG_DIR\"' EXIT" in run
