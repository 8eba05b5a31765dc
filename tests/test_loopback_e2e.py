"""The real `hemadose run` process against the loopback Bot API (issue 13, item 4): long polling,
SQLite in a temporary folder, the token and the Bot API address from the environment.

Every wait is on a recorded call, with a time-out; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.offline import TOKEN
from tests.loopback_bot_api import Fault, LoopbackBotApi
from tests.webhook_bot import HemadoseRun

HEMADOSE = Path(sys.executable).parent / "hemadose"
USER = 1001
WELCOME = (
    "Welcome to HemaDose, a dosing assistant for romiplostim, hetrombopag, lusutrombopag and luspatercept.\n"
    "I ask for the drug, the patient (a label you choose: no names needed), the dose and the latest results, "
    "and give the next dose with its date, the next blood test and the safety warnings, each with the rule "
    "and source behind it.\n"
    "This supports, and does not replace, clinical judgement.\n"
    "Commands: /new a consultation, /patients your patients, /history LABEL a patient's record, "
    "/trend LABEL a patient's chart, /reminders, /settings, /cancel, /help."
)


class Bot(HemadoseRun):
    """`hemadose run` polling the loopback Bot API, on SQLite in `folder`."""

    def __init__(self, api: LoopbackBotApi, folder: Path) -> None:
        super().__init__(api, f"sqlite:///{folder / 'bot.db'}", folder)


@pytest.fixture
def api() -> Iterator[LoopbackBotApi]:
    with LoopbackBotApi(limits=False) as server:
        yield server


@pytest.fixture
def bot(api: LoopbackBotApi, tmp_path: Path) -> Iterator[Bot]:
    running = Bot(api, tmp_path)
    try:
        api.polled(timeout=15)
    except AssertionError:
        running.stop()
        raise AssertionError("".join(running.log)) from None
    yield running
    running.stop()


def reply_to(api: LoopbackBotApi, text: str, replies: int = 1) -> list[str]:
    """Send `text` as the user; the texts of the `replies` messages it brought."""
    before = len(api.accepted("sendMessage"))
    api.say(USER, text)
    return [call.params["text"] for call in api.wait_for("sendMessage", before + replies)[before:]]


def press(api: LoopbackBotApi, label: str, replies: int = 1) -> list[str]:
    """Press `label` on the bot's last message; the texts of the replies it brought."""
    calls = api.accepted("sendMessage")
    before = len(calls)
    api.press(USER, calls[-1].result, label)
    return [call.params["text"] for call in api.wait_for("sendMessage", before + replies)[before:]]


def test_a_consultation_through_the_real_process(api: LoopbackBotApi, bot: Bot, tmp_path: Path):
    assert [call.method for call in api.calls[:3]] == ["getMe", "setMyCommands", "deleteWebhook"]
    assert [c["command"] for c in api.commands] == [
        "new",
        "patients",
        "history",
        "patient",
        "trend",
        "reminders",
        "export",
        "settings",
        "cancel",
        "help",
    ]
    assert reply_to(api, "/start") == [WELCOME]
    assert reply_to(api, "/new") == ["Which drug?"]
    assert api.accepted("sendMessage")[-1].params["reply_markup"]["inline_keyboard"][0] == [
        {"text": "Romiplostim", "callback_data": "v:romiplostim"},
        {"text": "Hetrombopag", "callback_data": "v:hetrombopag"},
    ]
    assert press(api, "Romiplostim") == ["Which label's rules?"]
    assert press(api, "US label") == [
        "Type a label for the patient (a code with a digit, e.g. RX-12 or bed 4; no names)."
    ]
    assert reply_to(api, "LB-1") == ["Body weight in kg?"]
    assert reply_to(api, "72") == ["Age in years? Children's weight is reassessed every 12 weeks."]
    assert press(api, "Adult (18 or over)") == ["When was that weight measured?"]
    assert press(api, "Today") == ["Treatment status?"]
    assert press(api, "On treatment") == ["Dose now, in mcg/kg?"]
    today = dt.datetime.now(dt.UTC).date()  # the bot's time zone is UTC
    assert reply_to(api, "3") == ["Date of the first dose at this level?"]
    assert reply_to(api, (today - dt.timedelta(days=30)).isoformat()) == ["Date of the last dose given?"]
    assert reply_to(api, (today - dt.timedelta(days=7)).isoformat()) == [
        "Latest platelet count? In ×10^9/L, e.g. 32 (or 32000/µL, 32 G/L)."
    ]
    assert reply_to(api, "32") == ["Date of that result?"]
    [summary] = press(api, "Yesterday")
    assert summary.startswith("Please check before I calculate:\n• Drug: Romiplostim\n")
    assert f"• Latest result: 32 ×10^9/L on {today - dt.timedelta(days=1)}" in summary
    next_dose, next_check = today, today + dt.timedelta(days=7)
    assert press(api, "✅ Get recommendation") == [
        "Romiplostim · ITP · US label · patient LB-1\n\n"
        "INCREASE: 4 mcg/kg (was 3)\n"
        "Dose: 288 mcg (4 mcg/kg × 72 kg) = 0.58 mL of the 500 mcg/mL solution\n"
        "Vials: 1 × 250 mcg + 1 × 125 mcg\n"
        f"Next dose: {next_dose:%a %Y-%m-%d}\n"
        f"Next check: platelet count on {next_check:%a %Y-%m-%d}\n\n"
        "Warnings:\n"
        "⚠ Thrombotic and thromboembolic complications can occur; portal vein thrombosis has been reported in "
        "chronic liver disease. Do not aim for normal platelet counts.\n\n"
        "Rule: romiplostim.increase · Nplate US PI 2.2\n"
        "HemaDose rules v1.1. This supports, and does not replace, clinical judgement."
    ]
    assert press(api, "Save to patient") == ["Saved to LB-1: dose, result and recommendation."]
    # every button press was answered once (its spinner stops)
    pressed = [str(update["update_id"]) for update in api.pushed if "callback_query" in update]
    assert len(pressed) == 8
    assert [call.params["callback_query_id"] for call in api.accepted("answerCallbackQuery")] == pressed
    assert bot.stop() == 0
    assert len(api.texts(USER)) == 16  # one reply to each of the 16 updates, nothing more
    assert not api.unknown
    assert not api.refused
    with sqlite3.connect(tmp_path / "bot.db") as db:
        assert db.execute("SELECT label FROM patients").fetchall() == [("LB-1",)]


