"""Two replicas, one killed (issue 13, "what it must show"): the production topology of deploy/local.py
(PostgreSQL, two real `hemadose run --webhook` processes, the loopback Bot API standing in for
Telegram and the proxy), `kill -9` of one replica at seeded moments, restarted as systemd would.

Each run: 200 simulated users, each a thread, complete a romiplostim consultation to its card, "Save
to patient" and set reminders (19 updates each), posted to the replicas in turn and, as Telegram does,
posted again to the other replica when one does not answer 200; a few more users keep saying /start
all along (so there is always traffic to answer). The chat makes one dose reminder per user due at
once; the rest of 1,000 due reminders are written directly (blood-test occurrences, due now) once the
consultations are done, and the replicas deliver them. Meanwhile a replica is killed 10 times (the two
runs: 20 moments), the two in turn, restarted each time after a seeded pause; one always serves.

Then: every update answered exactly once (its whole expected reply; a second copy only with the
may-repeat note, and only across a kill), every due reminder delivered (sent once without the note; a
repeat only with it, once at most, across a kill),
0 lost consultations (every "Saved to ..." the user received is in the database with its regimen),
and the surviving replica answered during each death. The second run has 20% of the replicas' Bot
API calls failing (429 with retry_after, 502, time-outs: tests/loopback_bot_api.py's `chaos`).
Needs PostgreSQL (deploy/local.py starts it through .ci/postgres.sh); skipped when it cannot start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.offline import button_update, message_update
from bot.storage.updates import REPLY_LEASE
from bot.telegram_app import FAULT
from deploy.local import PostgresUnavailableError, Topology
from flows.reminders import MAY_REPEAT
from tests.loopback_bot_api import Call, LoopbackBotApi
from tests.test_loopback_e2e import WELCOME
from tests.test_replicas import rows
from tests.webhook_bot import romiplostim_increase_card

SEED = 20261202
USERS = 200
DUE = 1000
KILLS = 10  # per run; 20 moments over the two runs
KILLS_CHATTING = 6  # of them while the consultations go on; the rest while the due reminders are sent
PINGERS = 40  # users saying /start all along (each well under the flood gate's 20 updates in 10 s)
PINGING = 4  # threads posting their /start
FAULT_METHODS = frozenset({"sendMessage", "answerCallbackQuery", "editMessageText", "editMessageReplyMarkup"})
WAIT_DELIVERED = 150.0  # seconds: a killed replica's claims wait out their lease (30 s) and a tick (20 s)
# Seconds the simulated Telegram keeps posting an update not answered 200 (the real one keeps trying for
# hours). A replica still sending an update's replies keeps their lease (503 to Telegram meanwhile): the run
# keeps the bot at Telegram's 30 messages a second throughout, and with 20% of the calls failing (each 429
# pausing every send of the replica for a second, each retry waiting its turn at the pace again) the
# slowest replies took over 5 minutes.
PATIENCE = 600.0
WAIT_REPLIES = 90.0  # seconds: replies left unsent wait out their lease (10 s) and a sweep (every 20 s), maybe twice
FIRST_USER = 700_000
PING_USER = 900_000


def dialogue(label: str, today: dt.date) -> list[tuple[str | tuple[str], list[str]]]:
    """What the user does (text, or a button's label in a tuple) and the whole replies expected."""
    card = romiplostim_increase_card(label, today)
    since, last, result = (today - dt.timedelta(days=d) for d in (30, 7, 1))
    summary = (
        "Please check before I calculate:\n• Drug: Romiplostim\n• Label: US label\n"
        f"• Patient: {label} (new)\n• Weight: 72 kg (weighed {today})\n• Age: adult\n• Weighed on: {today}\n"
        f"• Treatment: on treatment\n• Dose: 3 mcg/kg\n• At this dose since: {since}\n• Last dose: {last}\n"
        f"• Latest result: 32 ×10^9/L on {result}"
    )
    reminders = (
        f"Reminders set for {label} at 09:00 (UTC):\n• {today:%a %Y-%m-%d}: dose\n"
        f"• {today + dt.timedelta(days=7):%a %Y-%m-%d}: platelet count\n"
        "Dose as decided: 288 mcg (4 mcg/kg) = 0.58 mL of the 500 mcg/mL solution.\n"
        "Each dose reminder has Taken / Skip / Snooze buttons; one not confirmed is sent again once. "
        "/reminders lists them (pause, change the time, stop)."
    )
    return [
        ("/start", [WELCOME]),
        ("/new", ["Which drug?"]),
        (("Romiplostim",), ["Which label's rules?"]),
        (("US label",), ["Type a label for the patient (a code with a digit, e.g. RX-12 or bed 4; no names)."]),
        (label, ["Body weight in kg?"]),
        ("72", ["Age in years? Children's weight is reassessed every 12 weeks."]),
        (("Adult (18 or over)",), ["When was that weight measured?"]),
        (("Today",), ["Treatment status?"]),
        (("On treatment",), ["Dose now, in mcg/kg?"]),
        ("3", ["Date of the first dose at this level?"]),
        (since.isoformat(), ["Date of the last dose given?"]),
        (last.isoformat(), ["Latest platelet count? In ×10^9/L, e.g. 32 (or 32000/µL, 32 G/L)."]),
        ("32", ["Date of that result?"]),
        (("Yesterday",), [summary]),
        (("✅ Get recommendation",), [card]),
        (("Save to patient",), [f"Saved to {label}: dose, result and recommendation."]),
        (
            ("Set reminders",),
            [
                "Reminders come at local times. Which time zone are you in? Pick one or type its Area/City name, "
                "e.g. Europe/Paris."
            ],
        ),
        (("UTC",), ["At what local time should I remind you of the injection day and the blood test? e.g. 08:00"]),
        ("09:00", [reminders]),
    ]


@dataclass
class Posted:
    """One update of a user, its expected replies and the time it was in the system."""

    chat: int
    update_id: int
    expected: list[str]
    started: float
    ended: float
    step: int


@dataclass
class Death:
    replica: int
    killed: float
    ready: float
    moment: str  # what the run had done when it was killed


@dataclass
class Run:
    """Everything one run records, for the checks and the figures."""

    topology: Topology
    today: dt.date
    posted: list[Posted] = field(default_factory=list)
    deaths: list[Death] = field(default_factory=list)
    fallbacks: int = 0  # button presses made on another user's copy of a message (theirs never arrived)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    seeded: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    @property
    def api(self) -> LoopbackBotApi:
        return self.topology.api


_ids = itertools.count(1)
_templates: dict[str, dict[str, Any]] = {}  # a button's label -> a message that carried it (any user's)


def _message_with(api: LoopbackBotApi, chat: int, label: str) -> tuple[dict[str, Any], bool]:
    """The latest message of this chat with a button `label` (False), else another chat's (True)."""
    for call in reversed(api.chat_calls(chat)):
        if call.method != "sendMessage" or not isinstance(call.result, dict):
            continue
        rows_ = call.result.get("reply_markup", {}).get("inline_keyboard", [])
        if any(button["text"] == label for row in rows_ for button in row):
            _templates.setdefault(label, call.result)
            return call.result, False
    deadline = time.monotonic() + 60
    while label not in _templates:  # no user has seen that message yet: wait for one who has
        assert time.monotonic() < deadline, f"no message with the button {label!r} reached any user"
        time.sleep(0.1)
    template = dict(_templates[label])
    template["chat"] = dict(template["chat"], id=chat)
    return template, True


def _post(run: Run, chat: int, update: dict[str, Any], expected: list[str], step: int) -> None:
    started = time.monotonic()
    run.api.post(update, patience=PATIENCE, timeout=30.0)
    with run.lock:
        run.posted.append(Posted(chat, int(update["update_id"]), expected, started, time.monotonic(), step))


def consult(run: Run, number: int) -> None:
    """One user's whole consultation, each update posted once its previous one was answered."""
    chat, label = FIRST_USER + number, f"LB-{number}"
    try:
        for step, (action, expected) in enumerate(dialogue(label, run.today)):
            if isinstance(action, tuple):
                message, borrowed = _message_with(run.api, chat, action[0])
                rows_ = message.get("reply_markup", {}).get("inline_keyboard", [])
                data = next(b["callback_data"] for row in rows_ for b in row if b["text"] == action[0])
                update = button_update(next(_ids), chat, message, data)
                with run.lock:
                    run.fallbacks += borrowed
            else:
                update = message_update(next(_ids), chat, chat, action)
            _post(run, chat, update, expected, step)
    except Exception as error:  # reported by the test, with the user
        run.errors.append(f"user {number}: {type(error).__name__}: {error}")


def ping(run: Run, first: int) -> None:
    """Users saying /start in turn until the run ends: traffic for the survivor to answer at any time
    (PINGING threads, each with its own users, so that one post held up by a fault holds up no other)."""
    for number in itertools.cycle(range(first, PINGERS, PINGING)):
        if run.stop.is_set():
            return
        chat = PING_USER + number
        _post(run, chat, message_update(next(_ids), chat, chat, "/start"), [WELCOME], -1)
        time.sleep(0.1)


def kill_and_restart(run: Run, rng: random.Random, first: int) -> None:
    """KILLS times: wait a seeded while, kill -9 a replica (the two in turn), restart it after a seeded
    pause (systemd's RestartSec), wait until it is ready again; then the next. The first KILLS_CHATTING
    while the consultations go on, the rest while the due reminders are sent, each once a seeded number
    of deliveries was confirmed."""
    try:
        # While the reminders are sent: after a seeded number of them was confirmed (mid-batch).
        # (early in the sending: what the killed replica held waits out its lease while the rest is sent)
        targets = sorted(rng.sample(range(DUE // 5 + 30, DUE // 2), KILLS - KILLS_CHATTING))
        for kill in range(KILLS):
            if kill < KILLS_CHATTING:
                time.sleep(rng.uniform(0.5, 3.0))
            else:
                run.seeded.wait(timeout=300)
                confirmed(run.topology.db_url, targets[kill - KILLS_CHATTING], timeout=30.0)
            index = (first + kill) % 2
            phase = "consultations" if kill < KILLS_CHATTING else "reminders"
            messages = len(run.api.accepted("sendMessage"))
            moment = f"{phase}: {len(run.posted)} updates, {messages} messages"
            killed = time.monotonic()
            run.topology.kill(index)
            time.sleep(rng.uniform(0.0, 0.5))
            run.topology.restart(index)
            run.deaths.append(Death(index, killed, time.monotonic(), moment))
    except Exception as error:
        run.errors.append(f"killer: {type(error).__name__}: {error}")


def confirmed(url: str, count: int, timeout: float) -> None:
    """Until `count` deliveries are confirmed sent (or `timeout` seconds passed)."""
    deadline = time.monotonic() + timeout
    while rows(url, "SELECT count(*) FROM deliveries WHERE state = 'sent'")[0][0] < count:
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)


def seed_due(url: str, count: int, now: dt.datetime) -> int:
    """Blood-test occurrences due `now` on the users' reminders, so that `count` are due in all; how many."""
    from sqlalchemy import func, insert, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from bot.storage.tables import Occurrence, Reminder

    async def write() -> int:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                reminders = [r for (r,) in await connection.execute(select(Reminder.id).order_by(Reminder.id))]
                due = await connection.scalar(
                    select(func.count()).select_from(Occurrence).where(Occurrence.due_at <= now)
                )
                missing = count - int(due or 0)
                values = [
                    {
                        "reminder_id": reminders[n % len(reminders)],
                        "kind": "lab",
                        "on_date": now.date() + dt.timedelta(days=20 + n // len(reminders)),
                        "due_at": now,
                        "state": "scheduled",
                        "sends": 0,
                        "next_at": now,
                    }
                    for n in range(missing)
                ]
                if values:
                    await connection.execute(insert(Occurrence), values)
                return missing
        finally:
            await engine.dispose()

    return asyncio.run(write())


def delivered(url: str, now: dt.datetime, timeout: float) -> tuple[int, float]:
    """Until every due occurrence moved on and every delivery is 'sent'; (deliveries, seconds waited)."""
    started = time.monotonic()
    stamp = now.isoformat(sep=" ")
    while True:
        [(pending, due, total)] = rows(
            url,
            "SELECT (SELECT count(*) FROM deliveries WHERE state <> 'sent'),"
            f" (SELECT count(*) FROM occurrences WHERE next_at <= '{stamp}'),"
            " (SELECT count(*) FROM deliveries)",
        )
        if pending == 0 and due == 0 and total >= DUE:
            return int(total), time.monotonic() - started
        assert time.monotonic() - started < timeout, f"{pending} deliveries not sent, {due} due, {total} in all"
        time.sleep(0.5)


def replies_left(url: str, timeout: float) -> int:
    """Until no update's replies wait to be sent (a send that failed every try is sent by a sweep once its
    lease expired, with the note: the run ends only after that); how many still wait after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        [(waiting,)] = rows(url, "SELECT count(*) FROM processed_updates WHERE replies IS NOT NULL")
        if waiting == 0 or time.monotonic() > deadline:
            return int(waiting)
        time.sleep(0.5)


# python-telegram-bot's own records with a traceback of a fault the run injects, logged and then raised to
# the caller, which handles it: a Bot API answer that is not JSON (a 502's HTML page, as a proxy in front
# of Telegram sends it: NetworkError), and a fourth 429 in a row for one send (RetryAfter: the reply is
# left to the sweep, the reminder retried).
INJECTED = ("Can not load invalid JSON data", "Rate limit hit after maximum of")


def tracebacks(log: str) -> list[str]:
    """The log records with a traceback, but python-telegram-bot's own of an injected fault (INJECTED)."""
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", log)
    return [r[:3000] for r in records if "Traceback" in r and not any(known in r for known in INJECTED)]


# A request the replica wrote just before its kill -9 still reaches the loopback Bot API, whose handler
# thread takes its time (the call's `time`) only when it is scheduled: under this test's load, after the
# moment the kill was taken. Seen once in 3 CI runs: a reminder sent plain, then noted, with no kill
# strictly between the two arrivals (the times were not printed then; `when` prints them now). A repeat
# needs its sender dead before marking it sent, so the first copy came from a replica about to die; a
# second is far more than that delay and far less than the leases after which a copy repeats. What it
# cannot tell apart: a survivor's plain copy within that second of a kill, then a noted one.
IN_FLIGHT_AT_KILL = 1.0  # seconds


def beyond_allowance(arrived: list[float], n: int, kills: list[float]) -> str:
    """Why copies of one message (their arrival times), due `n` times, are more than the issue allows: at
    most once more per time due, and a copy beyond `n` only across a kill: the first copy sent before a
    kill (arriving by IN_FLIGHT_AT_KILL after it), the last after it ("" when within it)."""
    copies = sorted(arrived)
    if len(copies) > 2 * n:
        return "more than once more"
    across = (copies[0] <= killed + IN_FLIGHT_AT_KILL and killed <= copies[-1] for killed in kills)
    if len(copies) > n and not any(across):
        return "repeated with no kill between the copies"
    return ""


def when(arrived: list[float], kills: list[float], started: float) -> str:
    """The copies' and the kills' times, seconds into the run: what a repeat beyond the allowance is
    judged on, for the one who reads the failure."""
    return (
        f"copies at {', '.join(f'{t - started:.2f}' for t in sorted(arrived))} s, "
        f"kills at {', '.join(f'{t - started:.2f}' for t in kills)} s"
    )


@pytest.mark.parametrize(
    ("arrived", "n", "kills", "why"),
    [
        ([5.0], 1, [], ""),  # once
        ([5.0, 9.0], 1, [7.0], ""),  # once more, a kill between
        ([5.0, 9.0, 12.0, 20.0], 2, [10.0], ""),  # due twice, each once more, a kill between
        ([5.0, 9.0], 1, [], "repeated with no kill between the copies"),
        ([5.0, 9.0], 1, [3.0, 11.0], "repeated with no kill between the copies"),  # kills before and after only
        ([7.3, 40.0], 1, [7.0], ""),  # the first copy written before the kill, arriving after it
        ([8.5, 40.0], 1, [7.0], "repeated with no kill between the copies"),  # sent after the kill
        ([5.0, 9.0, 12.0], 1, [7.0], "more than once more"),
    ],
)
def test_the_allowance_is_once_more_and_only_across_a_kill(
    arrived: list[float], n: int, kills: list[float], why: str
) -> None:
    """The kill test's bound on repeats, checked apart: it passing 10 kills in a row proves nothing if
    the bound cannot fail."""
    assert beyond_allowance(arrived, n, kills) == why


@pytest.fixture(params=["no faults", "20% of Bot API calls failing"], ids=["plain", "faults"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Run]:
    # Warnings and errors only: the INFO lines (each state change, each Bot API request) cost CPU the
    # two cores need for the updates.
    topology = Topology(tmp_path / "topology", HEMADOSE_LOG_LEVEL="WARNING")
    try:
        topology.start()
    except PostgresUnavailableError as error:
        pytest.skip(f"PostgreSQL cannot be installed or started here: {error}")
    try:
        yield Run(topology, dt.datetime.now(dt.UTC).date())
    finally:
        codes = topology.stop()
        assert set(codes.values()) == {0}, codes
        for replica in topology.replicas:
            crashes = tracebacks(replica.log())
            assert not crashes, crashes[:3]


def test_two_replicas_one_killed_20_times_nothing_lost_nothing_sent_twice(run: Run, request: pytest.FixtureRequest):
    variant = request.node.callspec.params["run"]
    faulty = variant != "no faults"
    rng = random.Random(SEED + faulty)
    started = time.monotonic()
    if faulty:
        run.api.chaos(0.2, FAULT_METHODS, seed=SEED, retry_after=1, seconds=6.0)
    users = [threading.Thread(target=consult, args=(run, n), daemon=True) for n in range(USERS)]
    pingers = [threading.Thread(target=ping, args=(run, n), daemon=True) for n in range(PINGING)]
    killer = threading.Thread(target=kill_and_restart, args=(run, rng, int(faulty)), daemon=True)
    killer.start()
    for pinger in pingers:
        pinger.start()
    for user in users:
        user.start()
    for user in users:
        user.join(timeout=300)
    consulted = time.monotonic() - started
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    seeded = seed_due(run.topology.db_url, DUE, now)
    run.seeded.set()
    killer.join(timeout=300)
    deliveries, waited = delivered(run.topology.db_url, now, WAIT_DELIVERED)
    run.stop.set()
    for pinger in pingers:
        pinger.join(timeout=60)
    unsent = replies_left(run.topology.db_url, WAIT_REPLIES)
    elapsed = time.monotonic() - started
    assert not run.errors, run.errors[:10]
    assert len(run.deaths) == KILLS
    api = run.api

    # -- the due reminders: each sent once without the note; a repeat only with it -------------------
    sent_rows = rows(run.topology.db_url, "SELECT chat_key, text FROM deliveries")
    expected = Counter((int(chat.split(":")[1]), text) for chat, text in sent_rows)
    reminder_texts = set(expected)
    plain: Counter[tuple[int, str]] = Counter()
    noted: Counter[tuple[int, str]] = Counter()
    reminder_times: dict[tuple[int, str], list[float]] = {}
    replies: dict[int, list[Call]] = {}
    for call in api.accepted("sendMessage"):
        chat, text = int(call.params["chat_id"]), str(call.params["text"])
        bare = text.removeprefix(MAY_REPEAT + "\n")
        if (chat, bare) in reminder_texts:
            (noted if bare != text else plain)[(chat, bare)] += 1
            reminder_times.setdefault((chat, bare), []).append(call.time)
        else:
            replies.setdefault(chat, []).append(call)
    lost_reminders = {m: n - plain[m] - noted[m] for m, n in expected.items() if plain[m] + noted[m] < n}
    twice = {m: plain[m] - n for m, n in expected.items() if plain[m] > n}
    kills = [d.killed for d in run.deaths]
    reminders_repeated = [  # as the replies below: once more at most, and only across a kill
        f"user {chat}: {text[:50]!r} (due {n}, plain {plain[(chat, text)]}, noted {noted[(chat, text)]}, "
        f"{when(reminder_times[(chat, text)], kills, started)})"
        for (chat, text), n in expected.items()
        if beyond_allowance(reminder_times.get((chat, text), []), n, kills)
    ]
    repeats = sum((plain + noted).values()) - sum(expected.values())

    # -- the updates: each answered once, whole ------------------------------------------------------
    # Paired by content, per chat: a consulting user's 19 steps each have replies of their own (no text
    # repeats within the dialogue), and a pinging user's every /start has the welcome. A reply may arrive
    # after its post ended (the sweep, or a send retried past a kill), during the chat's next update, so
    # no time window decides whose it is. For each expected reply text of a chat, posted n times: sent
    # plain at most n times, at least n times in all, at most 2n times in all (once more per update that
    # was in flight), and a copy beyond n only across a kill (its first copy before a death, its last
    # after); any other text is a wrong answer. The first copy to arrive may itself carry the note: a send
    # retried after a time-out is noted (the timed-out try may have arrived; at the loopback it did not),
    # so "plain 0, noted 2" is the answer once and once more after a kill, as the issue allows.
    expected_replies: dict[int, Counter[str]] = {}
    for posted in run.posted:
        expected_replies.setdefault(posted.chat, Counter()).update(posted.expected)
    answered = noted_replies = 0
    lost: list[str] = []  # never sent: the user went without that answer
    told_fault: list[str] = []  # the user was told FAULT ("Something went wrong") instead of an answer
    twice_plain: list[str] = []  # a second copy without the note
    repeated: list[str] = []  # more than one extra copy per update, or an extra copy with no kill to explain it
    wrong: list[str] = []  # a text no update of that chat should have had
    for chat, wanted in expected_replies.items():
        got_plain: Counter[str] = Counter()
        got_noted: Counter[str] = Counter()
        arrived: dict[str, list[float]] = {}
        for call in replies.get(chat, []):
            text = str(call.params["text"])
            bare = text.removeprefix(MAY_REPEAT + "\n")
            (got_noted if bare != text else got_plain)[bare] += 1
            arrived.setdefault(bare, []).append(call.time)
        for text in got_plain.keys() | got_noted.keys():
            if text == FAULT:
                told_fault.append(f"user {chat}: {got_plain[text] + got_noted[text]} times")
            elif text not in wanted:
                wrong.append(f"user {chat}: {text[:80]!r}")
        for text, n in wanted.items():
            where = f"user {chat}: {text[:50]!r} (posted {n}, plain {got_plain[text]}, noted {got_noted[text]})"
            answered += min(n, got_plain[text] + got_noted[text])
            noted_replies += got_noted[text]
            if got_plain[text] + got_noted[text] < n:
                lost.append(where)
            if got_plain[text] > n:
                twice_plain.append(where)
            if why := beyond_allowance(arrived.get(text, []), n, kills):
                repeated.append(f"{where}: {why}, {when(arrived[text], kills, started)}")
    replies_expected = sum(n for wanted in expected_replies.values() for n in wanted.values())
    died_in_hand = sum(p.status == 0 for p in api.posts)  # posts whose replica died (or failed) with them in hand

    # -- consultations: every "Saved to" the user saw is in the database -------------------------------
    saved = {
        label
        for (label,) in rows(
            run.topology.db_url,
            "SELECT p.label FROM patients p WHERE EXISTS (SELECT 1 FROM regimens r WHERE r.patient_id = p.id)",
        )
    }
    saved_seen = {  # labels whose "Saved to" reply the user received (plain or with the note, at any time)
        label
        for chat in range(FIRST_USER, FIRST_USER + USERS)
        for call in replies.get(chat, [])
        if (label := f"LB-{chat - FIRST_USER}")
        and str(call.params["text"]).endswith(f"Saved to {label}: dose, result and recommendation.")
    }
    lost_consultations = sorted(saved_seen - saved)

    # -- the survivor answered while the other was dead (posts it answered 200 that were in hand meanwhile;
    # the dead one's updates in hand wait for their reply lease, so the window is at least that long) --
    survivor = [
        sum(
            1
            for p in api.posts
            if p.status == 200
            and p.replica != d.replica
            and p.ended >= d.killed
            and p.started <= max(d.ready, d.killed + REPLY_LEASE.total_seconds() + 5)
        )
        for d in run.deaths
    ]
    refused = Counter(status for _, status in api.refused)
    durations = sorted(p.ended - p.started for p in run.posted)

    def percentile(q: float) -> float:
        return durations[min(len(durations) - 1, int(len(durations) * q / 100))]

    print(
        f"\n{variant}: {elapsed:.1f} s (consultations {consulted:.1f} s, then {waited:.1f} s until every due "
        f"reminder was sent); an update's post until answered 200: p50 {percentile(50):.2f} s, "
        f"p99 {percentile(99):.1f} s, longest {percentile(100):.1f} s; updates {len(run.posted)}, "
        f"posts {len(api.posts)} "
        f"(not answered 200: {sum(p.status != 200 for p in api.posts)}, of them left unanswered by a replica "
        f"killed or failing with them in hand {died_in_hand}); replies expected {replies_expected}, sent "
        f"{answered}, of them with the note {noted_replies}; lost {len(lost)}, FAULT told instead {len(told_fault)}, "
        f"twice without the note {len(twice_plain)}, repeated beyond the allowance {len(repeated)}, "
        f"wrong answers {len(wrong)}, replies still unsent at the end {unsent}; "
        f"reminders due {DUE} (seeded {seeded}), "
        f"deliveries {deliveries}, messages {sum((plain + noted).values())}, repeats {repeats}, with the note "
        f"{sum(noted.values())}; consultations saved and seen {len(saved_seen)}, in the database "
        f"{len(saved)}; Bot API refusals {dict(refused)}; button fallbacks {run.fallbacks}\n"
        f"kill moments (replica: seconds into the run, what was done; the survivor's answers meanwhile): "
        + "; ".join(
            f"{d.replica + 1}: {d.killed - started:.1f} s, {d.moment}, {n} answers"
            for d, n in zip(run.deaths, survivor, strict=True)
        )
    )
    slowest = sorted(run.posted, key=lambda p: p.started - p.ended)[:8]
    print(
        "slowest posts (seconds into the run, step, seconds until answered 200, posts of it and their statuses): "
        + "; ".join(
            f"{p.started - started:.1f} s, step {p.step}, {p.ended - p.started:.1f} s, "
            f"{dict(Counter(q.status for q in api.posts if q.update_id == p.update_id))}"
            for p in slowest
        )
    )
    for name, found in {
        "lost": lost,
        "FAULT": told_fault,
        "twice": twice_plain,
        "repeated": repeated,
        "wrong": wrong,
    }.items():
        if found:
            print(f"{name}: {found[:5]}")
    assert not lost_reminders, f"due reminders never sent: {list(lost_reminders.items())[:5]}"
    assert not twice, f"reminders sent twice without the note: {list(twice.items())[:5]}"
    assert not reminders_repeated, f"reminders repeated beyond the allowance: {reminders_repeated[:5]}"
    assert deliveries >= DUE
    assert not lost_consultations, f"saved, seen, and lost: {lost_consultations}"
    assert len(saved_seen) == USERS, f"{USERS - len(saved_seen)} users never saw their 'Saved to'"
    assert all(survivor), f"the survivor answered nothing during a death: {survivor}"
    # A reply's send is retried (bot/sending.send_retried); one failing every try is left to the sweep,
    # which sends it with the note: none may be lost, none replaced by FAULT.
    assert not lost, f"{len(lost)} replies never sent: {lost[:5]}"
    assert not told_fault, f"the user told FAULT instead of an answer: {told_fault[:5]}"
    assert not twice_plain, f"{len(twice_plain)} replies sent twice without the note: {twice_plain[:5]}"
    assert not wrong, f"{len(wrong)} answers no update asked for: {wrong[:5]}"
    assert not repeated, f"{len(repeated)} replies repeated beyond the allowance: {repeated[:5]}"
