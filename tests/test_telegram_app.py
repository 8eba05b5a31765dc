"""The Telegram adapter's edges: faults, non-text messages, access policy, start-up refusals."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from telegram import Update

from bot.offline import TOKEN, RecordingRequest, message_update
from bot.telegram_app import FAULT, NOT_TEXT, REFUSAL, build_application
from flows.replies import Reply


class BrokenService:
    async def handle(self, *args: object, **kwargs: object) -> list[Reply]:
        raise RuntimeError("boom")


async def process(update: dict, allowed: frozenset[int] | None = frozenset({1001})) -> RecordingRequest:  # type: ignore[type-arg]
    request = RecordingRequest()
    app = build_application(TOKEN, BrokenService(), allowed, request=request, polling=False)  # type: ignore[arg-type]
    await app.initialize()
    try:
        await app.process_update(Update.de_json(update, app.bot))
    finally:
        await app.shutdown()
    return request


async def test_a_fault_is_logged_without_patient_data_and_the_user_is_told(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.ERROR, logger="hemadose.telegram")
    request = await process(message_update(1, 1001, 1001, "RX-12 platelets 32"))
    assert [m.text for m in request.sent] == [FAULT]
    assert "handler failed: RuntimeError" in caplog.text
    assert "RX-12" not in caplog.text
    # A traceback's line numbers, and the log record's own (telegram_app.py:232), are not patient data.
    logged = re.sub(r"line \d+|\.py:\d+", "line N", caplog.text)
    assert "32" not in logged.replace("handler failed", "")


async def test_a_photo_gets_a_plain_answer():
    update = message_update(1, 1001, 1001, "x")
    del update["message"]["text"], update["message"]["entities"]
    update["message"]["photo"] = [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]
    request = await process(update)
    assert [m.text for m in request.sent] == [NOT_TEXT]


async def test_an_unlisted_user_is_refused_before_any_handler(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="hemadose.telegram")
    request = await process(message_update(1, 4242, 4242, "/start"))
    assert [m.text for m in request.sent] == [REFUSAL]
    assert "4242" not in caplog.text


def hemadose_run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "HEMADOSE_"))}
    exe = Path(sys.executable).parent / "hemadose"
    return subprocess.run([str(exe), "run"], env=clean | env, capture_output=True, text=True, timeout=60, check=False)


def test_run_needs_a_token():
    done = hemadose_run({})
    assert done.returncode == 2
    assert "set TELEGRAM_BOT_TOKEN" in done.stderr


def test_run_refuses_to_start_without_an_access_policy():
    done = hemadose_run({"TELEGRAM_BOT_TOKEN": "123456:SECRET-VALUE"})
    assert done.returncode == 2
    assert "refusing to start without an access policy" in done.stderr
    assert "SECRET-VALUE" not in done.stderr + done.stdout


def test_run_refuses_a_database_url_it_cannot_use_before_going_online():
    done = hemadose_run(
        {"TELEGRAM_BOT_TOKEN": "123456:SECRET-VALUE", "HEMADOSE_ALLOWED_USERS": "1", "HEMADOSE_DB_URL": "nosuch://db"}
    )
    assert done.returncode == 2
    assert "HEMADOSE_DB_URL: not a database URL I can use" in done.stderr
    assert "Traceback" not in done.stderr


async def test_the_bot_delivers_reminders_through_its_job_queue(tmp_path: Path):
    """The job start_reminders adds sends a due reminder through the Application's bot, word for word."""
    import datetime as dt

    from bot.jobs import REMINDER_TICK_SECONDS, start_reminders
    from bot.sending import TelegramSender
    from bot.service import ChatService
    from bot.storage import open_storage
    from tests.helpers import dose, hetrombopag, platelets, save_with_reminders

    now = dt.datetime(2026, 11, 22, 7, 59, tzinfo=dt.UTC)
    storage = await open_storage(f"sqlite:///{tmp_path}/bot.db")
    service = ChatService(storage, "UTC", clock=lambda: now)
    request = RecordingRequest()
    app = build_application(TOKEN, service, frozenset({1001}), request=request, polling=False)
    start_reminders(app, service)
    [job] = app.job_queue.get_jobs_by_name("reminders")  # type: ignore[union-attr]
    assert cast(Any, job.trigger).interval.total_seconds() == REMINDER_TICK_SECONDS
    assert isinstance(service.reminders.sender, TelegramSender)
    assert service.reminders.sender.limits is True
    assert service.reminders.chats == "tg:"  # the terminal's reminders are never sent to Telegram
    daily = hetrombopag(current_dose=dose(5, "mg", "2026-11-01", "2026-11-21"), labs=[platelets(80, "2026-11-21")])
    await save_with_reminders(service, 1001, "H1", daily, "08:00", "UTC")
    await app.initialize()
    try:
        await job.run(app)  # one tick before 08:00: nothing due
        assert request.sent == []
        now = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
        await job.run(app)
        await job.run(app)  # sent once, not again on the next tick
    finally:
        await app.shutdown()
        await storage.close()
    assert [(m.chat_id, m.text, m.buttons) for m in request.sent] == [
        (
            1001,
            "Dose reminder · patient H1\n"
            "Take Hetrombopag today, Sun 2026-11-22: 5 mg by mouth once daily; take on an empty stomach, with no "
            "food for 2 hours after; dairy products and mineral supplements at least 2 hours after the dose.\n"
            "Confirm when it is done. Never take or give two doses to make up for one.",
            [
                [
                    {"callback_data": "oc:t:1", "text": "Taken"},
                    {"callback_data": "oc:s:1", "text": "Skip"},
                    {"callback_data": "oc:z:1", "text": "Snooze 1 h"},
                ]
            ],
        )
    ]


