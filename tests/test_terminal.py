"""`hemadose chat` driven by piped input, as the README shows, and --record turning it into a dialogue."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from bot.replay import load, replay
from bot.service import ChatService
from bot.storage import open_storage
from bot.terminal import choice
from flows.replies import Reply

HEMADOSE = Path(sys.executable).parent / "hemadose"
# New consultation, Romiplostim, US label, RX-12, 72 kg, adult (typed: a digit here is an age),
# on treatment, 3 mcg/kg since 2026-11-01,
# last given 2026-11-15, platelets 32 yesterday, get the recommendation, save it.
SCRIPT = "/new\n1\n1\nRX-12\n72\nadult\n2\n3\n2026-11-01\n2026-11-15\n32\n2\n1\n1\n"


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
    assert result.steps == 15  # the opening /start and 14 typed lines


def test_reminders_set_in_the_terminal_come_before_the_next_prompt(tmp_path: Path):
    """Set up at noon for 09:00: today's injection is due at once; Taken by its number records it."""
    done = chat(tmp_path, SCRIPT + "1\n1\n2\n1\n/history RX-12\n")  # Set reminders, London, 09:00, Taken
    assert done.returncode == 0, done.stderr
    assert "Reminders set for RX-12 at 09:00 (Europe/London):\n• Sun 2026-11-22: dose\n" in done.stdout
    assert "⏰ Dose reminder · patient RX-12\nInject Romiplostim 288 mcg (4 mcg/kg) = 0.58 mL today" in done.stdout
    assert "[1] Taken  [2] Skip  [3] Snooze 1 h" in done.stdout
    assert "Recorded: RX-12 Romiplostim 288 mcg (4 mcg/kg) = 0.58 mL given on Sun 2026-11-22." in done.stdout


# --- every button by its label -----------------------------------------------------------------
# A scripted clinician per drug: what it types at each question (by the flow's step name); at any
# other question, or when a question comes again (Done after a transfusion), it presses a button
# (PREFER first, else the first that is not navigation). Each
# drug is run twice, new patient then follow-up, so the record's buttons ("Keep 72 kg, ...",
# "As saved: ...") are shown too.
TYPED: dict[str, dict[str, str]] = {
    "romiplostim": {
        "patient": "RX-R",
        "weight": "72",
        "dose_amount": "3",
        "dose_since": "2026-11-01",
        "last_given": "2026-11-15",
        "doses_at_level": "3",
        "lab_value": "32",
        "lab_date": "2026-11-21",
    },
    "hetrombopag": {
        "patient": "RX-H",
        "dose_amount": "5",
        "dose_since": "2026-11-01",
        "last_given": "2026-11-21",
        "lab_value": "32000",  # asks "32 ×10^9/L?": Yes, use it
        "lab_date": "2026-11-21",
    },
    "lusutrombopag": {"patient": "RX-L", "procedure_date": "2026-12-05", "lab_value": "40", "lab_date": "2026-11-21"},
    "luspatercept": {
        "patient": "RX-P",
        "weight": "72",
        "dose_amount": "1",
        "dose_since": "2026-06-01",
        "last_given": "2026-11-10",
        "doses_at_level": "8",
        "lab_value": "8.5",
        "lab_date": "2026-11-20",
        "transfusions": "2026-11-01 2",
        "baseline": "8",
    },
}
PREFER = ("Yes, use it", "As saved", "Keep", "Adult", "On treatment", "Not started", "Done", "✅ Get recommendation")
NAVIGATION = ("⬅ Back", "✖ Cancel", "? Help")
THE_END = "Reminders set for"


def _outcome(replies: list[Reply]) -> list[tuple[str, list[str]]]:
    return [(reply.text, reply.button_labels()) for reply in replies]


class Clinician:
    """Drives a ChatService through consultations, forking the chat's state to try every button."""

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.ref = "local:labels"
        self.labels_checked: set[str] = set()

    async def state(self) -> str | None:
        storage = self.service.storage
        async with storage.session() as session, session.begin():
            return (await storage.open_chat(session, self.ref, self.ref)).state

    async def restore(self, state: str) -> None:
        storage = self.service.storage
        async with storage.session() as session, session.begin():
            row = await storage.open_chat(session, self.ref, self.ref)
            await storage.save_chat(session, row, self.ref, state)

    async def send(self, text: str | None = None, button: str | None = None) -> list[Reply]:
        return await self.service.handle(self.ref, self.ref, text=text, button=button)

    async def every_label_as_pressing(self, replies: list[Reply]) -> None:
        """From the state now, typing each button's label does what pressing it does (and so does
        the label typed in lower case without its leading symbol, and #N in the terminal)."""
        saved = await self.state()
        assert saved is not None
        buttons = [button for reply in replies for row in reply.buttons for button in row]
        numeric = any(reply.numeric for reply in replies if reply.buttons)
        for number, button in enumerate(buttons, 1):
            assert choice(button.label, buttons, numeric) == button, button.label
            assert choice(f"#{number}", buttons, numeric) == button, number
            pressed = _outcome(await self.send(button=button.data))
            await self.restore(saved)
            for typed in (button.label, button.label.lstrip("⬅✖?✅ ").lower()):
                assert _outcome(await self.send(text=typed)) == pressed, f"typed {typed!r} at {replies[-1].text!r}"
                await self.restore(saved)
            self.labels_checked.add(button.label)

    async def consultation(self, drug: str) -> list[Reply]:
        replies = await self.send(text="/new")
        asked: list[str] = []
        while not any(reply.text.startswith(THE_END) for reply in replies):
            assert len(asked) < 40, asked
            await self.every_label_as_pressing(replies)
            saved = await self.state()
            step = str(json.loads(saved or "{}").get("state"))
            asked.append(step)
            assert asked.count(step) < 4, f"stuck at {step}: {replies[-1].text}"
            buttons = [b for reply in replies for row in reply.buttons for b in row]
            usable = [b for b in buttons if b.label not in NAVIGATION and not b.label.startswith(("Edit", "Why"))]
            if step == "drug":
                replies = await self.send(text=drug.capitalize())  # typed, as a clinician would
            elif step in TYPED[drug] and asked.count(step) == 1 and not any(b.label.startswith(PREFER[:3]) for b in usable):
                replies = await self.send(text=TYPED[drug][step])
            else:
                wanted = ("Save to patient", "Set reminders") if step == "result" else PREFER
                press = next((b for prefix in wanted for b in usable if b.label.startswith(prefix)), None)
                press = press or (usable[0] if usable else None)
                assert press is not None, f"no answer scripted for the question {step}: {replies[-1].text}"
                replies = await self.send(text=press.label)
        return replies


async def test_every_button_label_typed_does_what_pressing_does(tmp_path: Path):
    """The simulated clinician drives the chat by labels: every label shown in a full consultation of
    each drug (new patient and follow-up), typed, gives exactly the replies of pressing the button."""
    storage = await open_storage(f"sqlite:///{tmp_path}/labels.db")
    now = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
    clinician = Clinician(ChatService(storage, "UTC", lambda: now))
    try:
        for drug in TYPED:
            for _ in ("new patient", "follow-up"):
                await clinician.consultation(drug)
    finally:
        await storage.close()
    shown = clinician.labels_checked
    assert len(shown) > 90
    for label in ("Keep 72 kg, 2026-11-22", "✅ Get recommendation", "None / skip", "Save to patient", "⬅ Back"):
        assert label in shown, sorted(shown)
    for label in ("Yes, use it", "Grade 3+ hypersensitivity", "As saved: on 4 mcg/kg since 2026-11-22", "? Help"):
        assert label in shown, sorted(shown)
