"""User messages to a recommendation card, counted in the replayed dialogue per drug (test_flows and a benchmark)."""

from __future__ import annotations

import re
from pathlib import Path

from bot.replay import load, replay

ROOT = Path(__file__).resolve().parents[1]
DIALOGUES = ROOT / "tests" / "dialogues"
# drug: (a new patient on treatment, a follow-up of a saved patient)
CASES = {
    "romiplostim": ("romiplostim_us_new_patient_increase.yaml", "followup_romiplostim_four_messages.yaml"),
    "hetrombopag": ("flow_hetrombopag_itp_increase.yaml", "followup_hetrombopag_four_messages.yaml"),
    "lusutrombopag": ("flow_lusutrombopag_us_start.yaml", "followup_lusutrombopag_four_messages.yaml"),
    "luspatercept": ("flow_luspatercept_mds_increase_split.yaml", "followup_luspatercept_nothing_new.yaml"),
}


def _is_card(line: str) -> bool:
    """A transcript line of a recommendation card: a Rule line and the Why? button (bot.replay.is_card)."""
    return "\n       Rule: " in line and "[Why?]" in line


_USER = re.compile(r"^\[\d+\] user \d+: ")


def _opens(line: str) -> bool:
    text = line.split(": ", 1)[1] if ": " in line else ""
    return text in ("/new", "[New consultation]") or (text.startswith("/patients ") and len(text.split()) > 1)


def counts(transcript: list[str]) -> list[int]:
    """For each recommendation card in a replay's transcript, the user messages that led to it."""
    found: list[int] = []
    sent: int | None = None
    for line in transcript:
        if _USER.match(line):
            sent = 1 if _opens(line) else (sent + 1 if sent is not None else None)
        elif line.startswith("  bot: ") and _is_card(line) and sent is not None:
            found.append(sent)
            sent = None
    return found


async def measure(name: str) -> list[int]:
    result = await replay(load(DIALOGUES / name))
    if not result.passed:
        raise SystemExit(f"{name} does not pass: {[m.report() for m in result.mismatches]}")
    return counts(result.transcript)


async def table() -> dict[str, tuple[int, int]]:
    """drug: (messages for a new patient, messages for a follow-up)."""
    rows = {}
    for drug, (new, follow_up) in CASES.items():
        rows[drug] = ((await measure(new))[0], (await measure(follow_up))[-1])
    return rows
