"""The README's quick start stays true: two commands, and CI runs the second one verbatim."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)


def test_ci_runs_the_readme_test_command():
    test_command = quick_start_commands()[1]
    assert "pytest" in test_command
    assert f"{test_command} || exit 1" in (ROOT / ".ci" / "run").read_text().splitlines()


def test_quick_start_starts_the_terminal_chat():
    assert quick_start_commands()[0].endswith("hemadose chat")


def test_the_readme_printf_consultation_works(tmp_path: Path):
    """The scripted consultation the README shows, run as written (with this venv's hemadose)."""
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("printf "))
    env = {
        **os.environ,
        "HEMADOSE_DATA_DIR": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", "-c", command.replace(".venv/bin/hemadose", "hemadose")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "INCREASE: 4 mcg/kg (was 3)" in done.stdout
    assert "Dose: 288 mcg (4 mcg/kg × 72 kg) = 0.58 mL of the 500 mcg/mL solution" in done.stdout
    assert (tmp_path / "hemadose.db").is_file()
