"""Stateful fuzz of the chat service (issue 10): whatever users send, in any state, with restarts.

A hypothesis state machine drives `ChatService.handle` on a real SQLite file for three users,
each with their own patient-label prefix. It sends random text, commands, numbers, dates, unit
mix-ups, the labels and data of the buttons it was shown, forged and stale button data, other
users' labels, and it restarts (storage closed and reopened, a new service), moves the clock and
runs the reminder loop in between. After every step:

- no unhandled exception;
- every reply is at most 4,096 characters (Telegram's limit);
- every saved chat state validates as `flows.state.ChatState`;
- no reply (text, button labels, button data; reminders included) names a patient label that
  another user saved and that this user never typed.

`Harness` is shared with tests/benchmarks/fuzz_chat.py (the 100,000-message run).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
import shutil
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from bot.reminders import Reminders
from bot.service import ChatService
from bot.storage import Storage, open_storage
from flows.machine import MACHINE
from flows.replies import Reply
from flows.state import ChatState

TELEGRAM_LIMIT = 4096
START = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
# user_ref -> label prefix; no prefix is a substring of another's labels.
USERS = {"tg:101": "QA", "tg:202": "QB", "tg:303": "QC"}


def chat_key(user: str) -> str:
    """A private chat: the chat id is the user id (the Telegram adapter's 'tg:<chat>:<user>')."""
    number = user.split(":")[1]
    return f"tg:{number}:{number}"


def label(user: str, number: int) -> str:
    return f"{USERS[user]}-{number}"


COMMANDS = [
    "/new",
    "/patients",
    "/reminders",
    "/settings",
    "/settings Europe/Paris",
    "/settings Mars/Olympus",
    "/cancel",
    "/help",
    "/back",
    "/start",
    "/history",
    "/patients nobody",
    "/history nobody",
    "/unknown",
    "/new@hemadose_bot",
    "/ new",
    "/NEW",
    "/delete QA-1",
    "/" + "x" * 200,
]
NUMBERS = [
    "52000",
    "8.9 g/L",
    "150 lb",
    "72 kg",
    "7,2",
    "3,5",
    "1,000,000",
    "-5",
    "0",
    "-0",
    "0.0000001",
    "99999999999999999999999999",
    "1e308",
    "1e-308",
    "NaN",
    "inf",
    "-inf",
    "32000/µL",
    "32 G/L",
    "89 g/L",
    "8.9 g/dL",
    "2 units",
    "½",
    "٣٢",
    "3.",
    ".5",
    "1_000",
    "0x20",
]
DATES = [
    "2026-11-22",
    "2026-02-30",
    "2026-13-01",
    "0001-01-01",
    "9999-12-31",
    "1899-12-31",
    "2200-12-31",
    "31/12/2026",
    "12/31/2026",
    "01/02/2026",
    "22.11.2026",
    "2026-11-22T10:00:00",
    "Nov 22",
    "22 Nov 2026",
    "today",
    "Yesterday",
    "tomorrow",
    "3 days ago",
    "next week",
    "2026/11/22",
    "20261122",
    "2026-11-22 2026-11-15",
]
OTHER = [
    "09:00",
    "25:61",
    "9pm",
    "Europe/London",
    "UTC",
    "Mars/Olympus",
    "UTC+3",
    "yes",
    "no",
    "Romiplostim",
    "luspatercept",
    "US label",
    "Adult (18 or over)",
    "On treatment",
    "Get recommendation",
    "Save to patient",
    "Set reminders",
    "Same regimen, new result",
    "None, and no transfusion missing",
    "Taken",
    "Skip",
    "Snooze 1 h",
    "Why?",
    "New consultation",
    "⬅ Back",
    "✖ Cancel",
    "#1",
    "#999999999999999999999",
    "2 units on 2026-11-10, 1 unit on 2026-11-01",
    "Child-Pugh B",
    "\u0000",
    "\u202e",
    "🩸" * 10,
    "' OR 1=1 --",
    "<b>x</b>",
    "*bold* _it_ `code`",
]
FORGED = [
    "v:",
    "v:" + "9" * 30,
    "oc:t:999999999999999999999999",
    "oc:t:1",
    "oc:t:2",
    "oc:s:3",
    "oc:z:1",
    "oc:d:1:20261122",
    "oc:d:1:99999999",
    "oc:x",
    "oc:",
    "oc:t:-1",
    "oc:t:1.5",
    "rm:",
    "rm:p:1",
    "rm:s:1",
    "rm:r:1",
    "rm:x:999999999999999999999999",
    "fu:",
    "fc:",
    "hi:",
    "edit:",
    "edit:nosuch",
    "edit:lab_value",
    "confirm",
    "save",
    "remind",
    "why",
    "new",
    "back",
    "cancel",
    "help",
    "patients",
    "reminders",
    "",
    "x" * 64,
]


def texts(rng: random.Random, others: list[str]) -> str:
    """One random message (the benchmark's generator; the state machine uses the strategies below)."""
    kind = rng.random()
    if kind < 0.2:
        return rng.choice(COMMANDS)
    if kind < 0.4:
        return rng.choice(NUMBERS)
    if kind < 0.55:
        return rng.choice(DATES)
    if kind < 0.7:
        return rng.choice(OTHER)
    if kind < 0.8 and others:
        other = rng.choice(others)
        return rng.choice([f"/history {other}", f"/patients {other}", other])
    if kind < 0.9:
        return str(rng.randint(-(10**30), 10**30)) if rng.random() < 0.3 else f"{rng.uniform(-1e4, 1e6):.3f}"
    if kind < 0.995:
        return "".join(rng.choice("abc XYZ0123456789.,-/:é🩸\n") for _ in range(rng.randint(0, 40)))
    return rng.choice("7x ") * rng.randint(4000, 6000)


def forged(rng: random.Random, others: list[str]) -> str:
    if others and rng.random() < 0.4:
        prefix = rng.choice(["fu:", "fc:", "hi:", "v:"])
        return prefix + rng.choice(others)
    if rng.random() < 0.3:
        return f"{rng.choice(['oc:t', 'oc:s', 'oc:z', 'rm:p', 'rm:s', 'rm:r'])}:{rng.randint(0, 60)}"
    return rng.choice(FORGED)


_LABEL_LIKE = re.compile(r"[a-z]{2}-\d+")


class Harness:
    """The service over a SQLite file, the invariants checked after every update."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None, strict: bool = True) -> None:
        self.folder = folder
        self.path = folder / "fuzz.db"
        self.users = users or USERS
        self.strict = strict  # raise on a broken invariant (the test) or count it (the benchmark)
        self.now = START
        self.storage: Storage | None = None
        self.service: ChatService | None = None
        self.last: dict[str, list[Reply]] = {user: [] for user in self.users}
        self.typed: dict[str, set[str]] = {user: set() for user in self.users}  # label-like words each user sent
        self.seen_data: dict[str, None] = {}  # button data shown to anyone (ordered, bounded): stale presses
        self.sent: list[tuple[str, str]] = []  # reminder deliveries (chat key, text)
        self.counts: Counter[str] = Counter()
        self.violations: list[str] = []
        self.max_reply = 0

    def fail(self, problem: str) -> None:
        if self.strict:
            raise AssertionError(problem)
        self.counts["invariant broken"] += 1
        if len(self.violations) < 20:
            self.violations.append(problem)

    async def open(self) -> None:
        self.storage = await open_storage(f"sqlite:///{self.path}")
        self.service = ChatService(self.storage, "UTC", clock=lambda: self.now)

    async def close(self) -> None:
        if self.storage is not None:
            await self.storage.close()
        self.storage = self.service = None

    async def restart(self) -> None:
        await self.close()
        await self.open()
        self.counts["restarts"] += 1

    async def send(self, user: str, text: str | None = None, button: str | None = None) -> list[Reply]:
        assert self.service is not None
        typed = text if text is not None else button or ""
        self.typed[user].update(_LABEL_LIKE.findall(typed.lower()))
        replies = await self.service.handle(user, chat_key(user), text=text, button=button)
        self.counts["messages"] += 1
        self.last[user] = replies
        for reply in replies:
            for row in reply.buttons:
                for b in row:
                    if len(self.seen_data) < 2000:
                        self.seen_data[b.data] = None
        self.check(user, replies)
        return replies

    def buttons(self, user: str) -> list[tuple[str, str]]:
        return [(b.label, b.data) for reply in self.last[user] for row in reply.buttons for b in row]

    async def consult(self, user: str, number: int, save: bool = True, remind: bool = False, drug: str = "") -> None:
        """A whole consultation (romiplostim, or luspatercept with its transfusions) for one of the user's
        patients, saved (and reminders set)."""
        patient = f"{self.users[user]}-{number}"
        if drug == "luspatercept":
            steps = ["/new", "Luspatercept", "MDS", patient, "70", "Today", "On treatment", "1 mg/kg", "2026-10-11"]
            steps += ["2026-11-01", "2", "None", "8.9", "Yesterday", "None / skip", "2026-11-08 1", "Done"]
        else:
            steps = ["/new", "Romiplostim", "US label", patient, "72", "Adult (18 or over)", "Today"]
            steps += ["On treatment", "3", "2026-11-01", "2026-11-15", "32", "Yesterday"]
        steps += ["Get recommendation"]
        steps += ["Save to patient"] if save else []
        steps += ["Set reminders", "UTC", "09:00"] if save and remind else []
        for step in steps:
            await self.typed_or_pressed(user, step)

    async def typed_or_pressed(self, user: str, step: str) -> None:
        """The button whose label ends with `step` if the last reply has one, else `step` typed."""
        pressed = next((d for lab, d in self.buttons(user) if lab.casefold().endswith(step.casefold())), None)
        await self.send(user, None if pressed else step, pressed)

    async def follow_up(self, user: str, number: int) -> None:
        """The patient's record, then its follow-up (the walk goes on from the new result's question)."""
        await self.send(user, f"/patients {self.users[user]}-{number}")
        await self.typed_or_pressed(user, "Same regimen, new result")

    def saved_labels(self) -> dict[str, set[str]]:
        with sqlite3.connect(self.path) as db:
            rows = db.execute("SELECT u.external_id, p.label FROM patients p JOIN users u ON u.id = p.user_id")
            labels: dict[str, set[str]] = {user: set() for user in self.users}
            for owner, saved in rows:
                labels.setdefault(owner, set()).add(saved)
            return labels

    def foreign(self, user: str) -> list[str]:
        """Labels other users saved under their own prefix that this user never typed: they must never
        reach this user. (The walk also saves labels such as '89 g/L', typed at the patient question:
        words any reply may hold, so they are not checked.)"""
        return [
            saved
            for owner, labels in self.saved_labels().items()
            if owner != user and owner in self.users
            for saved in labels
            if re.fullmatch(rf"{self.users[owner]}-\d+", saved, re.IGNORECASE) and saved.lower() not in self.typed[user]
        ]

    def check(self, user: str, replies: list[Reply]) -> None:
        for reply in replies:
            size = len(reply.text)
            self.max_reply = max(self.max_reply, size)
            if size > TELEGRAM_LIMIT:  # Telegram refuses it: the user would see only the generic fault
                self.counts["replies over 4096"] += 1
                self.fail(f"a reply of {size} characters: {reply.text[:300]!r}")
        shown = "\n".join(
            [r.text for r in replies] + [f"{b.label}\n{b.data}" for r in replies for row in r.buttons for b in row]
        )
        self.no_leak(user, shown)
        self.states_valid()

    def no_leak(self, user: str, shown: str) -> None:
        for saved in self.foreign(user):
            pattern = rf"(?<![\w-]){re.escape(saved)}(?![\w-])"
            if re.search(pattern, shown, re.IGNORECASE):
                self.fail(f"{user} was shown {saved!r}: {shown[:500]!r}")

    def states_valid(self) -> None:
        with sqlite3.connect(self.path) as db:
            for key, state in db.execute("SELECT chat_key, state FROM conversations"):
                try:
                    parsed = ChatState.model_validate_json(state)
                except ValueError as error:
                    self.fail(f"the state of {key} does not validate: {error}")
                    continue
                if parsed.state not in MACHINE.states:  # ChatState.state is a plain str
                    self.fail(f"the state of {key} does not validate: no step {parsed.state!r}")
                if key not in {chat_key(user) for user in self.users}:
                    self.fail(f"a state saved under {key}")

    def state_of(self, user: str) -> str:
        with sqlite3.connect(self.path) as db:
            row = db.execute("SELECT state FROM conversations WHERE chat_key = ?", (chat_key(user),)).fetchone()
        return ChatState.model_validate_json(row[0]).state if row and row[0] else "idle"

    async def run_reminders(self) -> None:
        """The delivery loop once, at the current time: each message goes only to its own user's chat."""
        assert self.storage is not None
        sent: list[tuple[str, str]] = []

        async def sender(chat: str, text: str, rows: Any, /) -> int:
            sent.append((chat, text + "\n" + "\n".join(str(row) for row in rows)))
            return len(sent)

        await Reminders(self.storage, lambda: self.now, "UTC", sender=sender).run_due()
        owners = {chat_key(user): user for user in self.users}
        for chat, text in sent:
            self.no_leak(owners[chat], text)
        self.sent += sent
        self.counts["reminders sent"] += len(sent)


