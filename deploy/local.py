"""The production topology on loopback: PostgreSQL, two `hemadose run --webhook` replicas on one database,
and the loopback Bot API standing in for Telegram and the HTTPS proxy in front of the replicas.

    python deploy/local.py [--replicas N] [--dir DIR]     (from the repository root, in its venv)

prints the database URL, the replicas' URLs and pids, and the Bot API's address, then runs until
Ctrl-C, which stops everything (replicas by SIGTERM, as systemd does, then the cluster). PostgreSQL
comes from .ci/postgres.sh (a throwaway cluster; installed from the Debian packages when missing and
run as root).

As a library (tests/test_scale_out.py): `Topology(folder).start()`, then `kill(i)` (kill -9),
`restart(i)` (same port, as systemd's Restart=always would), `stop()`. The Bot API (`topology.api`,
tests/loopback_bot_api.py) records every call and posts updates with `api.post(update)`, spread over
the replicas and posted again to the next one when a replica does not answer 200, as Telegram does.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.offline import TOKEN  # noqa: E402
from tests.loopback_bot_api import LoopbackBotApi  # noqa: E402

POSTGRES = ROOT / ".ci" / "postgres.sh"
HEMADOSE = Path(sys.executable).parent / "hemadose"
# The URL Telegram is told (setWebhook): what the proxy serves publicly. Every replica sets the same one;
# the loopback Bot API, standing in for Telegram and the proxy, posts to the replicas' own ports.
PUBLIC_URL = "https://hemadose.localhost/telegram"
SECRET = "local-topology-secret"


class PostgresUnavailableError(RuntimeError):
    """PostgreSQL could not be installed or started here (the reason is the message)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def status(url: str, timeout: float = 5.0) -> int:
    """The HTTP status of a GET (0: no answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


class Postgres:
    """A throwaway cluster in `folder` (.ci/postgres.sh)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = ""

    def start(self) -> str:
        done = subprocess.run(
            ["bash", str(POSTGRES), "start", str(self.folder)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            subprocess.run(["bash", str(POSTGRES), "stop", str(self.folder)], capture_output=True, check=False)
            lines = done.stderr.strip().splitlines()
            raise PostgresUnavailableError(lines[-1] if lines else f"postgres.sh exited {done.returncode}")
        self.url = done.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self) -> None:
        subprocess.run(["bash", str(POSTGRES), "stop", str(self.folder)], capture_output=True, check=False)


class Replica:
    """One `hemadose run --webhook` process on its own port; its log in `folder/replica-N.log`."""

    def __init__(self, number: int, db_url: str, api: LoopbackBotApi, folder: Path, **extra: str) -> None:
        self.number = number
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/telegram"  # where the proxy forwards PUBLIC_URL's posts
        self.log_path = folder / f"replica-{number}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HEMADOSE_", "TELEGRAM_"))}
        self.env = (
            env
            | {
                "TELEGRAM_BOT_TOKEN": api.token,
                "HEMADOSE_DB_URL": db_url,
                "HEMADOSE_DATA_DIR": str(folder),
                "HEMADOSE_TELEGRAM_BASE_URL": api.base_url,
                "HEMADOSE_WEBHOOK_SECRET": SECRET,
                "HEMADOSE_WEBHOOK_LISTEN": "127.0.0.1",
                "HEMADOSE_WEBHOOK_PORT": str(self.port),
                "HEMADOSE_ALLOWED_USERS": "*",
            }
            | extra
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> Replica:
        """Start the process (again: same port, same settings, as a service manager restarts it)."""
        assert not self.alive()
        if self._log is None:
            self._log = self.log_path.open("ab")
        command = [str(HEMADOSE), "run", "--webhook", PUBLIC_URL]
        # A session of its own: Ctrl-C reaches this script, which stops the replicas in order.
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self._log, stderr=self._log, start_new_session=True
        )
        self.starts += 1
        return self

    def ready(self, timeout: float = 60.0) -> Replica:
        """Until /readyz answers 200 (RuntimeError with the log's end if it exits or takes too long)."""
        deadline = time.monotonic() + timeout
        while status(f"{self.base}/readyz") != 200:
            if not self.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"replica {self.number} did not become ready:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """kill -9: no handler runs, nothing is finished."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (systemctl stop): finishes the updates in hand; its exit code."""
        if self.process is None:
            return 0
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            return -9

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Topology:
    """PostgreSQL, `replicas` webhook replicas and the loopback Bot API in `folder`; see the module's doc."""

    def __init__(self, folder: Path, replicas: int = 2, *, db_url: str | None = None, **extra: str) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        # The cluster's folder under /tmp, as .ci/run's: run as root, the server runs as 'postgres',
        # which may not enter `folder` (a test's tmp_path is private to root).
        self.postgres = Postgres(Path(tempfile.mkdtemp(prefix="hemadose-pg."))) if db_url is None else None
        self.db_url = db_url or ""
        self.api = LoopbackBotApi(TOKEN, limits=False)
        self.count = replicas
        self.extra = extra
        self.replicas: list[Replica] = []

    def start(self) -> Topology:
        """The cluster, the Bot API, then the replicas (the first one alone: it migrates the schema)."""
        try:
            if self.postgres is not None:
                self.db_url = self.postgres.start()
            self.api.start()
            self.replicas = [
                Replica(n, self.db_url, self.api, self.folder, **self.extra) for n in range(1, self.count + 1)
            ]
            for replica in self.replicas:
                replica.start().ready()
            self.api.balance([replica.url for replica in self.replicas])
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, index: int) -> None:
        self.replicas[index].kill()

    def restart(self, index: int, *, wait: bool = True) -> Replica:
        replica = self.replicas[index]
        if replica.alive():
            replica.stop()
        replica.start()
        return replica.ready() if wait else replica

    def stop(self) -> dict[int, int]:
        """Every replica by SIGTERM, then the Bot API and the cluster; the replicas' exit codes."""
        codes = {replica.number: replica.stop() for replica in self.replicas}
        for replica in self.replicas:
            replica.close()
        if self.api._thread.is_alive():  # (shutting down a server never started would wait forever)
            self.api.close()
        if self.postgres is not None:
            self.postgres.stop()
        return codes

    def __enter__(self) -> Topology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> str:
        lines = [f"database   {self.db_url}", f"Bot API    {self.api.base_url} (stands in for Telegram and the proxy)"]
        for replica in self.replicas:
            lines.append(f"replica {replica.number}  {replica.url}  pid {replica.pid}  log {replica.log_path}")
            lines.append(f"           {replica.base}/healthz  {replica.base}/readyz")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--dir", type=Path, help="working folder (default: a new one under /tmp)")
    parser.add_argument("--demo", type=int, default=0, metavar="N", help="N users say /start through it first")
    args = parser.parse_args(argv)
    folder = args.dir or Path(
        subprocess.check_output(["mktemp", "-d", "/tmp/hemadose-local.XXXXXX"], text=True).strip()
    )
    topology = Topology(folder, args.replicas)
    try:
        topology.start()
    except PostgresUnavailableError as error:
        print(f"deploy/local.py: PostgreSQL is not available: {error}", file=sys.stderr)
        return 1
    print(topology.describe(), flush=True)
    print(
        "Post an update: api.post(...) from Python, or curl -H 'X-Telegram-Bot-Api-Secret-Token: "
        f"{SECRET}' -d @update.json {topology.replicas[0].url}",
        flush=True,
    )
    if args.demo:
        demo(topology, args.demo)
    print("Ctrl-C stops everything.", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        codes = topology.stop()
        print(f"stopped: replicas' exit codes {codes}", file=sys.stderr)
    return 0


def demo(topology: Topology, users: int) -> None:
    """`users` users say /start, posted through the loopback Bot API; which replica took each, the replies."""
    from bot.offline import message_update

    taken = [topology.api.post(message_update(n, 1000 + n, 1000 + n, "/start")) for n in range(1, users + 1)]
    per = {replica.number: taken.count(index) for index, replica in enumerate(topology.replicas)}
    print(f"demo: {users} updates posted, taken per replica {per}, replies {len(topology.api.texts())}", flush=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
