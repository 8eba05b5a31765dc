"""`hemadose chat` driven by piped input, as the README shows, and --record turning it into a dialogue."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.replay import load, replay

HEMADOSE = Path(sys.executable).parent / "hemadose"
# New consultation, Romiplostim, US label, RX-12, 72 kg, adult (typed: a digit here is an age), weighed today,
# on treatment, 3 mcg/kg since 2026-11-01,
# last given 2026-11-15, platelets 32 yesterday, get the recommendation, save it.
SCRIPT = "/new\n1\n1\nRX-12\n72\nadult\n1\n2\n3\n2026-11-01\n2026-11-15\n32\n2\n1\n1\n"


def chat(tmp_path: Path, script: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [str(HEMADOSE), "chat", "--db", f"sqlite+aiosqlite:///{tmp_path}/chat.db", "--today", "2026-11-22"]
    return subprocess.run([*command, *extra], input=script, capture_output=True, text=True, timeout=60, check=False)


def test_piped_romiplostim_consultation_end_to_end(tmp_path: Path):
    done = chat(tmp_path, SCRIPT)
    assert done.returncode == 0, done.stderr
    assert "• Age: adult" in done.stdout
    assert "INCREASE: 4 mcg/kg (was 3)" in done.stdout
    assert "In children the weight is reassessed" not in done.stdout
    assert "Dose: 288 mcg (4 mcg/kg × 72 kg) · inject 0.58 mL" in done.stdout
    assert "Saved to RX-12: dose, result and recommendation." in done.stdout
    again = chat(tmp_path, "/patients\n")
    assert "• RX-12 (Romiplostim)" in again.stdout  # the same storage, across processes


def test_db_takes_a_plain_file_path_and_a_bad_url_gets_a_clear_error(tmp_path: Path):
    command = [str(HEMADOSE), "chat", "--today", "2026-11-22", "--db"]
    done = subprocess.run([*command, str(tmp_path / "plain.db")], input="/start\n", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Welcome to HemaDose" in done.stdout
    assert (tmp_path / "plain.db").exists()
    bad = subprocess.run([*command, "nosuch://db"], input="/start\n", capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.startswith("hemadose chat: cannot open the database: NoSuchModuleError")
    assert "Traceback" not in bad.stderr


def test_a_typed_number_is_an_answer_not_a_button(tmp_path: Path):
    done = chat(tmp_path, "/new\n1\n1\nRX-12\n3\n")  # 3 at the weight question: 3 kg, not the third button
    assert "A weight of 3 kg is unusual. Is that right?" not in done.stdout  # 3 kg is not unusual (< 3 is)
    assert "Age in years?" in done.stdout


async def test_a_recorded_session_replays(tmp_path: Path):
    recorded = tmp_path / "recorded.yaml"
    done = chat(tmp_path, SCRIPT, "--record", str(recorded))
    assert f"Dialogue written to {recorded}" in done.stdout
    result = await replay(load(recorded))
    assert result.passed, [m.report() for m in result.mismatches]
    assert result.steps == 16  # the opening /start and 15 typed lines


def test_reminders_set_in_the_terminal_come_before_the_next_prompt(tmp_path: Path):
    """Set up at noon for 09:00: today's injection is due at once; Taken by its number records it."""
    done = chat(tmp_path, SCRIPT + "1\n1\n2\n1\n/history RX-12\n")  # Set reminders, London, 09:00, Taken
    assert done.returncode == 0, done.stderr
    assert "Reminders set for RX-12 at 09:00 (Europe/London):\n• Sun 2026-11-22: dose\n" in done.stdout
    assert "⏰ Dose reminder · patient RX-12\nInject Romiplostim 288 mcg (4 mcg/kg) = 0.58 mL today" in done.stdout
    assert "[1] Taken  [2] Skip  [3] Snooze 1 h" in done.stdout
    assert "Recorded: RX-12 Romiplostim 288 mcg (4 mcg/kg) = 0.58 mL given on Sun 2026-11-22." in done.stdout
