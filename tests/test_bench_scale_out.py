"""tests/benchmarks/bench_scale_out.py runs (`--quick`: tiny sizes, its figures meaningless) on the
PostgreSQL server of HEMADOSE_TEST_DB_URL (CI's PostgreSQL part); skipped without one (starting a
cluster of its own would cost the SQLite pass a minute).

No timed assertion: the figures are the benchmark's to print. What is asserted is that every part ran
and that no reminder was sent twice (a correctness fact, whatever the machine's speed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent / "benchmarks" / "bench_scale_out.py"
URL = os.environ.get("HEMADOSE_TEST_DB_URL", "")


@pytest.mark.skipif(not URL, reason="no PostgreSQL server: HEMADOSE_TEST_DB_URL is not set")
def test_the_scale_out_benchmark_runs_quick():
    command = [sys.executable, str(BENCH), "--quick", "--db-url", URL]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    parts = (
        "machine: nproc", "1. updates per second", "  floor (", "  one replica :", "  two replicas:", "  two / one:",
        "2. reminders sent per second", "  1 replica :", "  2 replicas:", "    one limit shared", "    a limit each",
        "3. finding the due batch", "machine after:",
    )  # fmt: skip
    for start in parts:
        assert any(line.startswith(start) for line in lines), (start, done.stdout)
    reminders = [line for line in lines if line.startswith(("  1 replica :", "  2 replicas:"))]
    assert all(line.endswith("6 accepted for 6 chats (0 twice)") for line in reminders), reminders
    assert "plan: an index scan of ix_occurrences_next_at, no scan of the table" in done.stdout
    timed = [line for line in lines if line.startswith(("  one replica :", "  two replicas:"))]
    assert [line.count(" 0 failed posts") for line in timed] == [1, 1], timed
