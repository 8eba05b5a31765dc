"""`hemadose chat` driven by piped input, as the README shows, and --record turning it into a dialogue."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from bot.replay import load, replay
from bot.service import ChatService
from bot.storage import open_storage
from bot.terminal import choice
from flows.replies import Reply

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
    assert "Dose: 288 mcg (4 mcg/kg × 72 kg) = 0.58 mL of the 500 mcg/mL solution" in done.stdout
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
    assert (
        "⏰ Dose reminder · patient RX-12\nInject Romiplostim today, Sun 2026-11-22: 288 mcg (4 mcg/kg) = 0.58 mL "
        "of the 500 mcg/mL solution.\n"
    ) in done.stdout
    assert "[#1] Taken  [#2] Skip  [#3] Snooze 1 h" in done.stdout
    assert "Recorded: RX-12 Romiplostim 4 mcg/kg given on Sun 2026-11-22." in done.stdout


# --- every button by its label -----------------------------------------------------------------
# A scripted clinician per drug: what it types at each question (by the flow's step name); at any
# other question, or when a question comes again (Done after a transfusion), it presses a button
# (PREFER first, else the first that is not navigation). Each
# drug is run twice, new patient then follow-up, so the record's buttons ("Keep 72 kg, ...",
# "As saved: ...") are shown too.
TYPED: dict[str, dict[str, str]] = {
    "romiplostim": {
        "patient": "RX-R1",
        "weight": "72",
        "dose_amount": "3",
        "dose_since": "2026-11-01",
        "last_given": "2026-11-15",
        "doses_at_level": "3",
        "lab_value": "32",
        "lab_date": "2026-11-21",
    },
    "hetrombopag": {
        "patient": "RX-H1",
        "dose_amount": "5",
        "dose_since": "2026-11-01",
        "last_given": "2026-11-21",
        "lab_value": "32000",  # asks "32 ×10^9/L?": Yes, use it
        "lab_date": "2026-11-21",
    },
    "lusutrombopag": {"patient": "RX-L1", "procedure_date": "2026-12-05", "lab_value": "40", "lab_date": "2026-11-21"},
    "luspatercept": {
        "patient": "RX-P1",
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
            elif (
                step in TYPED[drug]
                and asked.count(step) == 1
                and not any(b.label.startswith(PREFER[:3]) for b in usable)
            ):
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
    # Labels with punctuation among them (prefixes: the record's buttons may come to say more).
    for prefix in (
        "Keep 72 kg",  # "Keep 72 kg, 2026-11-22"
        "As saved: on 4 mcg/kg",
        "Yes, use it",
        "Grade 3+ hypersensitivity",
        "✅ Get recommendation",
        "Unknown / skip",
        "Same as start (",
        "⬅ Back",
        "? Help",
    ):
        assert any(label.startswith(prefix) for label in shown), (prefix, sorted(shown))


# --- ending the chat, and what a newcomer types ------------------------------------------------
BYE = "Bye — your consultation is saved; `hemadose chat` resumes it."


def test_ctrl_c_ends_the_chat_at_once_and_the_next_chat_resumes(tmp_path: Path):
    """SIGINT while the chat waits for input (stdin a pipe that stays open): it ends at once, no
    traceback, status 130; the next `hemadose chat` carries on at the same question."""
    command = [str(HEMADOSE), "chat", "--db", str(tmp_path / "chat.db"), "--today", "2026-11-22"]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write("/new\n1\n")
    process.stdin.flush()
    seen = ""
    while "Which label's rules?" not in seen:
        line = process.stdout.readline()
        assert line, seen
        seen += line
    while not seen.endswith("\n\n"):  # the whole question, then the chat waits for the next line
        seen += process.stdout.readline()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)  # stdin is still open: no Enter needed
    process.stdin.close()
    assert process.returncode == 130
    assert err == ""
    assert out.endswith(f"\n{BYE}\n")
    again = chat(tmp_path, "", "--db", str(tmp_path / "chat.db"))
    assert "You have a consultation under way; it continues here:\n\nWhich label's rules?" in again.stdout


def test_end_of_input_and_quit_say_goodbye(tmp_path: Path):
    done = chat(tmp_path, "/new\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f"Which drug?\n{done.stdout.split('Which drug?')[-1].split(chr(10))[1]}\n\n{BYE}\n")
    quit_ = chat(tmp_path, "/quit\n/new\n")
    assert quit_.returncode == 0
    assert quit_.stdout.endswith(f"> /quit\n{BYE}\n")


def test_db_in_a_missing_folder_is_refused_not_created(tmp_path: Path):
    missing = tmp_path / "no-such-folder"
    command = [str(HEMADOSE), "chat", "--today", "2026-11-22"]
    for extra, env in (
        (["--db", str(missing / "x.db")], {}),
        (["--db", f"sqlite+aiosqlite:///{missing}/x.db"], {}),
        ([], {"HEMADOSE_DB_URL": str(missing / "x.db")}),
    ):
        done = subprocess.run(
            [*command, *extra], input="/start\n", capture_output=True, text=True, env=os.environ | env, check=False
        )
        source = "--db" if extra else "HEMADOSE_DB_URL"
        assert done.stderr == (
            f"hemadose chat: {source}: {missing} does not exist; create the folder first or choose another path\n"
        )
        assert done.returncode == 1
        assert done.stdout == ""
        assert not missing.exists()


def test_the_default_data_directory_is_created_private(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEMADOSE_")} | {"XDG_DATA_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(HEMADOSE), "chat", "--today", "2026-11-22"], input="", capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    data = tmp_path / "hemadose"
    assert (data / "hemadose.db").is_file()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_hash_n_is_a_button_in_every_question(tmp_path: Path):
    """'#2' at a date question is the button Yesterday (it was read as a date: "I could not read '#2'")."""
    done = chat(tmp_path, "/new\n#1\n#1\nRX-12\n72\nadult\n#1\n#2\n3\n#2\n")
    assert "I could not read" not in done.stdout
    assert "> #2\nDate of the last dose given?\n" in done.stdout
    assert "[#1] Today  [#2] Yesterday  [#3] Same as start (2026-11-21)" in done.stdout
    # Where the question takes a number, a plain 3 is the answer (3 mcg/kg) and the hint says so.
    assert "Dose now, in mcg/kg?\n[#1] ⬅ Back  [#2] ✖ Cancel  [#3] ? Help\n(#N picks a button" in done.stdout


def test_a_consultation_typed_by_labels_gives_the_same_card_as_by_numbers(tmp_path: Path):
    by_labels = (
        "/new\nRomiplostim\nUS label\nRX-12\n72\nAdult (18 or over)\nToday\nOn treatment\n3\n2026-11-01\n"
        "2026-11-15\n32\nyesterday\n✅ Get recommendation\nSave to patient\n"
    )
    (tmp_path / "labels").mkdir()
    (tmp_path / "numbers").mkdir()
    labelled, numbered = chat(tmp_path / "labels", by_labels), chat(tmp_path / "numbers", SCRIPT)

    def card(out: str) -> str:
        return "Romiplostim · ITP" + out.split("Romiplostim · ITP", 1)[1].split("\n> ")[0]

    assert card(numbered.stdout).startswith("Romiplostim · ITP · US label · patient RX-12\n\nINCREASE: 4 mcg/kg")
    assert card(labelled.stdout) == card(numbered.stdout)
    assert "Saved to RX-12: dose, result and recommendation." in labelled.stdout


def test_a_reminder_is_answered_by_its_label(tmp_path: Path):
    done = chat(tmp_path, SCRIPT + "Set reminders\nEurope/London\n09:00\nTaken\n")
    assert "Recorded: RX-12 Romiplostim 4 mcg/kg given on Sun 2026-11-22." in done.stdout


def test_newcomer_mistakes_get_one_line_errors(tmp_path: Path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(HEMADOSE), *args], input="", capture_output=True, text=True, check=False)

    bad_date = run("chat", "--today", "notadate")
    assert bad_date.returncode == 2
    assert bad_date.stderr.splitlines()[-1] == (
        "hemadose chat: error: argument --today: 'notadate' is not a date; use YYYY-MM-DD, e.g. 2026-11-22"
    )
    record = run("chat", "--db", str(tmp_path / "x.db"), "--record", "/nonexistent/x.yaml")
    assert record.returncode == 2
    assert record.stderr == "hemadose chat: --record: the folder /nonexistent does not exist\n"
    unknown = run("nosuch")
    assert unknown.returncode == 2
    assert "invalid choice: 'nosuch'" in unknown.stderr
    empty = run("recommend")  # empty standard input: one error object, no traceback
    assert empty.returncode == 2
    assert json.loads(empty.stdout)["error"]["code"] == "invalid_request"
    for done in (bad_date, record, unknown, empty):
        assert "Traceback" not in done.stderr


def test_ctrl_c_while_an_answer_is_handled_ends_cleanly(tmp_path: Path):
    """asyncio cancels the chat at its next await: one goodbye, status 130, no traceback."""
    code = (
        "import asyncio, os, signal, sys, threading\n"
        "from bot import cli\n"
        "from bot.service import ChatService\n"
        "async def slow(self, *args, **kwargs):\n"
        "    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        "    await asyncio.sleep(30)\n"
        "ChatService.handle = slow\n"
        f"sys.exit(cli.main(['chat', '--db', {str(tmp_path / 'chat.db')!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input="", capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 130
    assert done.stderr == ""
    assert done.stdout.count(BYE) == 1
    assert done.stdout.endswith(f"\n{BYE}\n")


def test_an_unknown_default_time_zone_is_one_line_not_a_traceback(tmp_path: Path):
    done = subprocess.run(
        [str(HEMADOSE), "chat", "--db", str(tmp_path / "x.db")],
        input="/new\n1\n",
        capture_output=True,
        text=True,
        env=os.environ | {"HEMADOSE_TIMEZONE": "Bad/Zone"},
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "hemadose chat: HEMADOSE_TIMEZONE: 'Bad/Zone' is not a time zone I know; use an Area/City name, "
        "e.g. Europe/London\n"
    )


# --- bytes that are not text, and a disk that is full ------------------------------------------
UNREADABLE = "I could not read that line: it is not UTF-8 text. Nothing was taken from it; please type it again."


def chat_bytes(tmp_path: Path, script: bytes, errors: str = "strict") -> subprocess.CompletedProcess[bytes]:
    command = [str(HEMADOSE), "chat", "--db", str(tmp_path / "chat.db"), "--today", "2026-11-22"]
    env = os.environ | {"PYTHONIOENCODING": f"utf-8:{errors}"}
    return subprocess.run(command, input=script, capture_output=True, env=env, timeout=60, check=False)


def test_a_line_that_is_not_utf8_gets_one_line_and_the_chat_goes_on(tmp_path: Path):
    """Bytes \\xff on a strict stdin raised UnicodeDecodeError for the whole buffer (the lines around it
    lost too); now that line alone is refused and the next ones are answered. A lenient stdin
    (surrogateescape) is refused the same, rather than passing on characters nobody can store."""
    for errors in ("strict", "surrogateescape"):
        done = chat_bytes(tmp_path, b"/new\n\xff\xfe\n1\n1\nRX-\xff12\nRX-12\n", errors)
        out = done.stdout.decode()
        assert done.returncode == 0, done.stderr
        assert done.stderr == b""
        assert "> /new\nWhich drug?\n" in out
        assert f"> (a line that is not text)\n{UNREADABLE}\n\n> 1\nWhich label's rules?\n" in out
        assert out.count(UNREADABLE) == 2  # "RX-\xff12" at the patient question too; the next line answers it
        assert f"> (a line that is not text)\n{UNREADABLE}\n\n> RX-12\nBody weight in kg?\n" in out
        (tmp_path / "chat.db").unlink()


# What a full disk looks like to the storage: SQLite's own error, raised at the DBAPI cursor for the
# statements FAIL_WRITES matches (SQLAlchemy wraps it as it wraps SQLITE_FULL).
DISK_FULL = """
import os, re, sqlite3, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