def test_sigterm_stops_the_process_cleanly(api: LoopbackBotApi, bot: Bot):
    assert reply_to(api, "/start") == [WELCOME]
    assert bot.stop() == 0
    log = "".join(bot.log)
    assert "Application is stopping" in log
    assert "Application.stop() complete" in log
    assert "Traceback" not in log
    # the last poll confirmed the handled update, so a restart would not handle it again
    assert api.accepted("getUpdates")[-1].params["offset"] == 2


def test_a_429_on_send_message_is_retried_and_the_message_arrives_once(api: LoopbackBotApi, bot: Bot):
    api.fail("sendMessage", "429", retry_after=1)
    assert reply_to(api, "/start") == [WELCOME]
    [(refused, code)] = api.refused
    assert code == 429
    assert api.texts() == [WELCOME]
    assert api.accepted("sendMessage")[0].time - refused.time >= 1.0  # it waited as asked


@pytest.mark.parametrize("fault", ["502", "drop"])
def test_a_failed_poll_is_retried(api: LoopbackBotApi, tmp_path: Path, fault: Fault):
    """A 502 from a proxy, or a connection dropped, on getUpdates: python-telegram-bot polls again."""
    api.fail("getUpdates", fault)
    running = Bot(api, tmp_path)
    try:
        api.say(USER, "/start")
        [reply] = api.wait_for("sendMessage", 1, timeout=15)
        assert reply.params["text"] == WELCOME
        assert [(call.method, code) for call, code in api.refused] == [("getUpdates", int(fault == "502") * 502)]
    finally:
        assert running.stop() == 0


def run_once(env: dict[str, str], folder: Path) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith(("HEMADOSE_", "TELEGRAM_"))}
    base |= {"HEMADOSE_ALLOWED_USERS": str(USER), "HEMADOSE_DATA_DIR": str(folder)}
    return subprocess.run([str(HEMADOSE), "run"], env=base | env, capture_output=True, text=True, timeout=30)


def test_a_token_the_bot_api_refuses_stops_the_start_with_one_line(api: LoopbackBotApi, tmp_path: Path):
    done = run_once({"TELEGRAM_BOT_TOKEN": "123456:WRONG", "HEMADOSE_TELEGRAM_BASE_URL": api.base_url}, tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "hemadose run: Telegram refused the token; check TELEGRAM_BOT_TOKEN (from @BotFather)."
    )
    assert api.calls == []


def test_a_base_url_that_is_not_http_is_refused_before_going_online(tmp_path: Path):
    done = run_once({"TELEGRAM_BOT_TOKEN": TOKEN, "HEMADOSE_TELEGRAM_BASE_URL": "api.telegram.org"}, tmp_path)
    assert done.returncode == 2
    assert (
        "HEMADOSE_TELEGRAM_BASE_URL: 'api.telegram.org' is not an http(s) address; e.g. https://api.telegram.org"
        in (done.stderr)
    )
