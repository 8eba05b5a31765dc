"""One routing table (flows/routes.py) for Telegram and the terminal, and one flow run per update."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from bot import service as service_module
from bot.service import ChatService
from bot.storage import open_storage
from bot.telegram_app import COMMANDS
from flows.routes import Owner, route

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
TO_PATIENT = ["/new", "Romiplostim", "US label"]  # the next question is the patient's
SAVED_RX12 = [
    *TO_PATIENT, "RX-12", "72", "Adult (18 or over)", "Today", "On treatment", "3", "2026-11-01", "2026-11-22",
    "60", "Yesterday", "Get recommendation", "Save to patient",
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "button", "name", "owner", "argument"),
    [
        ("/history@hemadose_bot RX-12 ", None, "history", Owner.SERVICE, "RX-12"),
        (None, "hi:RX-12", "history", Owner.SERVICE, "RX-12"),
        ("/trend RX-12", None, "trend", Owner.SERVICE, "RX-12"),
        (None, "tr:RX-12", "trend", Owner.SERVICE, "RX-12"),
        ("/PATIENTS", None, "patients", Owner.SERVICE, ""),
        (None, "patients", "patients", Owner.SERVICE, ""),
        (None, "oc:t:5", "reminders", Owner.SERVICE, "t:5"),
        (None, "rm:p:3", "reminders", Owner.SERVICE, "p:3"),
        (None, "reminders", "reminders", Owner.SERVICE, ""),
        ("/settings timezone Asia/Tokyo", None, "settings", Owner.SERVICE, "timezone Asia/Tokyo"),
        ("/patient RX-12", None, "patient", Owner.SERVICE, "RX-12"),
        (None, "pr:e:l:17", "patient", Owner.SERVICE, "e:l:17"),
        (None, "undo", "undo", Owner.SERVICE, ""),
        (None, "fu:RX-12", "record", Owner.FLOW, "RX-12"),
        (None, "fc:RX-12", "record", Owner.FLOW, "RX-12"),
        ("/new", None, "new", Owner.FLOW, ""),
        (None, "new", "new", Owner.FLOW, ""),
        (" Back ", None, "back", Owner.FLOW, ""),
        (None, "cancel", "cancel", Owner.FLOW, ""),
        ("help", None, "help", Owner.FLOW, ""),
        ("/start", None, "start", Owner.FLOW, ""),
        ("/exit", None, "quit", Owner.TERMINAL, ""),
    ],
)
def test_each_command_button_and_word_has_one_route(
    text: str | None, button: str | None, name: str, owner: Owner, argument: str
):
    routed = route(text, button)
    assert routed.route is not None
    assert (routed.route.name, routed.route.owner, routed.argument) == (name, owner, argument)


def test_what_no_route_takes_is_an_answer_or_an_unknown_command():
    assert route("/frobnicate now") == (None, "/frobnicate", "now", None)
    assert route("72") == (None, None, "", None)
    assert route("back to work") == (None, None, "", None)  # a control word is the whole message
    assert route(None, "v:romiplostim") == (None, None, "", "v:romiplostim")


def test_telegrams_command_menu_is_the_tables():
    assert [(c.command, c.description) for c in COMMANDS] == [
        ("new", "start a consultation"),
        ("patients", "your patients"),
        ("history", "a patient's record: /history LABEL"),
        ("patient", "correct or delete a record: /patient LABEL"),
        ("trend", "a patient's trend chart: /trend LABEL"),
        ("reminders", "your reminders: pause, time, stop"),
        ("export", "a patient's note, CSV, FHIR or calendar: /export LABEL"),
        ("settings", "time zone"),
        ("cancel", "cancel the consultation"),
        ("help", "how to answer"),
    ]


async def test_the_patient_question_is_reached_in_one_flow_run_with_the_users_patients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    storage = await open_storage(f"sqlite:///{tmp_path}/runs.db")
    service = ChatService(storage, clock=lambda: NOW)
    for typed in SAVED_RX12:
        await service.handle("tg:1", "tg:1", text=typed)
    runs: list[str] = []
    real_run = service_module.run_flow

    def counted(chat: Any, message: Any, env: Any, **options: Any) -> Any:
        runs.append(chat.state)
        return real_run(chat, message, env, **options)

    monkeypatch.setattr(service_module, "run_flow", counted)
    for typed in TO_PATIENT[:-1]:
        await service.handle("tg:1", "tg:1", text=typed)
    runs.clear()
    [question] = await service.handle("tg:1", "tg:1", text="US label")
    assert runs == ["region"]  # exactly one run for the update that reaches the patient question
    assert question.text.startswith("Which patient? Choose one, or type a label for a new one")
    assert question.button_labels()[:1] == ["RX-12"]
    await service.handle("tg:1", "tg:1", text="RX-13")  # a new patient: the weight is asked next
    runs.clear()
    [again] = await service.handle("tg:1", "tg:1", text="Back")
    assert runs == ["weight"]  # Back to the patient question: one run too
    assert again == question
    await storage.close()