def test_run_without_network_fails_in_one_line_and_closes_nothing_it_did_not_open(tmp_path: Path):
    """No route to Telegram (a proxy nobody listens on): one line naming the cause, status 1; the
    shutdown hooks (run after any stop) do not crash on the storage that was never opened."""
    done = hemadose_run(
        {
            "TELEGRAM_BOT_TOKEN": "123456:SECRET-VALUE",
            "HEMADOSE_ALLOWED_USERS": "1",
            "HEMADOSE_DATA_DIR": str(tmp_path),
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "ALL_PROXY": "http://127.0.0.1:9",
        }
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("hemadose run: cannot reach Telegram: httpx.ConnectError: ")
    assert done.stderr.endswith("; check the network/token.\n")
    assert done.stderr.count("\n") == 1
    assert "SECRET-VALUE" not in done.stderr


def test_run_refuses_a_database_in_a_missing_folder(tmp_path: Path):
    done = hemadose_run(
        {
            "TELEGRAM_BOT_TOKEN": "123456:SECRET-VALUE",
            "HEMADOSE_ALLOWED_USERS": "1",
            "HEMADOSE_DB_URL": str(tmp_path / "nowhere" / "bot.db"),
        }
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"hemadose run: HEMADOSE_DB_URL: {tmp_path / 'nowhere'} does not exist; "
        "create the folder first or choose another path\n"
    )
    assert not (tmp_path / "nowhere").exists()


def test_run_refuses_a_malformed_user_id_in_one_line():
    done = hemadose_run({"TELEGRAM_BOT_TOKEN": "123456:SECRET-VALUE", "HEMADOSE_ALLOWED_USERS": "12,abc"})
    assert done.returncode == 2
    assert done.stderr == "hemadose run: HEMADOSE_ALLOWED_USERS: 'abc' is not a Telegram user id (digits) or *\n"


def test_run_help_lists_every_environment_variable_with_its_meaning():
    from bot.cli import RUN_EPILOG
    from bot.settings import ENVIRONMENT, Settings

    exe = Path(sys.executable).parent / "hemadose"
    shown = subprocess.run([str(exe), "run", "--help"], capture_output=True, text=True, check=True).stdout
    variables = {field.alias for field in Settings.model_fields.values()}
    assert variables == set(ENVIRONMENT)
    assert "environment variables:\n  TELEGRAM_BOT_TOKEN      the bot's token from @BotFather" in shown
    for name, meaning in ENVIRONMENT.items():
        assert name in shown
        words = " ".join(RUN_EPILOG.split(name, 1)[1].split("\n  H")[0].split("\n\n")[0].split())
        assert words == meaning, name


async def test_the_shutdown_hook_copes_with_a_start_up_that_never_opened_the_storage(tmp_path: Path):
    from bot.telegram_app import serve

    app = build_application(TOKEN, None, frozenset({1001}), request=RecordingRequest(), polling=False)
    serve(app, f"sqlite:///{tmp_path}/bot.db", "UTC")
    assert app.post_shutdown is not None
    assert app.post_init is not None
    await app.post_shutdown(app)  # post_init never ran (getMe failed): nothing to close, no KeyError
    await app.initialize()
    await app.post_init(app)
    assert "service" in app.bot_data
    await app.post_shutdown(app)
    assert "service" not in app.bot_data
    await app.shutdown()


def test_run_refuses_an_empty_or_malformed_token_before_going_online():
    empty = hemadose_run({"TELEGRAM_BOT_TOKEN": " ", "HEMADOSE_ALLOWED_USERS": "1"})
    assert empty.returncode == 2
    assert empty.stderr == "hemadose run: set TELEGRAM_BOT_TOKEN (from @BotFather) in the environment.\n"
    malformed = hemadose_run({"TELEGRAM_BOT_TOKEN": "SECRET-VALUE", "HEMADOSE_ALLOWED_USERS": "1"})
    assert malformed.returncode == 2
    assert malformed.stderr.startswith("hemadose run: TELEGRAM_BOT_TOKEN does not look like a bot token")
    assert "SECRET-VALUE" not in malformed.stderr


class RefusingRequest(RecordingRequest):
    """Telegram's answer to a revoked or mistyped token."""

    async def do_request(self, *args: object, **kwargs: object) -> tuple[int, bytes]:
        return 401, b'{"ok": false, "error_code": 401, "description": "Unauthorized"}'


def test_run_with_a_token_telegram_refuses_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    import bot.telegram_app
    from bot.cli import main

    real = bot.telegram_app.build_application

    def refused(token: str, service: object, allowed: frozenset[int] | None, **options: object) -> object:
        return real(token, None, allowed, request=RefusingRequest())

    monkeypatch.setattr(bot.telegram_app, "build_application", refused)
    for name in [k for k in os.environ if k.startswith(("TELEGRAM_", "HEMADOSE_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:SECRET-VALUE")
    monkeypatch.setenv("HEMADOSE_ALLOWED_USERS", "1")
    monkeypatch.setenv("HEMADOSE_DATA_DIR", str(tmp_path))
    assert main(["run"]) == 2
    out, err = capsys.readouterr()
    assert err == "hemadose run: Telegram refused the token; check TELEGRAM_BOT_TOKEN (from @BotFather).\n"
    assert out == ""