FULL = re.compile(os.environ["FAIL_WRITES"], re.IGNORECASE)

@event.listens_for(Engine, "before_cursor_execute")
def full(conn, cursor, statement, parameters, context, executemany):
    if FULL.search(statement):
        raise sqlite3.OperationalError("database or disk is full")

from bot.cli import main
sys.exit(main(sys.argv[1:]))
"""
NOT_SAVED = (
    "Not saved: the disk is full (database or disk is full). That answer was not stored; everything saved "
    "before it is kept. Free some space, then type it again, or /quit."
)


def chat_on_full_disk(tmp_path: Path, script: str, fail_writes: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "full.py").write_text(DISK_FULL)
    command = [sys.executable, str(tmp_path / "full.py"), "chat", "--db", str(tmp_path / "chat.db")]
    env = os.environ | {"FAIL_WRITES": fail_writes}
    return subprocess.run(
        [*command, "--today", "2026-11-22"], input=script, capture_output=True, text=True, env=env, timeout=60
    )


def stored(tmp_path: Path, query: str) -> list[tuple[object, ...]]:
    import sqlite3

    with sqlite3.connect(tmp_path / "chat.db") as db:
        return db.execute(query).fetchall()


def test_disk_full_when_saving_is_one_line_and_loses_nothing_committed(tmp_path: Path):
    """The card was given (and audited); Save to patient finds the disk full: one line, no traceback,
    status 1 at the end; the audit entry and the consultation are intact, and Save works once there is room."""
    done = chat_on_full_disk(tmp_path, SCRIPT, r"^INSERT INTO patients")
    assert done.returncode == 1
    assert done.stderr == ""
    assert "Dose: 288 mcg (4 mcg/kg × 72 kg) = 0.58 mL of the 500 mcg/mL solution" in done.stdout
    assert f"> 1\n{NOT_SAVED}\n\n" in done.stdout
    assert "Saved to RX-12" not in done.stdout
    assert stored(tmp_path, "PRAGMA integrity_check") == [("ok",)]
    assert stored(tmp_path, "SELECT count(*) FROM audit") == [(1,)]
    assert stored(tmp_path, "SELECT count(*) FROM patients") == [(0,)]
    again = chat(tmp_path, "1\n")  # room again: the consultation is still at its card; Save to patient
    assert again.returncode == 0, again.stderr
    assert "> 1\nSaved to RX-12: dose, result and recommendation." in again.stdout
    assert stored(tmp_path, "SELECT count(*) FROM audit") == [(1,)]


def test_disk_full_for_every_write_answers_each_line_and_keeps_the_consultation(tmp_path: Path):
    first = chat(tmp_path, "/new\n1\n")  # at "Which label's rules?"
    assert first.returncode == 0, first.stderr
    done = chat_on_full_disk(tmp_path, "1\nRX-12\n/cancel\n", r"^\s*(INSERT|UPDATE|DELETE)")
    assert done.returncode == 1
    assert done.stderr == ""
    assert done.stdout.count(NOT_SAVED) == 4  # the opening /start and the three lines
    assert "Traceback" not in done.stdout
    assert done.stdout.endswith(f"> /cancel\n{NOT_SAVED}\n\n{BYE}\n")
    assert stored(tmp_path, "PRAGMA integrity_check") == [("ok",)]
    again = chat(tmp_path, "")
    assert "You have a consultation under way; it continues here:\n\nWhich label's rules?" in again.stdout


def test_disk_full_while_reminders_are_due_keeps_them_for_later(tmp_path: Path):
    """Yesterday's injection reminder was shown and not answered; today every write fails: one line for the
    reminders each turn, none lost: with room again, the missed dose is answered by its rule."""
    first = chat(tmp_path, SCRIPT + "1\n1\n2\n")  # Save, Set reminders, London, 09:00: today's dose shown
    assert "⏰ Dose reminder · patient RX-12" in first.stdout
    next_day = ["--today", "2026-11-23"]
    (tmp_path / "full.py").write_text(DISK_FULL)
    command = [sys.executable, str(tmp_path / "full.py"), "chat", "--db", str(tmp_path / "chat.db"), *next_day]
    env = os.environ | {"FAIL_WRITES": r"^\s*(INSERT|UPDATE|DELETE)"}
    done = subprocess.run(command, input="/patients\n", capture_output=True, text=True, env=env, timeout=60)
    not_checked = (
        "Reminders could not be checked: the disk is full (database or disk is full). They are kept and checked "
        "again after your next answer."
    )
    assert done.returncode == 1
    assert done.stderr == ""
    assert done.stdout.count(not_checked) == 2  # before each prompt
    assert "⏰" not in done.stdout
    again = subprocess.run(
        [str(HEMADOSE), "chat", "--db", str(tmp_path / "chat.db"), *next_day], input="", capture_output=True, text=True
    )
    assert "⏰ Missed dose · patient RX-12 · Romiplostim · Sun 2026-11-22" in again.stdout
    assert stored(tmp_path, "PRAGMA integrity_check") == [("ok",)]
