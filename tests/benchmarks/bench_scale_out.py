"""Scale-out benchmark on PostgreSQL with real processes: one replica against two, Telegram's limit
shared by the replicas, and finding the due reminders among 1,000,000 scheduled.

    python tests/benchmarks/bench_scale_out.py [--db-url URL] [--rounds 3] [--seconds 8] [--chats 24]
        [--reminders 300] [--burst 80] [--scheduled 1000000] [--quick]

Starts a throwaway PostgreSQL cluster (.ci/postgres.sh; or uses `--db-url`, a server whose
databases it may create), then, each phase on a database of its own:

1. Updates per second. A load generator process (tests/loopback_bot_api.py's Bot API in it, and
   `--chats` simulated clinicians, each doing consultations one after the other: a fresh user per
   consultation, 15 updates from /new to "Save to patient", each sent when the previous one was
   answered) posts webhook updates to real `hemadose run --webhook` processes: to one replica, then
   spread over two (round robin per update, as a load balancer would), `--rounds` times interleaved;
   best of the rounds. Per update: p50 and p99 of the webhook post's round trip (the webhook answers
   once the update is handled). The floor: the same generator against a stub webhook (a process that
   answers each post with one sendMessage to the Bot API and nothing else). Telegram's 30 messages/s is
   lifted for this phase (HEMADOSE_TELEGRAM_PER_SECOND=0, the Bot API's limits off): with it every
   reply would wait for the bot's limit and the figure would be Telegram's, not ours. CPU seconds per
   update of each process (replicas, PostgreSQL's server processes, the generator) from /proc say
   where the 2 cores went: the ratio two/one cannot exceed what the spare CPU allows.
2. Reminders sent per second through the loopback Bot API with Telegram's limits on (30/s overall,
   1/s per chat; it answers 429 beyond), `--reminders` due in as many chats: one replica, then two
   started together. Printed: the rate, the most messages accepted and asked for (accepted + refused
   with 429) in any sliding second, against 30: two replicas share the bot's one limit (heartbeats in
   the `replicas` table, bot/sending.py's BotPace). Then `--burst` users' /start posted at once, half to
   each of two replicas: with one limit shared, and with a limit each (the replicas on two databases,
   so that each counts itself alone: what every replica did before the heartbeats).
3. Finding the due batch (the outbox's own query, 500 rows) among `--scheduled` occurrences of
   which 10,000 are due, best of 5, and its plan (EXPLAIN ANALYZE): it must be an index range scan
   (goal: <= 10 ms).

Prints the machine's `nproc` and load average before and after. Asserts nothing (the smoke test,
tests/test_bench_scale_out.py, runs `--quick` for its exit code and output's shape).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.offline import TOKEN, button_update, message_update
from bot.storage.replicas import HEARTBEAT
from bot.storage.tables import Occurrence, Reminder
from tests.benchmarks import bench_reminders
from tests.loopback_bot_api import Call, LoopbackBotApi, post_update
from tests.webhook_bot import SECRET, HemadoseRun, WebhookBot, free_port

ROOT = Path(__file__).resolve().parents[2]
TICK = os.sysconf("SC_CLK_TCK")
TELEGRAM_PER_SECOND = 30
GOAL_RATIO, GOAL_DUE_MS = 1.7, 10.0
# tests/dialogues/flow_followup_romiplostim_increase_saved.yaml's first visit (bench_bot.VISIT_1), its
# dates moved to today's; a step is pressed when the bot's last message has a button of that label.
# `-21`/`-7`: days before today.
VISIT = (
    "/new", "Romiplostim", "US label", "RX-12", "72", "Adult (18 or over)", "Today", "On treatment", "3",
    -21, -7, "32", "Yesterday", "✅ Get recommendation", "Save to patient",
)  # fmt: skip
SAVED = "Saved to RX-12"


# -- the processes' CPU ------------------------------------------------------------------------------
def cpu_of(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system) of a process; with `children`, also of its waited-for children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return used / TICK


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (every process, ours and the others'), from /proc/stat."""
    ticks = [int(word) for word in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICK  # all but idle and iowait (guest is in user)


def postgres_cpu(postmaster: int | None) -> float:
    """The server's CPU seconds: the postmaster, its live backends and those that exited."""
    if postmaster is None:
        return 0.0
    total = cpu_of(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == postmaster:
                total += cpu_of(int(entry.name))
    return total


def postmaster_on(port: int | None) -> int | None:
    """The pid of a local PostgreSQL server started with `-p port` (its CPU is then measured), or None."""
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if words and words[0].endswith(b"/postgres") and b"-p" in words and str(port).encode() in words:
            return int(entry.name)
    return None


def machine() -> str:
    one, five, _ = os.getloadavg()
    return f"nproc {os.cpu_count()}, load average {one:.2f} (1 min) {five:.2f} (5 min)"


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def peak_per_second(times: Sequence[float]) -> int:
    """The most events within any sliding second."""
    ordered, most, start = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


# -- the load generator (a process of its own: `--generator`) ------------------------------------------
class Generator:
    """Simulated clinicians posting consultations to webhooks; the Bot API their replies go to."""

    def __init__(self, api: LoopbackBotApi) -> None:
        self.api = api
        self.update_ids = itertools.count(random.randrange(10**12, 2 * 10**12))
        self.users = itertools.count(random.randrange(10**8, 2 * 10**8))
        self.posts = itertools.count()

    def _button(self, chat: int, label: str) -> dict[str, Any] | None:
        """The bot's latest message to `chat` with a button `label` (None: type it)."""
        with self.api._changed:
            calls: list[Call] = self.api.calls[-4000:]
        for call in reversed(calls):
            if call.params.get("chat_id") != chat or not isinstance(call.result, dict):
                continue
            rows = call.result.get("reply_markup", {}).get("inline_keyboard", [])
            if rows:
                return call.result if any(b["text"] == label for row in rows for b in row) else None
        return None

    def _update(self, user: int, step: str) -> dict[str, Any]:
        message = self._button(user, step)
        if message is None:
            return message_update(next(self.update_ids), user, user, step)
        rows = message["reply_markup"]["inline_keyboard"]
        data = next(b["callback_data"] for row in rows for b in row if b["text"] == step)
        return button_update(next(self.update_ids), user, message, data)

    def run(self, urls: list[str], seconds: float, chats: int) -> dict[str, Any]:
        today = dt.datetime.now(dt.UTC).date()
        steps = [str(today + dt.timedelta(days=s)) if isinstance(s, int) else s for s in VISIT]
        latencies: list[float] = []
        done = {"updates": 0, "failed": 0, "consultations": 0, "saved": 0}
        lock = threading.Lock()
        end = time.monotonic() + seconds

        def clinician() -> None:
            while time.monotonic() < end:
                user = next(self.users)
                for step in steps:
                    url = urls[next(self.posts) % len(urls)]
                    start = time.monotonic()
                    status = post_update(url, self._update(user, step), SECRET, timeout=60)
                    finished = time.monotonic()
                    if finished > end:
                        return
                    with lock:
                        done["updates" if status == 200 else "failed"] += 1
                        latencies.append(finished - start)
                with lock:
                    done["consultations"] += 1
                    done["saved"] += any(t.startswith(SAVED) for t in self.api.texts(user)[-2:])

        cpu = cpu_of(os.getpid())
        threads = [threading.Thread(target=clinician) for _ in range(chats)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = min(time.monotonic(), end) - started
        return done | {
            "seconds": elapsed,
            "per_second": done["updates"] / elapsed,
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
            "cpu": cpu_of(os.getpid()) - cpu,
        }


def generator_main() -> None:
    """Prints the Bot API's URL, then answers each JSON command line of stdin with a JSON result line."""
    with LoopbackBotApi(limits=False) as api:
        # Its answers are written in two pieces (headers, body): with Nagle's algorithm on, the body of an
        # answer on a kept-alive connection (python-telegram-bot's) waits for the client's delayed ACK,
        # 40 ms a call, which measured the loopback's TCP and not HemaDose. tests/loopback_bot_api.py could
        # set it for every test.
        api._server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        generator = Generator(api)
        print(json.dumps({"base_url": api.base_url}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            print(json.dumps(generator.run(command["urls"], command["seconds"], command["chats"])), flush=True)


def stub_main(base_url: str, port: int) -> None:
    """The floor's webhook: each post answered after one sendMessage to the Bot API, nothing else."""
    api = http.client.HTTPConnection  # one connection per thread would be faster; PTB's client keeps one too
    host, api_port = base_url.removeprefix("http://").split(":")

    class Stub(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            update = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            source = update.get("message") or update.get("callback_query", {}).get("message", {})
            body = json.dumps({"chat_id": source.get("chat", {}).get("id", 1), "text": "ok"})
            connection = api(host, int(api_port), timeout=30)
            connection.request("POST", f"/bot{TOKEN}/sendMessage", body, {"Content-Type": "application/json"})
            connection.getresponse().read()
            connection.close()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", port), Stub, bind_and_activate=False)
    server.request_queue_size = 128  # not 5: the clinicians' connections queue, none is dropped and retried
    server.server_bind()
    server.server_activate()
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


class GeneratorProcess:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--generator"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.base_url = str(json.loads(self.process.stdout.readline())["base_url"])

    def run(self, urls: list[str], seconds: float, chats: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"urls": urls, "seconds": seconds, "chats": chats}) + "\n")
        self.process.stdin.flush()
        return cast(dict[str, Any], json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


# -- the database ---------------------------------------------------------------------------------------
class Server:
    """A PostgreSQL server: the throwaway cluster (its postmaster's pid known) or `--db-url`'s."""

    def __init__(self, url: str | None, stack: ExitStack) -> None:
        self.folder: Path | None = None
        self.postmaster: int | None = None
        if url is None:
            self.folder = Path(tempfile.mkdtemp(prefix="hemadose-bench-pg-"))
            started = subprocess.run(
                [str(ROOT / ".ci/postgres.sh"), "start", str(self.folder)], capture_output=True, text=True, check=True
            )
            url = started.stdout.strip().splitlines()[-1]
            stack.callback(subprocess.run, [str(ROOT / ".ci/postgres.sh"), "stop", str(self.folder)], check=False)
            self.postmaster = int((self.folder / "data/postmaster.pid").read_text().split()[0])
        self.url = url
        self.postmaster = self.postmaster or postmaster_on(make_url(url).port)
        self.version = ""
        self.made: list[str] = []  # the databases it made (on a server of --db-url: dropped at the end)

    def cpu(self) -> float:
        return postgres_cpu(self.postmaster)

    async def _run(self, *statements: str) -> None:
        engine = create_async_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                self.version = str(await connection.scalar(text("SHOW server_version")))
                for statement in statements:
                    await connection.execute(text(statement))
        finally:
            await engine.dispose()

    async def new_database(self, name: str) -> str:
        """A fresh database named after `name` and this process (another run on the server keeps its own)."""
        name = f"bench_{os.getpid()}_{name}"
        if name not in self.made:
            self.made.append(name)
            await self._run(f'CREATE DATABASE "{name}"')
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def drop_made(self) -> None:
        asyncio.run(self._run(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in self.made)))


def replica(api_url: str, db_url: str, folder: Path, **extra: str) -> WebhookBot:
    settings = {"HEMADOSE_ALLOWED_USERS": "*", "HEMADOSE_LOG_LEVEL": "WARNING"} | extra
    return WebhookBot(cast(LoopbackBotApi, SimpleNamespace(base_url=api_url)), db_url, folder, **settings)


@contextmanager
def replicas(count: int, api_url: str, db_url: str, folder: Path, **extra: str) -> Iterator[list[WebhookBot]]:
    """`count` replicas started together (each also migrating: the first takes the advisory lock)."""
    bots = [replica(api_url, db_url, folder, **extra) for _ in range(count)]
    try:
        yield [bot.serving(timeout=60) for bot in bots]
    finally:
        for bot in bots:
            bot.stop(timeout=30)


# -- 1. updates per second ----------------------------------------------------------------------------------
def cpu_snapshot(server: Server, pids: list[int], generator: int) -> dict[str, float]:
    return {"pg": server.cpu(), "replicas": sum(cpu_of(pid) for pid in pids), "generator": cpu_of(generator)}


def timed(
    server: Server, generator: GeneratorProcess, bots: Sequence[WebhookBot | HemadoseRun], urls: list[str], args: Any
) -> dict[str, Any]:
    busy = machine_busy()
    result = timed_run(server, generator, bots, urls, args)
    result["machine"] = machine_busy() - busy
    return result


def timed_run(
    server: Server, generator: GeneratorProcess, bots: Sequence[WebhookBot | HemadoseRun], urls: list[str], args: Any
) -> dict[str, Any]:
    pids = [bot.process.pid for bot in bots]
    before = cpu_snapshot(server, pids, generator.process.pid)
    result = generator.run(urls, args.seconds, args.chats)
    after = cpu_snapshot(server, pids, generator.process.pid)
    result["cpu_by"] = {key: after[key] - before[key] for key in after}
    return result


def updates_per_second(server: Server, args: Any, folder: Path) -> None:
    db_url = asyncio.run(server.new_database("scale"))
    generator = GeneratorProcess()
    port = free_port()
    stub = subprocess.Popen(
        [sys.executable, __file__, "--stub", generator.base_url, str(port)], stdout=subprocess.PIPE, text=True
    )
    assert stub.stdout is not None
    assert stub.stdout.readline().strip() == "ready"
    unlimited = {"HEMADOSE_TELEGRAM_PER_SECOND": "0"}
    runs: dict[str, list[dict[str, Any]]] = {"floor": [], "one": [], "two": []}
    try:
        with replicas(2, generator.base_url, db_url, folder, **unlimited) as (first, second):
            generator.run([first.url, second.url], min(2.0, args.seconds), args.chats)  # warm both up
            for _ in range(args.rounds):
                floor = generator.run([f"http://127.0.0.1:{port}/"], args.seconds, args.chats)
                floor["cpu_by"] = {"stub": 0.0}
                runs["floor"].append(floor)
                runs["one"].append(timed(server, generator, [first], [first.url], args))
                runs["two"].append(timed(server, generator, [first, second], [first.url, second.url], args))
    finally:
        stub.terminate()
        stub.wait(timeout=10)
        generator.close()
    best = {kind: max(results, key=lambda r: r["per_second"]) for kind, results in runs.items()}
    one, two, floor = best["one"], best["two"], best["floor"]
    print(
        f"1. updates per second, PostgreSQL {server.version}, {args.chats} clinicians in consultations "
        f"(best of {args.rounds} x {args.seconds:g} s; Telegram's 30/s lifted for this phase):"
    )
    print(
        f"  floor (generator + Bot API + a stub webhook, no bot): {floor['per_second']:.0f} updates/s, "
        f"p50 {floor['p50'] * 1000:.1f} ms, p99 {floor['p99'] * 1000:.1f} ms"
    )
    for name, result in (("one replica ", one), ("two replicas", two)):
        cpu = result["cpu_by"]
        per = {key: value / max(1, result["updates"]) * 1000 for key, value in cpu.items()}
        print(
            f"  {name}: {result['per_second']:.1f} updates/s, p50 {result['p50'] * 1000:.1f} ms, "
            f"p99 {result['p99'] * 1000:.1f} ms ({result['consultations']} consultations, {result['saved']} saved, "
            f"{result['failed']} failed posts); CPU ms per update: replicas {per['replicas']:.2f}, "
            f"PostgreSQL {per['pg']:.2f}, generator + Bot API {per['generator']:.2f}, "
            f"total {sum(per.values()):.2f}"
        )
    ratio = two["per_second"] / one["per_second"]
    cpu_total = sum(two["cpu_by"].values()) / max(1, two["updates"])
    cores = os.cpu_count() or 1
    print(
        f"  two / one: {ratio:.2f}x (goal >= {GOAL_RATIO}x); one replica / floor: "
        f"{one['per_second'] / floor['per_second']:.2f}"
    )
    print(
        f"  the machine's ceiling at that CPU per update: {cores} cores / {cpu_total * 1000:.2f} ms = "
        f"{cores / cpu_total:.0f} updates/s; busy CPU during one / two replicas: ours "
        f"{sum(one['cpu_by'].values()) / one['seconds']:.2f} / {sum(two['cpu_by'].values()) / two['seconds']:.2f} "
        f"of {cores} cores, the whole machine's (other work included) "
        f"{one['machine'] / one['seconds']:.2f} / {two['machine'] / two['seconds']:.2f}"
    )
    replica_ms = one["cpu_by"]["replicas"] / max(1, one["updates"])
    print(
        f"  one replica with a core of its own (its CPU per update, {replica_ms * 1000:.2f} ms): "
        f"{1 / replica_ms:.0f} updates/s at most; two with two cores of their own: {2 / replica_ms:.0f}"
    )
    # What the CPU allows on this machine with nothing else running: a replica is one process (one core at
    # most), and everything (replicas, PostgreSQL, the generator) shares the cores.
    total_ms = sum(one["cpu_by"].values()) / max(1, one["updates"])
    alone, both = min(1 / replica_ms, cores / total_ms), min(2 / replica_ms, cores / total_ms)
    print(
        f"  this machine with nothing else running, at the one-replica run's CPU per update ({total_ms * 1000:.2f} "
        f"ms in all): one replica <= {alone:.0f} updates/s, two <= {both:.0f}: two / one <= {both / alone:.2f}x "
        f"on {cores} cores"
    )


# -- 2. reminders per second against Telegram's limit ------------------------------------------------------------
async def seed_due(db_url: str, chats: int) -> None:
    """`chats` blood-test reminders due a minute ago, one per chat (bench_reminders' seeding)."""
    from bot.storage import open_storage

    storage = await open_storage(db_url)  # migrates the new database
    bench_reminders.NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(minutes=1)
    try:
        await bench_reminders.seed_chats(storage, dict.fromkeys(range(2, 2 + chats), 1))
    finally:
        await storage.close()


def reminders_per_second(server: Server, args: Any, folder: Path) -> None:
    print(
        f"2. reminders sent per second through the loopback Bot API with Telegram's limits on "
        f"({TELEGRAM_PER_SECOND}/s overall, 1/s per chat), {args.reminders} due in {args.reminders} chats:"
    )
    for count in (1, 2):
        db_url = asyncio.run(server.new_database(f"reminders{count}"))
        asyncio.run(seed_due(db_url, args.reminders))
        with LoopbackBotApi(limits=True) as api, replicas(count, api.base_url, db_url, folder):
            calls = api.wait_for("sendMessage", args.reminders, timeout=60 + 3 * args.reminders)
            time.sleep(1.0)  # anything sent twice would arrive now
            calls = api.accepted("sendMessage")
            refused = [call.time for call, status in api.refused if status == 429 and call.method == "sendMessage"]
        accepted = [call.time for call in calls]
        chats = {call.params.get("chat_id") for call in calls}
        span = max(accepted) - min(accepted)
        rate = (len(accepted) - 1) / span if span > 0 else float("nan")
        print(
            f"  {count} replica{'s' if count > 1 else ' '}: {rate:.1f} sent/s (goal: up to {TELEGRAM_PER_SECOND}/s "
            f"for the bot); most in any second: {peak_per_second(accepted)} accepted, "
            f"{peak_per_second(accepted + refused)} asked for; {len(refused)} refused with 429; "
            f"{len(accepted)} accepted for {len(chats)} chats ({len(accepted) - len(chats)} twice)"
        )


def replies_at_once(server: Server, args: Any, folder: Path) -> None:
    """`args.burst` users' /start posted at once, half to each of two replicas: one limit shared (one
    database), and each replica with a limit of its own (two databases: as before the heartbeats)."""
    users = list(range(3001, 3001 + args.burst))
    print(
        f"  {len(users)} users' /start posted at once, half to each of two replicas (one reply each; "
        f"Telegram's limits on):"
    )
    for shared in (True, False):
        names = ["burst"] * 2 if shared else ["burst_a", "burst_b"]
        urls = {name: asyncio.run(server.new_database(name)) for name in names}
        settings = {"HEMADOSE_LOG_LEVEL": "INFO"}  # the heartbeat logs the count when it changes
        with LoopbackBotApi(limits=True) as api:
            bots = [replica(api.base_url, urls[names[0]], folder, **settings).serving(timeout=60)]
            bots.append(replica(api.base_url, urls[names[1]], folder, **settings).serving(timeout=60))
            try:
                seen = f"{2 if shared else 1} replica(s) share"
                deadline = time.monotonic() + 30
                while not all(seen in "".join(bot.log) for bot in bots) and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(HEARTBEAT.total_seconds())  # past a joining replica's hold: the steady state
                start = threading.Barrier(len(users))

                def post_one(index: int, start: threading.Barrier, urls: list[str]) -> None:
                    start.wait()
                    update = message_update(10**9 + index, users[index], users[index], "/start")
                    post_update(urls[index % 2], update, SECRET, timeout=60)

                webhooks = [bot.url for bot in bots]
                threads = [threading.Thread(target=post_one, args=(i, start, webhooks)) for i in range(len(users))]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                accepted = [call.time for call in api.accepted("sendMessage")]
                refused = [call.time for call, status in api.refused if status == 429]
            finally:
                for bot in bots:
                    bot.stop(timeout=30)
        span = max(accepted) - min(accepted) if len(accepted) > 1 else float("nan")
        how = "one limit shared (one database)    " if shared else "a limit each (two databases: before)"
        print(
            f"    {how}: {len(accepted)} answered in {span:.1f} s; most in any second: "
            f"{peak_per_second(accepted)} accepted, {peak_per_second(accepted + refused)} asked for; "
            f"{len(refused)} refused with 429"
        )


# -- 3. the due batch among a million ----------------------------------------------------------------------------
async def due_batch(server: Server, scheduled: int, due: int) -> None:
    from bot.reminders import Reminders
    from bot.storage import open_storage

    db_url = await server.new_database("due")
    storage = await open_storage(db_url)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    bench_reminders.NOW = now
    reminders_count = max(1, scheduled // 5)
    users = max(1, reminders_count // bench_reminders.PER_USER)
    started = time.perf_counter()
    async with storage.engine.begin() as connection:  # generate_series: 1M rows in seconds, not minutes
        await connection.execute(
            text(
                "INSERT INTO users (id, external_id, time_zone, created_at) "
                "SELECT u, 'tg:' || u, 'UTC', :now FROM generate_series(1, :users) u"
            ),
            {"now": now, "users": users},
        )
        await connection.execute(
            text(
                "INSERT INTO patients (id, user_id, label, created_at) "
                "SELECT r, (r - 1) / :per + 1, 'P' || r, :now FROM generate_series(1, :n) r"
            ),
            {"now": now, "n": reminders_count, "per": bench_reminders.PER_USER},
        )
        row = bench_reminders._reminder_row(1, 1)
        columns = [c for c in row if c not in ("id", "user_id", "patient_id", "chat_key")]
        await connection.execute(
            text(
                f"INSERT INTO reminders (id, user_id, patient_id, chat_key, {', '.join(columns)}) "
                f"SELECT r, (r - 1) / :per + 1, r, 'tg:' || ((r - 1) / :per + 1) || ':' || ((r - 1) / :per + 1), "
                f"{', '.join(':' + c for c in columns)} FROM generate_series(1, :n) r"
            ),
            {"n": reminders_count, "per": bench_reminders.PER_USER} | {c: row[c] for c in columns},
        )
        await connection.execute(
            text(
                "INSERT INTO occurrences (reminder_id, kind, on_date, due_at, state, sends, next_at) "
                "SELECT n % :reminders + 1, 'lab', w::date, w, 'scheduled', 0, w FROM ("
                "  SELECT n, CASE WHEN n < :due THEN CAST(:now AS timestamp) "
                "    ELSE CAST(:now AS timestamp) + make_interval(days => 1 + n % 365) END AS w "
                "  FROM generate_series(0, :scheduled - 1) n) s"
            ),
            {"reminders": reminders_count, "due": due, "now": now, "scheduled": scheduled},
        )
        await connection.execute(text("ANALYZE"))
    filled = time.perf_counter() - started
    reminders = Reminders(storage, lambda: now.replace(tzinfo=dt.UTC), "UTC")
    best = await bench_reminders.find_due(reminders, reminders.batch)
    query = (
        select(Occurrence.id)
        .join(Reminder, Reminder.id == Occurrence.reminder_id)
        .where(Occurrence.next_at <= now, Reminder.chat_key.startswith("tg:"))
        .order_by(Occurrence.next_at)
        .limit(reminders.batch)
    )
    sql = str(query.compile(dialect=storage.engine.sync_engine.dialect, compile_kwargs={"literal_binds": True}))
    async with storage.engine.begin() as connection:
        plan = [str(line) for line in (await connection.scalars(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")))]
    await storage.close()
    indexed = any("Index Scan" in line and "ix_occurrences_next_at" in line for line in plan)
    scanned = any("Seq Scan on occurrences" in line for line in plan)
    how = "an index scan of ix_occurrences_next_at, no scan of the table"
    how = how if indexed and not scanned else "NOT the index"
    print(
        f"3. finding the due batch ({reminders.batch} rows, the outbox's query) among {scheduled:,} scheduled "
        f"occurrences ({due:,} due; filled in {filled:.0f} s): {best * 1000:.2f} ms, best of 5 "
        f"(goal <= {GOAL_DUE_MS:g} ms); plan: "
        f"{how}"
    )
    for line in plan:
        print(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", help="a PostgreSQL server (postgresql+asyncpg://...) whose databases it may create")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="each timed run")
    parser.add_argument("--chats", type=int, default=24, help="simulated clinicians at once")
    parser.add_argument("--reminders", type=int, default=300)
    parser.add_argument("--burst", type=int, default=80, help="users answered at once by two replicas")
    parser.add_argument("--scheduled", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, figures meaningless")
    parser.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stub", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generator:
        return generator_main()
    if args.stub:
        return stub_main(args.stub[0], int(args.stub[1]))
    if args.quick:
        args.rounds, args.seconds, args.chats, args.reminders, args.scheduled, args.due = 1, 1.5, 2, 6, 2_000, 100
        args.burst = 6
    print(f"machine: {machine()}")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as folder:  # the cluster stopped last
        server = Server(args.db_url, stack)
        stack.callback(server.drop_made)
        updates_per_second(server, args, Path(folder))
        reminders_per_second(server, args, Path(folder))
        replies_at_once(server, args, Path(folder))
        asyncio.run(due_batch(server, args.scheduled, args.due))
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
