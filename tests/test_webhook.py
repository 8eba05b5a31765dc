"""`hemadose run --webhook` (issue 13, item 2): the real process against the loopback Bot API, updates
posted to its webhook as Telegram posts them, with the secret token header.

Every wait is on an answer or a recorded call, with a time-out; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.offline import TOKEN
from tests.loopback_bot_api import LoopbackBotApi
from tests.test_loopback_e2e import WELCOME
from tests.webhook_bot import SECRET, USER, WebhookBot, get, post, pressed, romiplostim_increase_card, said


@pytest.fixture
def api() -> Iterator[LoopbackBotApi]:
    with LoopbackBotApi(limits=False) as server:
        yield server


@pytest.fixture
def bot(api: LoopbackBotApi, tmp_path: Path) -> Iterator[WebhookBot]:
    running = WebhookBot(api, f"sqlite:///{tmp_path / 'bot.db'}", tmp_path).serving()
    yield running
    running.stop()


def answer(api: LoopbackBotApi, bot: WebhookBot, update: dict[str, object], replies: int = 1) -> list[str]:
    """Post `update`; the texts of the replies it brought (all sent before the post was answered)."""
    before = len(api.accepted("sendMessage"))
    assert bot.post(update) == 200
    calls = api.accepted("sendMessage")[before:]
    assert len(calls) == replies, [call.params["text"] for call in calls]
    return [call.params["text"] for call in calls]


def press(api: LoopbackBotApi, bot: WebhookBot, label: str) -> list[str]:
    return answer(api, bot, pressed(api.accepted("sendMessage")[-1].result, label))


def test_set_webhook_carries_the_url_and_the_secret(api: LoopbackBotApi, bot: WebhookBot):
    assert [call.method for call in api.calls] == ["getMe", "setMyCommands", "setWebhook"]
    [call] = api.accepted("setWebhook")
    assert call.params["url"] == bot.url
    assert call.params["secret_token"] == SECRET
    assert (api.webhook_url, api.webhook_secret) == (bot.url, SECRET)
    assert not api.accepted("getUpdates")  # no long polling beside the webhook


def test_a_consultation_through_webhook_posts(api: LoopbackBotApi, bot: WebhookBot, tmp_path: Path):
    assert answer(api, bot, said("/start")) == [WELCOME]
    assert answer(api, bot, said("/new")) == ["Which drug?"]
    assert press(api, bot, "Romiplostim") == ["Which label's rules?"]
    assert press(api, bot, "US label") == [
        "Type a label for the patient (a code with a digit, e.g. RX-12 or bed 4; no names)."
    ]
    assert answer(api, bot, said("LB-1")) == ["Body weight in kg?"]
    assert answer(api, bot, said("72")) == ["Age in years? Children's weight is reassessed every 12 weeks."]
    assert press(api, bot, "Adult (18 or over)") == ["When was that weight measured?"]
    assert press(api, bot, "Today") == ["Treatment status?"]
    assert press(api, bot, "On treatment") == ["Dose now, in mcg/kg?"]
    today = dt.datetime.now(dt.UTC).date()
    assert answer(api, bot, said("3")) == ["Date of the first dose at this level?"]
    assert answer(api, bot, said((today - dt.timedelta(days=30)).isoformat())) == ["Date of the last dose given?"]
    assert answer(api, bot, said((today - dt.timedelta(days=7)).isoformat())) == [
        "Latest platelet count? In ×10^9/L, e.g. 32 (or 32000/µL, 32 G/L)."
    ]
    assert answer(api, bot, said("32")) == ["Date of that result?"]
    [summary] = press(api, bot, "Yesterday")
    assert summary.startswith("Please check before I calculate:\n• Drug: Romiplostim\n")
    assert press(api, bot, "✅ Get recommendation") == [romiplostim_increase_card("LB-1", today)]
    assert press(api, bot, "Save to patient") == ["Saved to LB-1: dose, result and recommendation."]
    assert bot.stop() == 0
    assert len(api.texts(USER)) == 16
    assert len(api.accepted("answerCallbackQuery")) == 8
    assert not api.refused
    assert not api.unknown
    with sqlite3.connect(tmp_path / "bot.db") as db:
        assert db.execute("SELECT label FROM patients").fetchall() == [("LB-1",)]
        assert db.execute("SELECT count(*) FROM processed_updates").fetchone() == (16,)


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x"])
def test_a_post_without_the_secret_is_refused(api: LoopbackBotApi, bot: WebhookBot, secret: str | None):
    assert bot.post(said("/start"), secret=secret) == 403
    assert api.texts() == []
    assert answer(api, bot, said("/start")) == [WELCOME]  # the right one still works


def test_a_duplicate_update_is_acknowledged_and_dropped(api: LoopbackBotApi, bot: WebhookBot):
    update = said("/new")
    assert answer(api, bot, update) == ["Which drug?"]
    assert answer(api, bot, update, replies=0) == []  # Telegram posted it again: 200, nothing sent
    button = pressed(api.accepted("sendMessage")[-1].result, "Romiplostim")
    assert answer(api, bot, button) == ["Which label's rules?"]  # the chat moved on once
    assert answer(api, bot, button, replies=0) == []  # the press again: its spinner answered, nothing sent
    assert api.texts() == ["Which drug?", "Which label's rules?"]


def test_health_and_readiness(api: LoopbackBotApi, bot: WebhookBot, tmp_path: Path):
    assert get(f"{bot.base}/healthz") == 200
    assert get(f"{bot.base}/readyz") == 200
    database = tmp_path / "bot.db"
    database.rename(tmp_path / "moved.db")  # the database gone (a disk unmounted, a file removed)
    assert get(f"{bot.base}/readyz") == 503
    assert get(f"{bot.base}/healthz") == 200  # still alive: a restart would not help
    (tmp_path / "moved.db").rename(database)
    assert get(f"{bot.base}/readyz") == 200
    assert answer(api, bot, said("/start")) == [WELCOME]


def test_an_unreachable_postgresql_never_goes_online_nor_ready(api: LoopbackBotApi, tmp_path: Path):
    """A PostgreSQL URL to a port nobody listens on: no webhook set, never ready; the process exits."""
    pytest.importorskip("asyncpg")
    from tests.webhook_bot import free_port

    running = WebhookBot(api, f"postgresql+asyncpg://hemadose@127.0.0.1:{free_port()}/hemadose", tmp_path)
    assert running.process.wait(timeout=30) != 0
    assert "cannot open the database" in "".join(running.log) or "HEMADOSE_DB_URL" in "".join(running.log)
    assert get(f"{running.base}/readyz", timeout=1) == 0
    assert not api.accepted("setWebhook")


def test_sigterm_finishes_the_update_in_hand_then_exits_0(api: LoopbackBotApi, bot: WebhookBot):
    """The reply is held by a 429 (retry after 2 s) when SIGTERM comes: it is still sent, then exit 0."""
    api.fail("sendMessage", "429", retry_after=2)
    status: list[int] = []
    poster = threading.Thread(target=lambda: status.append(bot.post(said("/start"))))
    poster.start()
    with api._changed:  # until the 429 was given: the update is in hand
        assert api._changed.wait_for(lambda: api.refused, timeout=10)
    assert bot.process.poll() is None
    bot.process.terminate()  # SIGTERM
    deadline = time.monotonic() + 10
    while not any("stopping: no new updates" in line for line in bot.log):
        assert time.monotonic() < deadline, "".join(bot.log)
        time.sleep(0.02)
    assert poster.is_alive()  # the first update is still in hand (its reply waits out the 429)...
    assert post(bot.url, said("/help"), timeout=2) == 0  # ...and a new one is no longer taken
    assert bot.process.wait(timeout=20) == 0
    poster.join(timeout=10)
    assert status == [200]
    assert api.texts() == [WELCOME]
    log = "".join(bot.log)
    assert "stopping: no new updates; finishing 1 in hand" in log
    assert "Traceback" not in log
    assert get(f"{bot.base}/healthz", timeout=1) == 0  # no longer serving
    assert post(bot.url, said("/start"), timeout=2) == 0


def test_neither_the_secret_nor_the_token_is_logged_at_debug(api: LoopbackBotApi, tmp_path: Path):
    running = WebhookBot(api, f"sqlite:///{tmp_path / 'bot.db'}", tmp_path, HEMADOSE_LOG_LEVEL="DEBUG").serving()
    assert running.post(said("/start"), secret="wrong") == 403
    assert running.post(said("/start")) == 200
    assert running.stop() == 0
    log = "".join(running.log)
    assert "setWebhook" in log  # the call is logged, not what it carried
    assert SECRET not in log
    assert TOKEN not in log
    assert "/start" not in log


def test_webhook_mode_needs_the_secret(api: LoopbackBotApi, tmp_path: Path):
    running = WebhookBot(api, f"sqlite:///{tmp_path / 'bot.db'}", tmp_path, HEMADOSE_WEBHOOK_SECRET="")
    assert running.exited() == 2
    assert "".join(running.log).splitlines()[-1] == (
        "hemadose run: --webhook needs HEMADOSE_WEBHOOK_SECRET (1-256 of A-Z a-z 0-9 _ -), the secret Telegram "
        "sends with every update, so that nobody else can post updates to the bot."
    )
    assert api.calls == []


def test_a_secret_telegram_would_refuse_is_refused_before_going_online(api: LoopbackBotApi, tmp_path: Path):
    running = WebhookBot(api, f"sqlite:///{tmp_path / 'bot.db'}", tmp_path, HEMADOSE_WEBHOOK_SECRET="no spaces!")
    assert running.exited() == 2
    assert "HEMADOSE_WEBHOOK_SECRET: use 1 to 256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)" in "".join(
        running.log
    )
    assert TOKEN not in "".join(running.log)
    assert api.calls == []
