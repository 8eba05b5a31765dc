"""The consultation flow without any transport: shared machine, plain-data state, nothing lost."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import transitions

from core.models import DoseRequest
from flows import consultation, dependants, steps
from flows.consultation import handle
from flows.machine import MACHINE
from flows.replies import Env, LabRecord, PatientSummary, SaveConsultation, TransfusionRecord, UserInput
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
        "Type a label for the patient (a code with a digit, e.g. RX-12 or bed 4; no names).",
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


QUESTIONS = [
    "drug", "indication", "region", "patient", "weight", "age", "weight_date", "child_pugh", "procedure_date",
    "status", "dose_amount", "dose_since", "last_given", "doses_at_level", "adverse", "lab_value", "lab_date",
    "previous_value", "previous_date", "counts", "transfusions", "baseline",
]  # fmt: skip


def _destinations(trigger: str, source: str) -> list[str | None]:
    """Where `trigger` goes from `source`, in the order transitions tries them, each with its condition."""
    return [
        f"{t.dest} if {getattr(t.conditions[0].func, '__name__', t.conditions[0].func)}" if t.conditions else t.dest
        for t in MACHINE.get_transitions(trigger=trigger, source=source)
    ]


def _asked(questions: list[str]) -> list[str]:
    return [f"{question} if asks_{question}" for question in questions]


def test_the_machine_has_the_questions_in_order_each_entered_and_linked():
    """Written out, not derived from STEPS: a question dropped, added or reordered fails here."""
    assert [step.name for step in steps.STEPS] == QUESTIONS
    assert list(MACHINE.states) == ["idle", *QUESTIONS, "review", "result", "reminder_zone", "reminder_time"]
    entering = {name: [getattr(c, "__name__", c) for c in state.on_enter] for name, state in MACHINE.states.items()}
    assert entering == {
        "idle": [],
        **{question: ["enter_step"] for question in QUESTIONS},
        "review": ["enter_review"],
        "result": ["enter_result"],
        "reminder_zone": ["enter_reminder_zone"],
        "reminder_time": ["enter_reminder_time"],
    }
    # Each move is a ladder: the first question in its direction whose condition holds, else the end.
    assert _destinations("start", "idle") == [*_asked(QUESTIONS), "review"]
    for index, question in enumerate(QUESTIONS):
        assert _destinations("advance", question) == [*_asked(QUESTIONS[index + 1 :]), "review"], question
        earlier = QUESTIONS[index - 1 :: -1] if index else ["drug"]
        assert _destinations("retreat", question) == [*_asked(earlier), "idle"], question
        assert _destinations(f"edit_{question}", "review") == [*_asked(QUESTIONS[index:]), "review"]
        assert _destinations(f"edit_{question}", "result") == [*_asked(QUESTIONS[index:]), "review"]
        assert _destinations("decide", question) == ["result"]
    assert _destinations("advance", "baseline") == ["review"]
    assert _destinations("retreat", "review") == [*_asked(QUESTIONS[::-1]), "idle"]
    assert _destinations("finish_edit", "baseline") == ["review"]
    assert _destinations("confirm", "review") == ["result"]
    assert _destinations("retreat", "result") == ["review"]
    assert [t.after[0] for t in MACHINE.get_transitions(trigger="retreat", source="lab_value", dest="idle")] == [
        "show_record"
    ]


def test_a_question_that_does_not_apply_is_never_entered(monkeypatch: pytest.MonkeyPatch):
    """Skipping is the transitions' conditions: only the questions asked are entered, forward and back."""
    entered: list[str] = []
    enter = consultation.Conversation.enter_step

    def recording(self: consultation.Conversation, event: transitions.EventData) -> None:
        entered.append(self.state.value)
        enter(self, event)

    monkeypatch.setattr(consultation.Conversation, "enter_step", recording)
    chat, _ = run(ROMIPLOSTIM_VISIT[:4])  # to the weight: indication is not asked (one for romiplostim)
    assert entered == ["drug", "region", "patient", "weight"]
    run(["Back", "Back"], chat)
    assert entered[4:] == ["patient", "region"]


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
            ["/new", "Lusutrombopag", "Japan label", "L-C1", "C", "in 10 days", "Not started yet"],
            "lusutrombopag.child_pugh_c",
        ),
        (["/new", "Lusutrombopag", "US label", "L-20", "A", "in 5 days", "Not started yet"], "lusutrombopag.too_late"),
        (
            [
                "/new",
                "Luspatercept",
                "MDS",
                "M-H1",
                "70",
                "Today",
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
                "M-A1",
                "70",
                "Today",
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
    chat, texts = run(["/new", "Romiplostim", "US label", "RX-1", "72", "Adult (18 or over)", "Today", "Starting now"])
    assert chat.state == "lab_value"
    assert texts[-1].startswith("Latest platelet count?")


def test_help_in_the_result_state_shows_the_recommendation_again():
    chat, texts = run([*ROMIPLOSTIM_VISIT, "Get recommendation"])
    card = texts[-1]
    restarted = ChatState.model_validate_json(chat.model_dump_json())  # a new `hemadose chat` run
    chat, outcome = handle(restarted, UserInput(text="/help"), ENV)
    assert outcome.replies[-1].text == card
    assert "The recommendation is above" not in "".join(r.text for r in outcome.replies)
    assert outcome.replies[-1].button_labels() == ["Save to patient", "Why?", "New consultation", "Trend"]


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
    from tests.message_counts import table

    assert await table() == {
        "romiplostim": (14, 4),
        "hetrombopag": (11, 4),
        "lusutrombopag": (10, 4),
        "luspatercept": (18, 5),
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
    for typed in [*ROMIPLOSTIM_VISIT[:10], "2026-11-22", "60", "Yesterday", "Get recommendation", "Save to patient"]:
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
            "Today",
            "On treatment",
            "3",
            "2026-11-01",
            "2026-11-10",
            "250",
            "2026-11-13",
            "Yes, use it",  # said at once: 9 days old, the rules will ask to repeat it
        ],
        # the earlier haemoglobin, transfusions and baseline would be asked next
        [
            "/new",
            "Luspatercept",
            "Beta-thalassaemia",
            "B-1",
            "60",
            "Today",
            "On treatment",
            "1 mg/kg",
            "2026-10-11",
            "2026-11-01",
            "2",
            "None",
            "8.9",
            "2026-11-12",
            "Yes, use it",
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


RECORD_RX = PatientSummary(
    label="RX-12",
    weight_kg="72",
    weight_date=None,
    age_years=None,
    drug="romiplostim",
    indication="itp",
    region="us",
    dose_amount="3",
    dose_since=dt.date(2026, 10, 1),
    last_given=dt.date(2026, 11, 15),
    labs=(
        LabRecord(test="platelets", value="62", unit="10^9/L", date=dt.date(2026, 10, 8)),
        LabRecord(test="platelets", value="80", unit="10^9/L", date=dt.date(2026, 10, 15)),
        LabRecord(test="platelets", value="70", unit="10^9/L", date=dt.date(2026, 9, 20)),  # before `since`
    ),
)


RECORD_ENV = Env(today=TODAY, patients={"RX-12": RECORD_RX})


def _labels(chat: ChatState, env: Env = ENV) -> list[str]:
    _, outcome = handle(chat, UserInput(text="/help"), env)
    return [label for label in outcome.replies[-1].button_labels() if label not in ("⬅ Back", "✖ Cancel", "? Help")]


def test_counts_since_since_are_shown_from_the_record_in_one_message_and_sent():
    chat, _ = run(
        ["/new", "Romiplostim", "US label", "RX-12", "Keep 72 kg, date not known", "Adult (18 or over)"], env=RECORD_ENV
    )
    chat, texts = run(
        [
            "As saved: on 3 mcg/kg since 2026-10-01",
            "Keep 3 mcg/kg",
            "Keep 2026-10-01",
            "Keep 2026-11-15",
            "75",
            "Yesterday",
        ],
        chat,
        RECORD_ENV,
    )
    assert texts[-1] == (
        "Platelet counts since 2026-10-01 (the first dose at this level): 2026-10-08 62, 2026-10-15 80, "
        "2026-11-21 75. Counts are checked monthly instead of weekly only when enough of them since then are all "
        "50 to 200. Add any others as 'YYYY-MM-DD value' (one per message), or press Done."
    )
    chat, texts = run(["2026-11-01 52000/uL"], chat, RECORD_ENV)
    assert texts == [
        "Platelet counts since 2026-10-01 (the first dose at this level): 2026-10-08 62, 2026-10-15 80, "
        "2026-11-01 52000/µL, 2026-11-21 75. Counts are checked monthly instead of weekly only when enough of them "
        "since then are all 50 to 200. Add any others as 'YYYY-MM-DD value' (one per message), or press Done."
    ]
    chat, texts = run(["2026-11-08 1200", "Yes, use it"], chat, RECORD_ENV)
    assert texts[0] == "1200 ×10^9/L is unusual. Is that right?"
    assert "2026-11-08 1200, 2026-11-21 75." in texts[1]  # confirmed, and the list stays open
    chat, texts = run(["Done", "Get recommendation"], chat, RECORD_ENV)
    assert chat.request is not None
    assert [(lab["date"], lab["value"]) for lab in chat.request["labs"]] == [
        ("2026-09-20", 70),
        ("2026-10-08", 62),
        ("2026-10-15", 80),
        ("2026-11-01", 52000),
        ("2026-11-08", 1200),
        ("2026-11-21", 75),
    ]


@pytest.mark.parametrize(
    ("since", "count", "status"),
    [
        ("2026-10-26", "80", "On treatment"),  # 27 days at the level: under romiplostim.STABLE_DAYS
        ("2026-10-01", "40", "On treatment"),  # below 50: not stable whatever the others say
        ("2026-10-01", "190", "On hold"),  # on hold: no continue
    ],
)
def test_counts_since_since_are_not_asked_where_they_cannot_matter(since: str, count: str, status: str):
    chat, texts = run(
        [
            "/new",
            "Romiplostim",
            "US label",
            "RX-1",
            "72",
            "Adult (18 or over)",
            "Today",
            status,
            "3",
            since,
            "2026-11-15",
            count,
            "Yesterday",
        ]
    )
    assert chat.state == "review"
    assert not any("Platelet counts since" in text for text in texts)


def test_hetrombopag_counts_asked_in_the_indications_range():
    chat, texts = run(
        ["/new", "Hetrombopag", "CIT", "H-1", "On treatment", "7.5", "2026-10-01", "Today", "120", "Today"]
    )
    assert texts[-1].startswith("Platelet counts since 2026-10-01 (the first dose at this level): 2026-11-22 120.")
    assert "all 100 to 250." in texts[-1]
    chat, texts = run(["2026-10-01 90", "Done", "Get recommendation"], chat)
    assert chat.response is not None
    assert chat.response["next_monitoring"]["date"] == "2026-11-29"  # 90 is under the CIT low: weekly


def test_transfusions_are_asked_from_since_and_prefilled_from_the_record():
    record = PatientSummary(
        label="BT-1",
        weight_kg="60",
        weight_date=dt.date(2026, 11, 1),
        drug="luspatercept",
        indication="beta_thalassemia",
        region="us",
        dose_amount="1",
        dose_since=dt.date(2026, 6, 7),
        last_given=dt.date(2026, 11, 1),
        doses_at_level=8,
        baseline_rbc_units_per_12_weeks="8",
        transfusions=(
            TransfusionRecord(date=dt.date(2026, 5, 1), units="3"),  # before `since`: not listed
            TransfusionRecord(date=dt.date(2026, 6, 14), units="4"),
            TransfusionRecord(date=dt.date(2026, 7, 12), units="4"),
        ),
    )
    env = Env(today=TODAY, patients={"BT-1": record})
    chat, texts = run(
        [
            "/new",
            "Luspatercept",
            "Beta-thalassaemia",
            "BT-1",
            "Keep 60 kg, 2026-11-01",
            "As saved: on 1 mg/kg since 2026-06-07",
            "Keep 1 mg/kg",
            "Keep 2026-06-07",
            "Keep 2026-11-01",
            "Keep 8 (recorded)",
            "None",
            "9.0",
            "Yesterday",
            "None / skip",
        ],
        env=env,
    )
    assert texts[-1] == (
        "Red-cell transfusions from 2026-06-07 (the first dose at this level) to today: send each as "
        "'YYYY-MM-DD units' (e.g. 2026-11-08 2), then press Done. So far: 2026-06-14: 4 u; 2026-07-12: 4 u."
    )
    assert _labels(chat, env) == ["Done"]


def test_the_transfusion_period_starts_3_weeks_before_the_haemoglobin_when_that_is_earlier():
    chat, texts = run(
        [
            "/new",
            "Luspatercept",
            "MDS",
            "M-1",
            "70",
            "Today",
            "On treatment",
            "1",
            "2026-11-15",
            "Same as start (2026-11-15)",
            "1",
            "None",
            "8.9",
            "Yesterday",
            "None / skip",
        ]
    )
    assert texts[-1].startswith(
        "Red-cell transfusions from 2026-10-31 (3 weeks before the haemoglobin; the first dose at this level was "
        "2026-11-15) to today:"
    )
    chat, texts = run(["2026-10-20 2"], chat)
    assert texts[0].startswith("2026-10-20 is before 2026-10-31; transfusions before then are not read.")


def test_a_new_weight_has_its_date_asked_and_kept_weight_carries_the_records_date():
    chat, texts = run(["/new", "Luspatercept", "MDS", "M-2", "70"])
    assert texts[-1] == "When was that weight measured?"
    assert _labels(chat) == ["Today", "Yesterday", "Not known"]
    chat, _ = run(["Not known"], chat)
    assert chat.answers.weight_date is None
    assert chat.answers.weight_date_unknown
    chat, texts = run(["/new", "Romiplostim", "US label", "RX-12"], env=RECORD_ENV)
    assert _labels(chat, RECORD_ENV) == ["Keep 72 kg, date not known"]
    chat, texts = run(["Keep 72 kg, date not known"], chat, RECORD_ENV)
    assert texts == ["Age in years? Children's weight is reassessed every 12 weeks."]
    chat, texts = run(["Adult (18 or over)"], chat, RECORD_ENV)
    assert texts == ["Treatment status?"]  # no weighing question for the record's weight
    assert build_request(chat.answers, ENV)["patient"]["weight_date"] is None


def test_400_is_asked_as_pounds():
    chat, texts = run(["/new", "Luspatercept", "MDS", "M-3", "400"])
    assert texts[-1] == "400 kg is not possible; is it pounds: 400 lb = 181.4 kg?"
    chat, texts = run(["Yes, use it"], chat)
    assert chat.answers.weight_kg == Decimal("181.4")
    assert texts == ["When was that weight measured?"]


@pytest.mark.parametrize(
    ("inputs", "fixed", "with_record"),
    [
        (
            ["/new", "Romiplostim", "US label", "RX-12", "Keep 72 kg, date not known", "Adult (18 or over)"],
            ["Starting now", "On treatment", "On hold"],
            ["As saved: on 3 mcg/kg since 2026-10-01"],
        ),
        (
            [
                "/new",
                "Romiplostim",
                "US label",
                "RX-12",
                "Keep 72 kg, date not known",
                "Adult (18 or over)",
                "As saved: on 3 mcg/kg since 2026-10-01",
                "Keep 3 mcg/kg",
            ],
            ["Today", "Yesterday"],
            ["Keep 2026-10-01"],
        ),
        (
            [
                "/new",
                "Romiplostim",
                "US label",
                "RX-12",
                "Keep 72 kg, date not known",
                "Adult (18 or over)",
                "As saved: on 3 mcg/kg since 2026-10-01",
                "Keep 3 mcg/kg",
                "Keep 2026-10-01",
            ],
            ["Today", "Yesterday", "Same as start (2026-10-01)"],
            ["Keep 2026-11-15"],
        ),
    ],
)
def test_record_dependent_options_come_after_the_fixed_ones(
    inputs: list[str], fixed: list[str], with_record: list[str]
):
    chat, _ = run(inputs, env=RECORD_ENV)
    assert _labels(chat, RECORD_ENV) == [*fixed, *with_record]


def test_dose_levels_keep_their_numbers_and_keep_comes_last():
    record = PatientSummary(
        label="H-9",
        drug="hetrombopag",
        indication="itp",
        region="cn",
        dose_amount="5",
        dose_since=dt.date(2026, 11, 1),
        last_given=dt.date(2026, 11, 21),
    )
    env = Env(today=TODAY, patients={"H-9": record})
    fresh, _ = run(["/new", "Hetrombopag", "ITP", "H-8", "On treatment"])
    saved, _ = run(["/new", "Hetrombopag", "ITP", "H-9", "As saved: on 5 mg since 2026-11-01"], env=env)
    assert _labels(fresh) == ["2.5 mg", "3.75 mg", "5 mg", "7.5 mg"]
    assert _labels(saved, env) == ["2.5 mg", "3.75 mg", "5 mg", "7.5 mg", "Keep 5 mg"]


def test_a_status_the_record_contradicts_is_confirmed_first():
    chat, _ = run(
        ["/new", "Romiplostim", "US label", "RX-12", "Keep 72 kg, date not known", "Adult (18 or over)"], env=RECORD_ENV
    )
    chat, texts = run(["Starting now"], chat, RECORD_ENV)
    assert texts == ["The record shows RX-12 on 3 mcg/kg since 2026-10-01. Start from scratch (no current dose)?"]
    assert chat.answers.status is None
    chat, texts = run(["Yes, use it"], chat, RECORD_ENV)
    assert chat.answers.status == "new"
    assert texts == ["Latest platelet count? In ×10^9/L, e.g. 32 (or 32000/µL, 32 G/L)."]


def test_every_dependant_is_a_step_and_the_table_is_transitive():
    assert dependants.dependants_of("dose_amount") == [
        "dose_since",
        "last_given",
        "doses_at_level",
        "counts",
        "transfusions",
    ]
    assert dependants.dependants_of("weight") == ["weight_date"]
    assert "dose_amount" in dependants.dependants_of("drug")
    assert dependants.dependants_of("adverse") == []


def test_editing_the_dose_re_asks_since_last_dose_and_doses_then_the_review():
    chat, _ = run(
        [
            "/new",
            "Romiplostim",
            "US label",
            "RX-2",
            "72",
            "Adult (18 or over)",
            "Today",
            "On treatment",
            "9",
            "2026-10-18",
            "2026-11-15",
            "30",
            "Yesterday",
        ]
    )
    chat, texts = run(["Edit dose", "10"], chat)
    assert texts[-1] == "Date of the first dose at this level?"
    assert chat.answers.dose_since is None
    assert chat.answers.last_given is None
    chat, texts = run(
        ["2026-11-15", "Same as start (2026-11-15)", "Estimate from the dates", "Get recommendation"], chat
    )
    assert chat.response is not None
    assert (chat.response["action"], chat.response["rationale"][0]["rule"]) == ("continue", "romiplostim.max_dose")


def test_editing_a_luspatercept_dose_re_asks_its_history_and_keeps_the_transfusions_entered():
    chat, _ = run(
        [
            "/new",
            "Luspatercept",
            "MDS",
            "M-4",
            "70",
            "Today",
            "On treatment",
            "1",
            "2026-10-11",
            "2026-11-01",
            "2",
            "None",
            "8.9",
            "Yesterday",
            "None / skip",
            "2026-11-08 1",
            "Done",
        ]
    )
    assert chat.state == "review"
    chat, texts = run(["Edit dose", "1.33"], chat)
    assert texts[-1] == "Date of the first dose at this level?"
    chat, texts = run(["2026-11-01", "Same as start (2026-11-01)"], chat)
    assert texts[-1] == "How many doses at this level so far?"
    chat, texts = run(["1"], chat)
    assert texts[-1].startswith("Red-cell transfusions from 2026-10-31 (3 weeks before the haemoglobin;")
    assert texts[-1].endswith("So far: 2026-11-08: 1 u.")  # what was entered is offered, not lost
    chat, texts = run(["Done"], chat)
    assert texts[-1].startswith("Please check before I calculate:")


def test_the_same_answer_again_re_asks_nothing():
    chat, _ = run([*ROMIPLOSTIM_VISIT])
    chat, texts = run(["Edit dose", "3"], chat)
    assert texts[-1].startswith("Please check before I calculate:")
    assert chat.answers.dose_since == dt.date(2026, 11, 1)


def test_changing_the_result_date_re_asks_the_previous_week_count():
    chat, _ = run(
        [
            "/new",
            "Romiplostim",
            "US label",
            "RX-3",
            "72",
            "Adult (18 or over)",
            "Today",
            "On treatment",
            "3",
            "2026-11-01",
            "2026-11-15",
            "250",
            "Yesterday",
            "230",
            "2026-11-14",
        ]
    )
    assert chat.state == "review"
    chat, texts = run(["Edit latest result", "250", "Today"], chat)
    assert texts[-1] == (
        "The previous week's platelet count (taken 2026-11-12 to 2026-11-18)? The dose is reduced only if both are "
        "above 200."
    )


def test_a_stale_count_is_said_at_once_and_yes_leads_to_a_repeat_refer():
    chat, texts = run([*ROMIPLOSTIM_VISIT[:11], "32", "2026-11-14"])
    assert texts[-1] == (
        "That count is 8 days old: the rules need one from the last 7 days, so the recommendation will be to repeat "
        "it. Use it anyway, or No to enter a newer one?"
    )
    chat, texts = run(["Yes, use it", "Get recommendation"], chat)
    assert chat.response is not None
    assert chat.response["action"] == "refer"
    assert chat.response["rationale"][0]["rule"] == "lab.stale"


def test_a_lusutrombopag_course_under_way_has_no_stale_question():
    _chat, texts = run(
        [
            "/new",
            "Lusutrombopag",
            "US label",
            "L-1",
            "A",
            "2026-12-01",
            "Course started",
            "3",
            "2026-11-20",
            "Yesterday",
            "40",
            "2026-11-10",
        ]
    )
    assert not any("days old" in text for text in texts)


@pytest.mark.parametrize(
    ("typed", "reply"),
    [
        (
            "2026 -11-08 1",
            "'2026 -11-08 1' has a space inside the date. Send the transfusion as a date without "
            "spaces, then the units: e.g. '2026-11-08 1'.",
        ),
        ("2026-11-08 two", "After the date, send the number of units, e.g. '2026-11-08 2' (not 'two')."),
        ("2026-11-31 1", "2026-11-31 is not a real date. Write it as YYYY-MM-DD, e.g. 2026-11-22."),
        ("lots", "Send each transfusion as a date, then the units: e.g. '2026-11-08 2', or press Done."),
    ],
)
def test_a_mistyped_transfusion_line_gets_a_specific_reply(typed: str, reply: str):
    chat, _ = run(
        [
            "/new",
            "Luspatercept",
            "MDS",
            "M-5",
            "70",
            "Today",
            "On treatment",
            "1",
            "2026-10-11",
            "2026-11-01",
            "2",
            "None",
            "8.9",
            "Yesterday",
            "None / skip",
        ]
    )
    chat, texts = run([typed], chat)
    assert texts[0].split("\n")[0] == reply
    assert chat.answers.transfusions == []


def test_a_changed_drug_takes_the_records_results_of_its_own_test():
    record = RECORD_RX.model_copy(
        update={
            "labs": (
                *RECORD_RX.labs,
                LabRecord(test="hemoglobin", value="8.1", unit="g/dL", date=dt.date(2026, 11, 10)),
            )
        }
    )
    env = Env(today=TODAY, patients={"RX-12": record})
    chat, _ = run(["/new", "Romiplostim", "US label", "RX-12"], env=env)
    assert {lab.test for lab in chat.answers.history_labs} == {"platelets"}
    chat, _ = run(["back", "back", "back", "Luspatercept"], chat, env)
    assert [(lab.test, lab.date) for lab in chat.answers.history_labs] == [("hemoglobin", dt.date(2026, 11, 10))]


def test_a_count_line_without_a_value_or_before_since_is_explained():
    chat, _ = run(
        [
            "/new",
            "Romiplostim",
            "US label",
            "RX-5",
            "72",
            "Adult (18 or over)",
            "Today",
            "On treatment",
            "3",
            "2026-10-01",
            "2026-11-15",
            "80",
            "Yesterday",
        ]
    )
    chat, texts = run(["2026-11-01"], chat)
    assert texts[0].split("\n")[0] == "Send each count as a date, then the value: e.g. '2026-11-08 80', or press Done."
    chat, texts = run(["2026-11-01 80 mmol"], chat)
    assert texts[0].split("\n")[0].startswith("I don't know the unit 'mmol' for the platelet count.")
    assert chat.answers.added_labs == []


def test_counts_and_transfusions_added_by_mistake_can_be_removed():
    chat, _ = run(
        [
            "/new",
            "Romiplostim",
            "US label",
            "RX-6",
            "72",
            "Adult (18 or over)",
            "Today",
            "On treatment",
            "3",
            "2026-10-01",
            "2026-11-15",
            "80",
            "Yesterday",
            "2026-10-15 90",
        ]
    )
    assert _labels(chat) == ["Done", "Remove the ones added"]
    chat, texts = run(["Remove the ones added"], chat)
    assert chat.answers.added_labs == []
    assert texts[-1].startswith("Platelet counts since 2026-10-01 (the first dose at this level): 2026-11-21 80.")
    chat, _ = run(
        [
            "/new",
            "Luspatercept",
            "MDS",
            "M-6",
            "70",
            "Today",
            "On treatment",
            "1",
            "2026-10-11",
            "2026-11-01",
            "2",
            "None",
            "8.9",
            "Yesterday",
            "None / skip",
            "2026-11-08 1",
        ]
    )
    assert _labels(chat) == ["Done", "Remove the ones added"]
    chat, texts = run(["Remove the ones added"], chat)
    assert chat.answers.transfusions == []
    assert texts[-1].endswith("So far: none yet.")
