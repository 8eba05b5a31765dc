"""`hemadose recommend` as a process: the contract's exit codes, streams, batch mode and determinism."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import platelets, romiplostim

HEMADOSE = shutil.which("hemadose", path=str(Path(sys.executable).parent)) or shutil.which("hemadose")


def hemadose(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    assert HEMADOSE, "the hemadose console script is not installed"
    return subprocess.run([HEMADOSE, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(romiplostim()))
    return path


def test_single_request_from_file(request_file: Path):
    done = hemadose("recommend", str(request_file))
    assert done.returncode == 0
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    response = json.loads(lines[0])
    assert response["action"] == "increase"
    assert response["total"] == {"amount": 288, "unit": "mcg"}


def test_single_request_from_stdin_gives_the_same_bytes(request_file: Path):
    from_file = hemadose("recommend", str(request_file))
    from_stdin = hemadose("recommend", stdin=request_file.read_text())
    again = hemadose("recommend", "-", stdin=request_file.read_text())
    assert from_stdin.returncode == 0
    assert from_file.stdout == from_stdin.stdout == again.stdout


def test_refer_is_a_response_with_exit_zero():
    done = hemadose("recommend", stdin=json.dumps(romiplostim(labs=[platelets(32, "2026-11-01")])))
    assert done.returncode == 0
    assert json.loads(done.stdout)["action"] == "refer"


def test_invalid_request_exits_2_with_one_error_object():
    done = hemadose("recommend", stdin=json.dumps(romiplostim(labs=[platelets(52000, "2026-11-21")])))
    assert done.returncode == 2
    assert done.stdout.count("\n") == 1
    error = json.loads(done.stdout)
    assert error["error"]["code"] == "implausible_value"
    assert error["error"]["field"] == "labs[0].value"


def test_missing_file_exits_1_with_nothing_on_stdout(tmp_path: Path):
    done = hemadose("recommend", str(tmp_path / "absent.json"))
    assert done.returncode == 1
    assert done.stdout == ""
    assert "cannot read" in done.stderr


def test_batch_keeps_order_skips_blank_lines_and_reports_errors_in_line(tmp_path: Path):
    good = json.dumps(romiplostim())
    hold = json.dumps(romiplostim(labs=[platelets(420, "2026-11-21")]))
    bad = json.dumps(romiplostim(drug="eltrombopag"))
    path = tmp_path / "batch.jsonl"
    path.write_text(f"{good}\n\n   \n{bad}\nnot json\n{hold}\n")
    done = hemadose("recommend", "--batch", str(path))
    assert done.returncode == 0
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 4
    assert lines[0]["action"] == "increase"
    assert lines[1]["error"]["field"] == "drug"
    assert lines[2]["error"] == {
        "code": "invalid_request",
        "message": lines[2]["error"]["message"],
        "field": None,
    }
    assert lines[3]["action"] == "hold"
    single = hemadose("recommend", stdin=good)
    assert done.stdout.splitlines()[0] == single.stdout.rstrip("\n")


def test_batch_from_stdin_and_missing_file():
    done = hemadose("recommend", "--batch", stdin=json.dumps(romiplostim()) + "\n")
    assert done.returncode == 0
    assert json.loads(done.stdout)["action"] == "increase"
    missing = hemadose("recommend", "--batch", "/nonexistent/batch.jsonl")
    assert missing.returncode == 1
    assert missing.stdout == ""


def test_output_is_byte_identical_across_runs(request_file: Path):
    runs = {hemadose("recommend", str(request_file)).stdout for _ in range(3)}
    assert len(runs) == 1


def test_recommend_does_not_import_the_telegram_stack(request_file: Path):
    code = (
        "import sys\n"
        "from bot.cli import main\n"
        f"assert main(['recommend', {str(request_file)!r}]) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'telegram', 'transitions', 'sqlalchemy', 'httpx', 'alembic'})\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_ctrl_c_while_recommend_waits_for_input_exits_130_without_a_traceback():
    import signal
    import time

    assert HEMADOSE
    process = subprocess.Popen(
        [HEMADOSE, "recommend"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # Wait until it blocks reading standard input (Linux shows the read on fd 0 in /proc).
    syscall = Path(f"/proc/{process.pid}/syscall")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not syscall.exists():
            time.sleep(2)
            break
        if syscall.read_text().startswith("0 0x0 "):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 130
    assert (out, err) == ("", "")


def test_a_reader_that_goes_away_ends_recommend_quietly(request_file: Path, tmp_path: Path):
    assert HEMADOSE
    batch = tmp_path / "many.jsonl"
    batch.write_text((request_file.read_text() + "\n") * 3000)  # more than a pipe holds
    done = subprocess.run(
        f"{HEMADOSE} recommend --batch {batch} | head -c 0",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stderr == ""
