"""Logs carry no token and no patient data at any level (bot/logs.py), in text and JSON.

python-telegram-bot and httpx log for real here, at DEBUG: a consultation through the offline Bot API,
and Bot API calls through python-telegram-bot's own httpx request layer (an httpx mock transport
answers instead of Telegram), and `hemadose run` as a process.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram import Update
from telegram.request import HTTPXRequest

from bot.logs import JsonFormatter, Redact, configure
from bot.offline import RecordingRequest, message_update
from bot.service import ChatService
from bot.storage import open_storage
from bot.telegram_app import build_application

FAKE_TOKEN = "918273645:AAHfakeSECRETpart_for-TESTS-0123456789"
SECRET = FAKE_TOKEN.split(":")[1]
LABEL = "QZ-4817"  # the patient's label
VALUE = "417"  # the patient's platelet count
WEIGHT = "83.7"
USER = 1001


@pytest.fixture
def root_logging() -> Iterator[None]:
    """`configure` replaces the root handlers; the test's own are put back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def without_times(logged: str, log_format: str) -> str:
    """The log without its timestamps: a time's milliseconds can read as the patient's value (",417")."""
    if log_format == "json":
        return "\n".join(
            json.dumps({k: v for k, v in json.loads(line).items() if k != "time"}) for line in logged.splitlines()
        )
    return re.sub(r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", "", logged)


def assert_clean(text: str) -> None:
    assert FAKE_TOKEN not in text
    assert SECRET not in text
    assert LABEL not in text
    assert LABEL.lower() not in text.lower()
    assert VALUE not in text
    assert WEIGHT not in text


async def consultation(tmp_path: Path) -> list[str]:
    """A consultation through the real Application and the offline Bot API, up to the platelet count;
    returns what the bot answered (to show the label was really sent)."""
    storage = await open_storage(f"sqlite:///{tmp_path}/logs.db")
    request = RecordingRequest()
    app = build_application(FAKE_TOKEN, ChatService(storage), frozenset({USER}), request=request, polling=False)
    await app.initialize()
    try:
        texts = ["/new", "Romiplostim", "US label", LABEL, WEIGHT, "adult", "Today", "On treatment", "3"]
        texts += ["2026-11-01", "2026-11-15", VALUE, "Yesterday", "Get recommendation", "Save to patient"]
        texts += ["/history " + LABEL]
        for number, text in enumerate(texts, 1):
            await app.process_update(Update.de_json(message_update(number, USER, USER, text), app.bot))
    finally:
        await app.shutdown()
        await storage.close()
    return [message.text for message in request.sent]


def telegram_over_httpx(seen: list[str]) -> HTTPXRequest:
    """python-telegram-bot's real httpx request layer, answered by a mock transport instead of Telegram."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        method = request.url.path.rsplit("/", 1)[-1]
        fields = {k: v[0] for k, v in urllib.parse.parse_qs(request.content.decode()).items()}
        params: dict[str, Any] = {k: json.loads(v) if v[:1] in "{[" or v.isdigit() else v for k, v in fields.items()}
        result: Any
        if method == "getUpdates":
            result = [message_update(7, USER, USER, f"{LABEL} platelets {VALUE}")]
        else:
            result = RecordingRequest().answer(method, params)
        return httpx.Response(200, json={"ok": True, "result": result})

    request = HTTPXRequest()
    request._client_kwargs["transport"] = httpx.MockTransport(answer)
    request._client = request._build_client()
    return request


async def bot_over_httpx() -> list[str]:
    seen: list[str] = []
    no_service: Any = None  # only the Bot is used
    app = build_application(FAKE_TOKEN, no_service, frozenset({USER}), request=telegram_over_httpx(seen), polling=False)
    await app.bot.initialize()
    try:
        updates = await app.bot.get_updates()
        assert updates[0].message is not None
        assert updates[0].message.text == f"{LABEL} platelets {VALUE}"
        await app.bot.send_message(USER, f"Patient {LABEL}: platelets {VALUE} ×10^9/L, weight {WEIGHT} kg")
    finally:
        await app.bot.shutdown()
    return seen


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_debug_logs_of_telegram_and_httpx_carry_no_token_and_no_patient_data(
    tmp_path: Path, root_logging: None, log_format: str
):
    out = io.StringIO()
    configure(logging.DEBUG, log_format, [FAKE_TOKEN], stream=out)  # type: ignore[arg-type]
    answered = await consultation(tmp_path)
    urls = await bot_over_httpx()
    logged = out.getvalue()
    # The data really went through: the bot answered with the label, the URLs carried the token.
    assert any(LABEL in text for text in answered)
    assert any(VALUE in text for text in answered)
    assert all(f"/bot{FAKE_TOKEN}/" in url for url in urls)
    assert_clean(without_times(logged, log_format))
    lines = logged.splitlines()
    if log_format == "json":
        entries = [json.loads(line) for line in lines]
        assert all(set(entry) == {"time", "level", "logger", "message"} for entry in entries)
        messages = [(entry["logger"], entry["level"], entry["message"]) for entry in entries]
    else:
        messages = [(line.split()[3].rstrip(":"), line.split()[2], line) for line in lines]
    # python-telegram-bot and httpx did log at DEBUG and INFO, their contents replaced.
    assert any(
        name == "telegram.ext.ExtBot"
        and level == "DEBUG"
        and "Calling Bot API endpoint `sendMessage` with parameters `<redacted>`" in message
        for name, level, message in messages
    )
    assert any(
        "Call to Bot API endpoint `getUpdates` finished with return value `<redacted>`" in message
        for _, _, message in messages
    )
    assert any("Set Bot API URL: https://api.telegram.org/bot<token>" in message for _, _, message in messages)
    assert any(
        name == "httpx" and 'HTTP Request: POST https://api.telegram.org/bot<token>/sendMessage "HTTP/1.1 200 OK"' in m
        for name, _, m in messages
    )
    assert len(lines) > 50


def test_the_filter_cleans_exceptions_and_token_shaped_strings_in_any_logger(root_logging: None):
    out = io.StringIO()
    configure(logging.DEBUG, "text", [FAKE_TOKEN], stream=out)
    log = logging.getLogger("hemadose.telegram")
    try:
        raise RuntimeError(f"POST https://api.telegram.org/bot{FAKE_TOKEN}/getMe failed")
    except RuntimeError:
        log.exception("start-up failed")
    logging.getLogger("elsewhere").warning("another bot: bot5550001:OtherSecret_xyz, alone 5550001:%s", "K" * 35)
    logging.getLogger("telegram.ext.Updater").debug("Update: %s", {"text": f"{LABEL} {VALUE}", "chat": 1})
    logged = out.getvalue()
    assert_clean(without_times(logged, "text"))
    assert "OtherSecret_xyz" not in logged
    assert "K" * 35 not in logged
    assert "RuntimeError: POST https://api.telegram.org/bot<token>/getMe failed" in logged
    assert "another bot: bot<token>, alone <token>" in logged
    assert "Update: {'text': '<redacted>', 'chat': 1}" in logged


def test_json_lines_have_time_level_logger_message():
    record = logging.LogRecord("hemadose.reminders", logging.WARNING, __file__, 1, "sent %d", (3,), None)
    record.created = 1764662400.25  # 2025-12-02 08:00:00.250 UTC
    redact = Redact([FAKE_TOKEN])
    assert redact.filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry == {
        "time": "2025-12-02T08:00:00.250+00:00",
        "level": "WARNING",
        "logger": "hemadose.reminders",
        "message": "sent 3",
    }


def hemadose_run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "HEMADOSE_"))}
    exe = Path(sys.executable).parent / "hemadose"
    return subprocess.run([str(exe), "run"], env=clean | env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_hemadose_run_at_debug_logs_no_token(tmp_path: Path, log_format: str):
    """The process at DEBUG, Telegram unreachable (a proxy nobody listens on): python-telegram-bot and
    httpx log their start-up and the failed call, never the token."""
    done = hemadose_run(
        {
            "TELEGRAM_BOT_TOKEN": FAKE_TOKEN,
            "HEMADOSE_ALLOWED_USERS": "1",
            "HEMADOSE_DATA_DIR": str(tmp_path),
            "HEMADOSE_LOG_LEVEL": "debug",
            "HEMADOSE_LOG_FORMAT": log_format,
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "ALL_PROXY": "http://127.0.0.1:9",
        }
    )
    assert done.returncode == 1
    assert SECRET not in done.stderr + done.stdout
    assert "Set Bot API URL: https://api.telegram.org/bot<token>" in done.stderr
    # The failed call's class may differ under load (a refused connect, or a time-out): the one line is what counts.
    assert done.stderr.splitlines()[-1].startswith("hemadose run: cannot reach Telegram: ")
    if log_format == "json":
        logged = [line for line in done.stderr.splitlines() if line.startswith("{")]
        assert len(logged) > 5
        assert all(set(json.loads(line)) >= {"time", "level", "logger", "message"} for line in logged)


def test_a_log_setting_that_is_not_known_is_one_line():
    done = hemadose_run({"HEMADOSE_LOG_FORMAT": "xml"})
    assert done.returncode == 2
    assert done.stderr == "hemadose run: HEMADOSE_LOG_FORMAT: 'xml' is not a log format; use text or json\n"
    done = hemadose_run({"HEMADOSE_LOG_LEVEL": "loud"})
    assert done.stderr == (
        "hemadose run: HEMADOSE_LOG_LEVEL: 'loud' is not a log level; use DEBUG, INFO, WARNING, ERROR\n"
    )
