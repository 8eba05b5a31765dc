"""The consultation flow without any transport: shared machine, plain-data state, nothing lost."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import transitions

from core.models import DoseRequest
from flows import consultation
from flows.consultation import MACHINE, handle
from flows.replies import Env, LabRecord, PatientSummary, SaveConsultation, UserInput
from flows.request import build_request, step_for_field
from flows.state import ChatState

TODAY = dt.date(2026, 11, 22)
ENV = Env(today=TODAY)
ROMIPLOSTIM_VISIT = [
    "/new",
    "Romiplostim",
    "US label",
    "RX-12",
    "72",
    "Adult (18 or over)",
    "Today",
    "On treatment",
    "3",
    "2026-11-01",
    "2026-11-15",
    "32",
    "Yesterday",
]


def run(inputs: list[str], chat: ChatState | None = None, env: Env = ENV) -> tuple[ChatState, list[str]]:
    chat = chat or ChatState()
    texts: list[str] = []
    for typed in inputs:
        chat, outcome = handle(chat, UserInput(text=typed), env)
        texts += [reply.text for reply in outcome.replies]
    return chat, texts


def test_one_machine_serves_every_chat(monkeypatch: pytest.MonkeyPatch):
    built = []
    monkeypatch.setattr(transitions.Machine, "__init__", lambda *a, **k: built.append(a))
    chats = [run(ROMIPLOSTIM_VISIT)[0] for _ in range(3)]
    assert built == []  # no Machine per chat, nor per update
    assert all(chat.state == "review" for chat in chats)
    assert MACHINE.models == []  # nothing registered with the shared machine stays behind


def test_state_saved_and_restored_after_every_update_gives_the_same_conversation():
    straight, straight_texts = run([*ROMIPLOSTIM_VISIT, "Get recommendation"])
    chat = ChatState()
    restored_texts: list[str] = []
    for typed in [*ROMIPLOSTIM_VISIT, "Get recommendation"]:
        chat = ChatState.model_validate_json(chat.model_dump_json())  # a restart between every message
        chat, outcome = handle(chat, UserInput(text=typed), ENV)
        restored_texts += [reply.text for reply in outcome.replies]
    assert restored_texts == straight_texts
    assert chat.state == straight.state == "result"
    assert chat.response is not None
    assert chat.response["action"] == "increase"
    assert chat.response["total"] == {"amount": 288, "unit": "mcg"}


def test_recommendation_reply_in_words():
    _, texts = run([*ROMIPLOSTIM_VISIT, "Get recommendation"])
    assert texts[-1].splitlines() == [
        "Romiplostim · ITP · US label · patient RX-12",
        "",
        "INCREASE: 4 mcg/kg (was 3)",
        "Dose: 288 mcg (4 mcg/kg × 72 kg) · inject 0.58 mL",
        "Vials: 1 × 250 mcg + 1 × 125 mcg",
        "Next dose: Sun 2026-11-22",
        "Next check: platelet count on Sun 2026-11-29",
        "",
        "Warnings:",
        "⚠ Thrombotic and thromboembolic complications can occur; portal vein thrombosis has been reported "
        "in chronic liver disease. Do not aim for normal platelet counts.",
        "",
        "Rule: romiplostim.increase · Nplate US PI 2.2",
        "This supports, and does not replace, clinical judgement.",
    ]


def test_a_bad_answer_is_explained_and_nothing_is_lost():
    chat, _ = run(ROMIPLOSTIM_VISIT[:4])  # at the weight question
    before = chat.answers.model_dump()
    chat, texts = run(["seventy"], chat)
    assert texts == ["I could not read 'seventy' as the weight. Type a number, e.g. 72.\nBody weight in kg?"]
    assert chat.state == "weight"
    assert chat.answers.model_dump() == before


def test_unit_slip_is_confirmed_and_the_pending_answer_survives_a_restart():
    chat, _ = run([*ROMIPLOSTIM_VISIT[:11], "52000"])
    assert chat.answers.pending is not None
    assert chat.answers.pending.question == "52000 looks like a count per µL: 52 ×10^9/L?"
    chat = ChatState.model_validate_json(chat.model_dump_json())
    chat, texts = run(["Yes, use it"], chat)
    assert chat.answers.lab_value == Decimal(52)
    assert chat.answers.lab_unit == "10^9/L"
    assert texts == ["Date of that result?"]


def test_no_to_a_slip_asks_again_and_keeps_nothing_of_it():
    chat, _ = run([*ROMIPLOSTIM_VISIT[:11], "52000", "No, re-enter"])
    assert chat.answers.lab_value is None
    assert chat.answers.pending is None
    assert chat.state == "lab_value"


def test_back_keeps_answers_and_skips_steps_the_drug_does_not_need():
    chat, _ = run(["/new", "Hetrombopag", "ITP", "H-1"])  # hetrombopag has no weight or age step
    assert chat.state == "status"
    chat, texts = run(["back"], chat)
    assert chat.state == "patient"
    assert chat.answers.patient_label == "H-1"
    chat, texts = run(["back", "back"], chat)
    assert chat.state == "drug"  # the region step (one region) is passed over
    assert texts[-1] == "Which drug?"


def test_edit_that_opens_new_questions_asks_them_before_the_review():
    chat, _ = run(["/new", "Hetrombopag", "CIT", "H-2", "Starting now", "60", "Today"])
    assert chat.state == "review"
    chat, texts = run(["Edit treatment", "On treatment"], chat)
    assert chat.state == "dose_amount"  # not straight back to the review: the dose is needed now
    chat, texts = run(["7.5", "2026-11-01", "Yesterday"], chat)
    assert chat.state == "review"
    chat, texts = run(["Get recommendation"], chat)
    assert "INCREASE: 10 mg (was 7.5)" in texts[-1]


def test_stale_button_is_refused_and_the_question_asked_again():
    chat, _ = run(ROMIPLOSTIM_VISIT[:3])
    chat, outcome = handle(chat, UserInput(button="v:hetrombopag"), ENV)
    assert [r.text for r in outcome.replies] == [
        "That button belongs to an earlier message; here is where we are:",
        "Type a label for the patient (a code or initials, e.g. RX-12; no names needed).",
    ]


def test_save_emits_one_effect_and_a_second_press_does_not_save_twice():
    chat, _ = run([*ROMIPLOSTIM_VISIT, "Get recommendation"])
    chat, outcome = handle(chat, UserInput(button="save"), ENV)
    assert [type(e) for e in outcome.effects] == [SaveConsultation]
    chat, outcome = handle(chat, UserInput(button="save"), ENV)
    assert outcome.effects == []
    assert outcome.replies[0].text == "Already saved to RX-12."


def test_follow_up_prefills_from_the_record():
    record = PatientSummary(
        label="RX-12",
        weight_kg="72",
        weight_date=dt.date(2026, 11, 1),
        drug="romiplostim",
        indication="itp",
        region="us",
        dose_amount="4",
        dose_since=dt.date(2026, 11, 22),
        last_given=dt.date(2026, 11, 22),
        labs=(LabRecord(test="platelets", value="32", unit="10^9/L", date=dt.date(2026, 11, 21)),),
    )
    env = Env(today=dt.date(2026, 11, 29), patients={"RX-12": record})
    chat, texts = run(["/new", "Romiplostim", "US label", "RX-12"], env=env)
    assert chat.state == "weight"
    chat, outcome = handle(chat, UserInput(text="/help"), env)
    assert "Keep 72 kg, 2026-11-01" in outcome.replies[-1].button_labels()
    chat, _ = run(["Keep 72 kg, 2026-11-01", "Adult (18 or over)"], chat, env)
    chat, outcome = handle(chat, UserInput(text="/help"), env)
    assert "As saved: on 4 mcg/kg since 2026-11-22" in outcome.replies[-1].button_labels()
    chat, texts = run(
        [
            "As saved: on 4 mcg/kg since 2026-11-22",
            "Keep 4 mcg/kg",
            "Today",
            "Today",
            "60",
            "Today",
            "Get recommendation",
        ],
        chat,
        env,
    )
    request = chat.request
    assert request is not None
    assert [lab["date"] for lab in request["labs"]] == ["2026-11-21", "2026-11-29"]  # the record's result too
    assert "CONTINUE: 4 mcg/kg" in texts[-1]


def test_build_request_orders_record_results_first_and_validates():
    chat, _ = run(ROMIPLOSTIM_VISIT)
    payload = build_request(chat.answers, ENV)
    request = DoseRequest.model_validate(payload)
    assert request.current_dose is not None
    assert request.current_dose.amount == Decimal(3)
    assert [(lab.value, lab.date) for lab in request.labs] == [(Decimal(32), dt.date(2026, 11, 21))]


@pytest.mark.parametrize(
    ("field", "step"),
    [
        ("patient.weight_kg", "weight"),
        ("current_dose.last_given", "last_given"),
        ("current_dose.amount", "dose_amount"),
        ("labs[1].value", "lab_value"),
        ("procedure_date", "procedure_date"),
        (None, "drug"),
    ],
)
def test_a_field_the_core_refuses_leads_back_to_its_question(field: str | None, step: str):
    assert step_for_field(field) == step


def test_every_step_has_a_state_and_the_machine_knows_them():
    assert set(consultation.STATES) >= {step.name for step in consultation.STEPS}
    assert set(MACHINE.states) == set(consultation.STATES)
