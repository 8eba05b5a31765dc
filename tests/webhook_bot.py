"""A real `hemadose run --webhook` process for tests, posting updates to it as Telegram does.

Every wait is on something observed (a health check answering, a call recorded), with a time-out.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bot.offline import TOKEN, button_update, message_update
from deploy.local import free_port as free_port
from deploy.local import status
from tests.loopback_bot_api import LoopbackBotApi, post_update

HEMADOSE = Path(sys.executable).parent / "hemadose"
SECRET = "s3cret_TOKEN-for-tests"
USER = 1001
_update_ids = itertools.count(5000)
get = status  # the HTTP status of a GET (0: no answer); deploy/local.py's, for the tests


def post(url: str, update: dict[str, Any], secret: str | None = SECRET, timeout: float = 20.0) -> int:
    """Post `update` to a webhook as Telegram does; the HTTP status the bot answered (0: none)."""
    return post_update(url, update, secret, timeout)


def said(text: str, user: int = USER) -> dict[str, Any]:
    """A text message update with a fresh update_id."""
    return message_update(next(_update_ids), user, user, text)


def pressed(message: dict[str, Any], label: str, user: int = USER) -> dict[str, Any]:
    """A press on the button `label` of a message the bot sent (as the Bot API returned it)."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    data = next(b["callback_data"] for row in rows for b in row if b["text"] == label)
    return button_update(next(_update_ids), user, message, data)


def romiplostim_increase_card(label: str, today: dt.date) -> str:
    """The whole card of the end-to-end consultations (72 kg, 3 mcg/kg, platelets 32): increase to 4."""
    return (
        f"Romiplostim · ITP · US label · patient {label}\n\n"
        "INCREASE: 4 mcg/kg (was 3)\n"
        "Dose: 288 mcg (4 mcg/kg × 72 kg) = 0.58 mL of the 500 mcg/mL solution\n"
        "Vials: 1 × 250 mcg + 1 × 125 mcg\n"
        f"Next dose: {today:%a %Y-%m-%d}\n"
        f"Next check: platelet count on {today + dt.timedelta(days=7):%a %Y-%m-%d}\n\n"
        "Warnings:\n"
        "⚠ Thrombotic and thromboembolic complications can occur; portal vein thrombosis has been reported in "
        "chronic liver disease. Do not aim for normal platelet counts.\n\n"
        "Rule: romiplostim.increase · Nplate US PI 2.2\n"
        "HemaDose rules v1.1. This supports, and does not replace, clinical judgement."
    )


class HemadoseRun:
    """A real `hemadose run` process against the loopback Bot API; its standard error read as it comes
    (a thread drains the pipe). `tests/test_loopback_e2e.py` polls with it; `WebhookBot` adds the webhook."""

    def __init__(self, api: LoopbackBotApi, db_url: str, folder: Path, *args: str, **extra: str) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("HEMADOSE_", "TELEGRAM_")) and key != "XDG_DATA_HOME"
        }
        env |= {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "HEMADOSE_ALLOWED_USERS": str(USER),
            "HEMADOSE_DB_URL": db_url,
            "HEMADOSE_DATA_DIR": str(folder),
            "HEMADOSE_TELEGRAM_BASE_URL": api.base_url,
        } | extra
        self.process = subprocess.Popen(
            [str(HEMADOSE), "run", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.log: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)

    def exited(self, timeout: float = 30.0) -> int:
        """Its exit code, once it ended by itself (e.g. refused to start)."""
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return code

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self.reader.join(timeout=5)
        return code


class WebhookBot(HemadoseRun):
    """`hemadose run --webhook http://127.0.0.1:PORT/telegram`."""

    def __init__(self, api: LoopbackBotApi, db_url: str, folder: Path, **extra: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/telegram"
        settings = {"HEMADOSE_WEBHOOK_SECRET": SECRET, "HEMADOSE_WEBHOOK_PORT": str(self.port)}
        super().__init__(api, db_url, folder, "--webhook", self.url, **(settings | extra))

    def serving(self, timeout: float = 20.0) -> WebhookBot:
        """Until /healthz answers 200 (AssertionError with the log on time-out or exit)."""
        deadline = time.monotonic() + timeout
        while get(f"{self.base}/healthz", timeout=1) != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("the webhook bot did not start:\n" + "".join(self.log))
            time.sleep(0.05)
        return self

    def post(self, update: dict[str, Any], secret: str | None = SECRET) -> int:
        return post(self.url, update, secret)