user_refs = st.sampled_from(sorted(USERS))
numbers = st.sampled_from([1, 2, 3])
plain_texts = st.one_of(
    st.sampled_from(NUMBERS),
    st.sampled_from(DATES),
    st.sampled_from(OTHER),
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(lambda d: str(d).replace(".", ",")),
    st.dates().map(lambda d: d.strftime("%d/%m/%Y")),
    st.dates().map(dt.date.isoformat),
)


class ChatMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.folder = Path(tempfile.mkdtemp(prefix="fuzz-chat-"))
        self.harness = Harness(self.folder)
        self.runner.run(self.harness.open())

    def teardown(self) -> None:
        try:
            self.runner.run(self.harness.close())
        finally:
            self.runner.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def others(self, user: str) -> list[str]:
        return [label(other, n) for other in USERS if other != user for n in (1, 2, 3)]

    @rule(user=user_refs, text=plain_texts)
    def send_text(self, user: str, text: str) -> None:
        self.runner.run(self.harness.send(user, text))

    @rule(user=user_refs, command=st.sampled_from(COMMANDS))
    def send_command(self, user: str, command: str) -> None:
        self.runner.run(self.harness.send(user, command))

    @rule(user=user_refs, number=numbers, command=st.sampled_from(["/history", "/patients", "/history  ", "/PATIENTS"]))
    def own_record(self, user: str, number: int, command: str) -> None:
        self.runner.run(self.harness.send(user, f"{command} {label(user, number)}"))

    @rule(user=user_refs, pick=st.integers(min_value=0, max_value=20), typed=st.booleans())
    def press(self, user: str, pick: int, typed: bool) -> None:
        """A button of the last reply, pressed (its data) or typed (its label)."""
        shown = self.harness.buttons(user)
        if not shown:
            self.runner.run(self.harness.send(user, "/new"))
            return
        name, data = shown[pick % len(shown)]
        self.runner.run(self.harness.send(user, name if typed else None, None if typed else data))

    @rule(user=user_refs, data=st.sampled_from(FORGED) | st.text(max_size=30).map(lambda t: "v:" + t))
    def forged_button(self, user: str, data: str) -> None:
        self.runner.run(self.harness.send(user, None, data))

    @rule(user=user_refs, pick=st.integers(min_value=0, max_value=10_000))
    def stale_button(self, user: str, pick: int) -> None:
        """Button data once shown to anyone (this user earlier, or another user), pressed now."""
        seen = list(self.harness.seen_data)
        if seen:
            self.runner.run(self.harness.send(user, None, seen[pick % len(seen)]))

    @rule(
        user=user_refs,
        pick=st.integers(min_value=0, max_value=10_000),
        how=st.sampled_from(["text", "fu:", "fc:", "hi:", "v:", "/history ", "/patients "]),
    )
    def other_users_label(self, user: str, pick: int, how: str) -> None:
        """Another user's label typed, asked for, or forged into a button: nothing of theirs comes back."""
        other = self.others(user)[pick % 6]
        if how == "text":
            self.runner.run(self.harness.send(user, other))
        elif how.startswith("/"):
            self.runner.run(self.harness.send(user, how + other))
        else:
            self.runner.run(self.harness.send(user, None, how + other))

    @rule(
        user=user_refs,
        pick=st.integers(min_value=1, max_value=80),
        action=st.sampled_from(["oc:t", "oc:s", "oc:z", "rm:p", "rm:s", "rm:r", "oc:d"]),
    )
    def occurrence_ids(self, user: str, pick: int, action: str) -> None:
        """Reminder buttons with any id: other users' occurrences and reminders among them."""
        data = f"{action}:{pick}:20261122" if action == "oc:d" else f"{action}:{pick}"
        self.runner.run(self.harness.send(user, None, data))

    @rule(user=user_refs, number=numbers, remind=st.booleans(), drug=st.sampled_from(["romiplostim", "luspatercept"]))
    def consultation(self, user: str, number: int, remind: bool, drug: str) -> None:
        self.runner.run(self.harness.consult(user, number, remind=remind, drug=drug))

    @rule(user=user_refs, number=numbers)
    def follow_up(self, user: str, number: int) -> None:
        self.runner.run(self.harness.follow_up(user, number))

    @rule(user=user_refs, size=st.integers(min_value=4097, max_value=5000), char=st.sampled_from("7x 9,"))
    def long_text(self, user: str, size: int, char: str) -> None:
        self.runner.run(self.harness.send(user, char * size))

    @rule()
    def restart(self) -> None:
        self.runner.run(self.harness.restart())

    @rule(hours=st.integers(min_value=1, max_value=24 * 30))
    def time_passes(self, hours: int) -> None:
        self.harness.now += dt.timedelta(hours=hours)
        self.runner.run(self.harness.run_reminders())

    @invariant()
    def states_are_valid(self) -> None:
        self.harness.states_valid()


ChatMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same walk on every run: a CI failure reproduces locally
)
TestChatFuzz = ChatMachine.TestCase


async def test_the_invariants_can_fail(tmp_path: Path):
    """The checks the fuzz relies on do catch a leak, an overlong reply and a broken state."""
    harness = Harness(tmp_path)
    await harness.open()
    try:
        await harness.consult("tg:101", 1)
        assert harness.saved_labels()["tg:101"] == {"QA-1"}
        harness.no_leak("tg:202", "Your patients: QA-10, QA-1x")  # another label, not QA-1
        with pytest.raises(AssertionError, match="tg:202 was shown 'QA-1'"):
            harness.no_leak("tg:202", "Your patients:\n• QA-1 (Romiplostim)")
        await harness.send("tg:202", "/history QA-1")  # typed by this user: its echo is no leak
        harness.no_leak("tg:202", "You have no patient labelled 'QA-1'.")
        with pytest.raises(AssertionError, match="a reply of 4097 characters"):
            harness.check("tg:303", [Reply("x" * 4097)])
        with sqlite3.connect(harness.path) as db:
            db.execute('UPDATE conversations SET state = \'{"state": "nowhere"}\'')
        with pytest.raises(AssertionError, match="does not validate"):
            harness.states_valid()
    finally:
        await harness.close()
