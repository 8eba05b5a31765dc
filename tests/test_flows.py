"""The consultation flow without any transport: shared machine, plain-data state, nothing lost."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

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
        "Dose: 288 mcg (4 mcg/kg × 72 kg) = 0.58 mL of the 500 mcg/mL solution",
        "Vials: 1 × 250 mcg + 1 × 125 mcg",
        "Next dose: Sun 2026-11-22",
        "Next check: platelet count on Sun 2026-11-29",
        "",
        "Warnings:",
        "⚠ Thrombotic and thromboembolic complications can occur; portal vein thrombosis has been reported "
        "in chronic liver disease. Do not aim for normal platelet counts.",
        "",
        "Rule: romiplostim.increase · Nplate US PI 2.2",
        "HemaDose rules v1.1. This supports, and does not replace, clinical judgement.",
    ]


def test_a_bad_answer_is_explained_and_nothing_is_lost():
    chat, _ = run(ROMIPLOSTIM_VISIT[:4])  # at the weight question
    before = chat.answers.model_dump()
    chat, texts = run(["seventy"], chat)
    assert texts == ["I could not read 'seventy' as the weight. Type a number, e.g. 72.\nBody weight in kg?"]
    assert chat.state == "weight"
    assert chat.answers.model_dump() == before


def test_unit_slip_is_confirmed_and_the_pending_answer_survives_a_restart():
    chat, _ = run([*ROMIPLOSTIM_VISIT[:10], "52000"])
    assert chat.answers.pending is not None
    assert chat.answers.pending.question == "52000 looks like a count per µL: 52 ×10^9/L?"
    chat = ChatState.model_validate_json(chat.model_dump_json())
    chat, texts = run(["Yes, use it"], chat)
    assert chat.answers.lab_value == Decimal(52)
    assert chat.answers.lab_unit == "10^9/L"
    assert texts == ["Date of that result?"]


def test_no_to_a_slip_asks_again_and_keeps_nothing_of_it():
    chat, _ = run([*ROMIPLOSTIM_VISIT[:10], "52000", "No, re-enter"])
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


# --- follow-up "Same regimen, new result", early refer, the result state ---------------------------

FOLLOW_UP_DAY = dt.date(2026, 11, 29)


def _record(**facts: object) -> PatientSummary:
    return PatientSummary.model_validate(facts)


# drug: (the record, the follow-up's answers, a full consultation's answers by question, the decision)
FOLLOW_UPS: dict[str, tuple[PatientSummary, list[str], dict[str, str], str]] = {
    "romiplostim": (
        _record(
            label="RX-12",
            weight_kg="72",
            weight_date="2026-11-22",
            drug="romiplostim",
            indication="itp",
            region="us",
            dose_amount="3",
            dose_since="2026-11-01",
            last_given="2026-11-22",
            labs=[{"test": "platelets", "value": "60", "unit": "10^9/L", "date": "2026-11-21"}],
        ),
        ["45", "Today"],
        {
            "weight": "keep",
            "age": "adult",
            "status": "same",
            "dose_amount": "3",
            "dose_since": "2026-11-01",
            "last_given": "2026-11-22",
            "lab_value": "45",
            "lab_date": "today",
        },
        "romiplostim.increase",
    ),
    "hetrombopag": (
        _record(
            label="H-7",
            drug="hetrombopag",
            indication="itp",
            region="cn",
            dose_amount="5",
            dose_since="2026-10-01",
            last_given="2026-11-28",
            labs=[{"test": "platelets", "value": "120", "unit": "10^9/L", "date": "2026-11-21"}],
        ),
        ["300", "Today"],
        {
            "status": "same",
            "dose_amount": "5",
            "dose_since": "2026-10-01",
            "last_given": "2026-11-28",
            "lab_value": "300",
            "lab_date": "today",
        },
        "hetrombopag.reduce",
    ),
    "lusutrombopag": (
        _record(
            label="L-22",
            child_pugh="A",
            drug="lusutrombopag",
            indication="cld_procedure",
            region="jp",
            dose_amount="3",
            dose_since="2026-11-25",
            last_given="2026-11-28",
            procedure_date="2026-12-06",
            labs=[{"test": "platelets", "value": "35", "unit": "10^9/L", "date": "2026-11-24"}],
        ),
        ["58", "Today"],
        {
            "child_pugh": "A",
            "procedure_date": "2026-12-06",
            "status": "same",
            "dose_amount": "3",
            "dose_since": "2026-11-25",
            "last_given": "2026-11-28",
            "lab_value": "58",
            "lab_date": "today",
        },
        "lusutrombopag.jp_stop",
    ),
    "luspatercept": (
        _record(
            label="M-23",
            weight_kg="70",
            weight_date="2026-11-08",
            drug="luspatercept",
            indication="mds",
            region="us",
            dose_amount="1",
            dose_since="2026-10-18",
            last_given="2026-11-08",
            doses_at_level=2,
            labs=[{"test": "hemoglobin", "value": "9.2", "unit": "g/dL", "date": "2026-11-08"}],
            transfusions=[{"date": "2026-11-15", "units": "1"}],
        ),
        ["None", "8.9", "Today", "None missing"],  # a reaction grade, then the transfusions asked apart
        {
            "weight": "keep",
            "status": "same",
            "dose_amount": "1",
            "dose_since": "2026-10-18",
            "last_given": "2026-11-08",
            "doses_at_level": "2",
            "adverse": "none",
            "lab_value": "8.9",
            "lab_date": "today",
            "transfusions": "done",
        },
        "luspatercept.increase",
    ),
}


def _press(chat: ChatState, data: str, env: Env) -> tuple[ChatState, list[str]]:
    chat, outcome = handle(chat, UserInput(button=data), env)
    return chat, [reply.text for reply in outcome.replies]


@pytest.mark.parametrize("drug", FOLLOW_UPS)
def test_follow_up_asks_only_the_new_results_and_gives_the_full_consultations_card(drug: str):
    record, answers, by_question, rule = FOLLOW_UPS[drug]
    env = Env(today=FOLLOW_UP_DAY, patients={record.label: record})
    chat, texts = _press(ChatState(), f"fu:{record.label}", env)
    asked = [texts[-1]]
    for typed in answers:
        chat, texts = run([typed], chat, env)
        asked.append(texts[-1])
    assert chat.state == "result"  # no review screen
    assert chat.response is not None
    assert chat.response["rationale"][0]["rule"] == rule
    follow_up_card = asked[-1]
    # The same facts through the full consultation (the record's values offered as Keep), question by question.
    full, texts = _press(ChatState(), f"fc:{record.label}", env)
    for _ in range(30):
        if full.state == "result":
            break
        full, texts = run([by_question.get(full.state, "confirm" if full.state == "review" else "?")], full, env)
        assert full.state != "idle", texts
    assert full.state == "result", texts
    assert texts[-1] == follow_up_card
    assert full.request == chat.request


def test_follow_up_questions_are_the_new_result_and_its_date():
    record = FOLLOW_UPS["romiplostim"][0]
    env = Env(today=FOLLOW_UP_DAY, patients={record.label: record})
    chat, texts = _press(ChatState(), "fu:RX-12", env)
    assert texts == ["New platelet count for RX-12 (romiplostim 3 mcg/kg)? In ×10^9/L, e.g. 32 (or 32000/µL, 32 G/L)."]
    chat, outcome = handle(chat, UserInput(text="45"), env)
    assert [r.text for r in outcome.replies] == ["Date of that result?"]
    assert outcome.replies[0].button_labels()[:2] == ["Today", "Yesterday"]


def test_follow_up_asks_what_the_record_lacks():
    # After an increase the record's last dose is at the old level; a week old for a daily drug: asked.
    record = FOLLOW_UPS["hetrombopag"][0].model_copy(update={"last_given": dt.date(2026, 11, 20)})
    env = Env(today=FOLLOW_UP_DAY, patients={"H-7": record})
    chat, texts = _press(ChatState(), "fu:H-7", env)
    assert chat.state == "last_given"
    assert texts[-1] == "Date of the last dose given?"
    chat, texts = run(["Yesterday", "300", "Today"], chat, env)
    assert chat.request is not None
    assert chat.request["current_dose"]["last_given"] == "2026-11-28"


def test_follow_up_of_an_unknown_patient_or_one_without_treatment():
    chat, texts = _press(ChatState(), "fu:NOPE", Env(today=FOLLOW_UP_DAY))
    assert texts == ["You have no patient labelled 'NOPE'. /patients lists your labels."]
    assert chat.state == "idle"
    stopped = PatientSummary(label="X-1")
    chat, outcome = handle(ChatState(), UserInput(button="fu:X-1"), Env(today=FOLLOW_UP_DAY, patients={"X-1": stopped}))
    assert outcome.replies[0].text.startswith("No current treatment is on record for X-1")
    assert outcome.replies[0].button_labels() == ["Full consultation", "New consultation"]


def test_follow_up_from_a_reminder_closes_a_consultation_under_way():
    record = FOLLOW_UPS["romiplostim"][0]
    env = Env(today=FOLLOW_UP_DAY, patients={record.label: record})
    chat, _ = run(["/new", "Hetrombopag"], env=env)
    chat, texts = _press(chat, "fu:RX-12", env)
    assert texts[0] == "The consultation under way is closed; nothing from it was saved."
    assert chat.state == "lab_value"
    assert chat.answers.drug == "romiplostim"


def test_back_from_the_follow_ups_first_question_shows_the_record_again():
    record = FOLLOW_UPS["romiplostim"][0]
    env = Env(today=FOLLOW_UP_DAY, patients={record.label: record})
    chat, _ = _press(ChatState(), "fu:RX-12", env)
    chat, texts = run(["45", "back"], chat, env)
    assert chat.state == "lab_value"  # the new result is asked again
    chat, texts = run(["back"], chat, env)
    assert chat.state == "idle"
    assert texts[-1].startswith("Patient RX-12\nRomiplostim · ITP · US label")


@pytest.mark.parametrize(
    ("inputs", "rule"),
    [
        (["/new", "Romiplostim", "US label", "INF-1", "8", "0.5", "Today", "Starting now"], "romiplostim.age"),
        (["/new", "Hetrombopag", "ITP", "H-6", "On treatment", "6", "yes", "2026-11-01", "Today"], "dose.not_a_level"),
        (
            ["/new", "Lusutrombopag", "Japan label", "L-C", "C", "in 10 days", "Not started yet"],
            "lusutrombopag.child_pugh_c",
        ),
        (["/new", "Lusutrombopag", "US label", "L-20", "A", "in 5 days", "Not started yet"], "lusutrombopag.too_late"),
        (
            [
                "/new",
                "Luspatercept",
                "MDS",
                "M-H",
                "70",
                "On treatment",
                "1 mg/kg",
                "2026-10-11",
                "2026-11-01",
                "2",
                "Grade 3+ hypersensitivity",
            ],
            "luspatercept.hypersensitivity",
        ),
        (
            [
                "/new",
                "Luspatercept",
                "MDS",
                "M-A",
                "70",
                "On treatment",
                "1 mg/kg",
                "2026-10-11",
                "2026-11-01",
                "2",
                "Grade 3 or more",
            ],
            "luspatercept.adverse_reaction",
        ),
    ],
)
def test_an_answer_that_decides_without_a_lab_ends_the_questions(inputs: list[str], rule: str):
    chat, texts = run(inputs)
    assert chat.state == "result"
    assert chat.response is not None
    assert chat.response["rationale"][0]["rule"] == rule
    assert f"Rule: {rule} · " in texts[-1]
    assert not any("platelet count?" in text or "haemoglobin?" in text for text in texts)


def test_the_questions_go_on_when_only_the_missing_lab_refers():
    chat, texts = run(["/new", "Romiplostim", "US label", "RX-1", "72", "Adult (18 or over)", "Starting now"])
    assert chat.state == "lab_value"
    assert texts[-1].startswith("Latest platelet count?")


def test_help_in_the_result_state_shows_the_recommendation_again():
    chat, texts = run([*ROMIPLOSTIM_VISIT, "Get recommendation"])
    card = texts[-1]
    restarted = ChatState.model_validate_json(chat.model_dump_json())  # a new `hemadose chat` run
    chat, outcome = handle(restarted, UserInput(text="/help"), ENV)
    assert outcome.replies[-1].text == card
    assert "The recommendation is above" not in "".join(r.text for r in outcome.replies)
    assert outcome.replies[-1].button_labels() == ["Save to patient", "Why?", "New consultation"]


def test_set_reminders_is_not_offered_again_once_set():
    chat, _ = run([*ROMIPLOSTIM_VISIT, "Get recommendation", "Save to patient"])
    env = Env(today=TODAY, time_zone="Europe/London", now=dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC))
    chat, outcome = handle(chat, UserInput(text="Set reminders"), env)
    chat, outcome = handle(chat, UserInput(text="08:00"), env)
    assert outcome.replies[-1].button_labels() == ["Change reminders", "Why?", "New consultation"]
    for typed in ("Why?", "/help", "what now"):
        chat, outcome = handle(chat, UserInput(text=typed), env)
        assert "Set reminders" not in outcome.replies[-1].button_labels(), typed
    chat, outcome = handle(chat, UserInput(button="remind"), env)
    assert outcome.replies[-1].text == (
        "Reminders are already set for this recommendation; /reminders shows and changes them."
    )
    # A new recommendation may have its own.
    chat, outcome = handle(chat, UserInput(text="/new"), env)
    assert chat.reminders_set is False


async def test_messages_to_a_recommendation_per_drug():
    from tests.benchmarks.count_messages import table

    assert await table() == {
        "romiplostim": (13, 4),
        "hetrombopag": (11, 4),
        "lusutrombopag": (10, 4),
        "luspatercept": (17, 5),
    }


def test_luspatercept_follow_up_takes_no_reaction_and_no_missing_transfusion_in_one_press():
    record = FOLLOW_UPS["luspatercept"][0]
    env = Env(today=FOLLOW_UP_DAY, patients={record.label: record})
    chat, texts = _press(ChatState(), "fu:M-23", env)
    assert texts == [
        "Any adverse reaction now in M-23 (worst grade)? And is any red-cell transfusion since 2026-10-18 missing "
        "from the record (on record: 2026-11-15 1 u)?"
    ]
    chat, texts = run(["None, and no transfusion missing", "8.9", "Today"], chat, env)
    assert chat.state == "result"
    assert chat.request is not None
    assert chat.request["transfusions"] == [{"date": "2026-11-15", "units": 1}]  # the record's, kept
    assert "adverse_reaction" not in chat.request  # none (the default)
    assert chat.answers.adverse == "none"


async def test_a_follow_up_button_reads_only_the_pressing_users_record(tmp_path: Path):
    from bot.service import ChatService
    from bot.storage import open_storage

    storage = await open_storage(f"sqlite:///{tmp_path}/fu.db")
    service = ChatService(storage, clock=lambda: dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC))
    for typed in [*ROMIPLOSTIM_VISIT[:9], "2026-11-22", "60", "Yesterday", "Get recommendation", "Save to patient"]:
        await service.handle("tg:1", "tg:1", text=typed)
    [mine] = await service.handle("tg:1", "tg:1", button="fu:RX-12")
    assert mine.text.startswith("New platelet count for RX-12 (romiplostim 3 mcg/kg)?")
    [theirs] = await service.handle("tg:2", "tg:2", button="fu:RX-12")
    assert theirs.text == "You have no patient labelled 'RX-12'. /patients lists your labels."
    await storage.close()


@pytest.mark.parametrize(
    "inputs",
    [
        # 250 is in the two-week reduce range: the previous week's count would be asked next
        [
            "/new",
            "Romiplostim",
            "US label",
            "RX-1",
            "72",
            "Adult (18 or over)",
            "On treatment",
            "3",
            "2026-11-01",
            "2026-11-10",
            "250",
            "2026-11-13",
        ],
        # the earlier haemoglobin, transfusions and baseline would be asked next
        [
            "/new",
            "Luspatercept",
            "Beta-thalassaemia",
            "B-1",
            "60",
            "On treatment",
            "1 mg/kg",
            "2026-10-11",
            "2026-11-01",
            "2",
            "None",
            "8.9",
            "2026-11-12",
        ],
    ],
)
def test_a_result_too_old_to_decide_on_ends_the_questions(inputs: list[str]):
    chat, texts = run(inputs)
    assert chat.state == "result"
    assert chat.response is not None
    assert chat.response["rationale"][0]["rule"] == "lab.stale"
    assert "Rule: lab.stale · " in texts[-1]
    assert not any(word in text for text in texts for word in ("previous week", "3 weeks before", "transfusions"))


def test_back_from_a_follow_ups_card_returns_to_its_last_question():
    record = FOLLOW_UPS["romiplostim"][0]
    env = Env(today=FOLLOW_UP_DAY, patients={record.label: record})
    chat, _ = _press(ChatState(), "fu:RX-12", env)
    chat, texts = run(["45", "Today", "back"], chat, env)
    assert chat.state == "lab_date"
    assert texts[-1] == "Date of that result?"
    chat, texts = run(["Yesterday"], chat, env)
    assert chat.state == "result"
    assert chat.request is not None
    assert chat.request["labs"][-1]["date"] == "2026-11-28"


def test_a_follow_up_on_hold_keeps_the_last_dose_before_the_hold():
    record = FOLLOW_UPS["romiplostim"][0].model_copy(
        update={"on_hold": True, "last_given": dt.date(2026, 11, 8), "dose_since": dt.date(2026, 10, 1)}
    )
    env = Env(today=FOLLOW_UP_DAY, patients={record.label: record})
    chat, _ = _press(ChatState(), "fu:RX-12", env)
    assert chat.state == "lab_value"
    chat, _ = run(["150", "Today"], chat, env)
    assert chat.response is not None
    assert chat.response["rationale"][0]["rule"] == "romiplostim.resume"
