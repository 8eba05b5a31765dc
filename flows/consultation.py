"""The consultation flow: one `transitions` machine shared by every chat.

A chat's state is plain data (`ChatState`). For each update a `Conversation` is built around it,
the shared machine's events are fired for it, and the changed data is handed back to be saved.
Nothing is bound to the conversation object (no `add_model`), so taking part costs a chat
microseconds and no memory once the update is done. Steps a drug does not need are skipped on
entry, in the direction of travel, so `back` and `next` both pass over them.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from pydantic import ValidationError
from transitions import EventData, Machine

from core import RequestError, recommend
from core.models import DoseRequest
from flows import followup, render
from flows import reminders as reminder_words
from flows.conversation_parts import CHANGE_REMINDERS, NAVIGATION, NEW, NO, YES
from flows.parsing import Problem
from flows.replies import (
    Button,
    Env,
    Outcome,
    Reply,
    UserInput,
    rows,
)
from flows.request import build_request
from flows.result_screen import ResultScreen
from flows.setup_reminders import REMINDER_STATES, ReminderSetup
from flows.state import Answers, ChatState, Pending
from flows.steps import ANSWERED, NUMERIC_STEPS, STEP_BY_NAME, STEPS, Confirm, Step, record_answers, reopen_dependants

STEP_NAMES = [step.name for step in STEPS]
STATES = ["idle", *STEP_NAMES, "review", "result", *REMINDER_STATES]
# Steps from here on collect results (labs, transfusions, baseline): every fact the rules that use no
# lab read is asked before them, so entering this part is where those rules can already decide.
LAB_PART = STEP_NAMES.index("lab_value")
AFTER_RESULT = STEP_NAMES.index("lab_date") + 1  # the deciding result and its date are in


def _build_machine() -> Machine:
    entering = {
        "review": "enter_review",
        "result": "enter_result",
        "reminder_zone": "enter_reminder_zone",
        "reminder_time": "enter_reminder_time",
    } | dict.fromkeys(STEP_NAMES, "enter_step")
    machine = Machine(
        model=None,
        states=[{"name": name, "on_enter": entering[name]} if name in entering else name for name in STATES],
        initial="idle",
        queued=True,  # a skip fired while entering a step runs after that entry completes
        send_event=True,
        auto_transitions=False,
    )
    machine.add_transition("start", "*", STEP_NAMES[0])
    machine.add_transition("cancel", "*", "idle")
    steps: list[Any] = list(STEP_NAMES)  # transitions' stubs want a list of str | Enum | State
    machine.add_transition("finish_edit", steps, "review")
    for earlier, later in pairwise([*STEP_NAMES, "review"]):
        machine.add_transition("advance", earlier, later)
        machine.add_transition("retreat", later, earlier)
    machine.add_transition("retreat", STEP_NAMES[0], STEP_NAMES[0])  # at the first question, ask it again
    machine.add_transition("retreat", "result", "review")
    machine.add_transition("confirm", "review", "result")
    machine.add_transition("decide", steps, "result")  # an answer already forces the outcome (a refer)
    for step in STEP_NAMES:
        machine.add_transition(f"edit_{step}", ["review", "result", *steps], step)
    machine.add_transition("ask_zone", "result", "reminder_zone")
    machine.add_transition("ask_time", ["result", "reminder_zone"], "reminder_time")
    machine.add_transition("leave_reminders", list(REMINDER_STATES), "result")
    machine.add_transition("retreat", list(REMINDER_STATES), "result")
    return machine


MACHINE = _build_machine()


class Conversation(ResultScreen, ReminderSetup):
    """One chat's state for the length of one update; the shared machine's model. The recommendation
    screen (`ResultScreen`) and the reminder questions (`ReminderSetup`) are parts in their own modules."""

    def __init__(self, chat: ChatState, env: Env) -> None:
        self.chat = chat
        self.env = env
        self.outcome = Outcome()
        # The question this update answered: steps skipped on the way on do not count as answered, so
        # "did this answer cross the results" is judged from here, not from the last skipped step.
        self.answered_in = chat.state

    @property
    def state(self) -> str:
        return self.chat.state

    @state.setter
    def state(self, value: str) -> None:
        self.chat.state = value

    @property
    def answers(self) -> Answers:
        return self.chat.answers

    def fire(self, trigger: str) -> None:
        MACHINE.events[trigger].trigger(self)

    def say(self, text: str, buttons: tuple[tuple[Button, ...], ...] = ()) -> None:
        self.outcome.replies.append(Reply(text, buttons))

    # --- callbacks of the machine ---------------------------------------------------------------

    def enter_step(self, event: EventData) -> None:
        step = STEP_BY_NAME[self.state]
        answers = self.answers
        direction = event.event.name if event.event.name in ("advance", "retreat") else "advance"
        # A follow-up passes over what the record answered (and this follow-up has not asked).
        from_record = answers.followup and ANSWERED[step.name](answers) and step.name not in answers.followup_asked
        if not step.applies(answers, self.env) or from_record:
            if direction == "retreat" and answers.followup and self.state == STEP_NAMES[0]:
                return self.back_to_record()
            self.fire(direction)
            return
        moving_on = event.event.name in ("advance", "start") and not answers.editing
        if moving_on and self.decided_early(self.answered_in):
            return self.fire("decide")
        self.ask(step)

    def decided_early(self, source: str) -> bool:
        """Whether an answer already forces the outcome, so that no later question can change it."""
        here = STEP_NAMES.index(self.state) if self.state in STEP_NAMES else len(STEP_NAMES)  # the review
        came_from = STEP_NAMES.index(source) if source in STEP_NAMES else -1
        if came_from < LAB_PART <= here and self.decided_without_lab():
            return True
        return came_from < AFTER_RESULT <= here and self.result_too_old()

    def result_too_old(self) -> bool:
        """`lab.stale`: the deciding result is too old to decide on; nothing asked after it changes that."""
        try:
            response = recommend(DoseRequest.model_validate(build_request(self.answers, self.env)))
        except (RequestError, ValidationError):
            return False
        return response.action == "refer" and "stale_lab" in {warning.code for warning in response.warnings}

    def decided_without_lab(self) -> bool:
        """Whether the rules that use no lab already decide: refer, or stop (no result would change it).

        The request so far is sent without results: a decision other than the deciding-lab check's
        (`missing_lab`) then comes from a rule listed before that check (RULES.md 0, "Order"), which
        no result can change. Only a refer or a discontinue ends the questions; any other action
        still needs the results for its dose, dates or warnings.
        """
        try:
            payload = build_request(self.answers, self.env) | {"labs": [], "transfusions": []}
            response = recommend(DoseRequest.model_validate(payload))
        except (RequestError, ValidationError):
            return False  # not a whole request yet: the questions go on
        codes = {warning.code for warning in response.warnings}
        return response.action in ("refer", "discontinue") and "missing_lab" not in codes

    def enter_review(self, event: EventData) -> None:
        moving_on = event.event.name == "advance" and not self.answers.editing
        self.answers.editing = False
        if self.answers.followup:  # the record was confirmed in the record message: no review screen
            return self.fire("confirm")
        if moving_on and self.decided_early(self.answered_in):  # the last answer forces the outcome: no review
            return self.fire("confirm")
        self.outcome.replies.append(render.review(self.answers, self.applicable_steps()))

    # --- asking and answering -------------------------------------------------------------------

    def ask(self, step: Step, prefix: str = "") -> None:
        answers = self.answers
        options = step.options(answers, self.env)
        text = step.question(answers, self.env)
        if answers.followup:
            text = followup.question(step.name, answers, self.env) or text
            options = followup.options(step.name, answers, self.env) or options
            if step.name not in answers.followup_asked:
                answers.followup_asked.append(step.name)
        reply = Reply(f"{prefix}{text}", (*rows(options), NAVIGATION), numeric=step.name in NUMERIC_STEPS)
        self.outcome.replies.append(reply)

    def applicable_steps(self) -> list[Step]:
        return [step for step in STEPS if step.applies(self.answers, self.env)]

    def current_buttons(self) -> list[Button]:
        """The buttons of the question now on screen (typed labels count as presses)."""
        answers = self.answers
        if answers.pending is not None:
            return [*_confirm_buttons(), *NAVIGATION]
        if self.state in STEP_BY_NAME:
            step = self.state
            shown = followup.options(step, answers, self.env) if answers.followup else None
            return [*(shown or STEP_BY_NAME[step].options(answers, self.env)), *NAVIGATION]
        if self.state == "review":
            return [button for row in render.review(answers, self.applicable_steps()).buttons for button in row]
        if self.state == "result":
            # Save stays valid (a second press says so); Set reminders says to save first.
            buttons = [*render.result_buttons(saved=False), *render.result_buttons(saved=True), CHANGE_REMINDERS]
            return list(dict.fromkeys(buttons))
        if self.state == "reminder_zone":
            return [b for row in reminder_words.zone_question().buttons for b in row] + [*NAVIGATION]
        if self.state == "reminder_time":
            drug = self.answers.drug or ""
            return [b for row in reminder_words.time_question(drug).buttons for b in row] + [*NAVIGATION]
        return [NEW]

    def receive(self, message: UserInput) -> None:
        text = (message.text or "").strip()
        data = message.button
        if data is None and text and not text.startswith("/"):
            typed = _plain(text)
            data = next((b.data for b in self.current_buttons() if _plain(b.label) == typed), None)
        # '/new@hemadose_bot' in group chats is /new
        command = text.split()[0].split("@")[0].lower() if text.startswith("/") else None
        word = text.lower() if data is None else None
        if data is not None and data.startswith((followup.FOLLOWUP, followup.FULL)):
            return self.open_record(data[: len(followup.FULL)], data[len(followup.FULL) :])  # in any state
        if command in ("/cancel",) or data == "cancel" or word == "cancel":
            return self.cancel()
        if command == "/new" or (data == "new" and self.state in ("idle", "result", "review")):
            return self.start()  # a New button from an older message does not end a consultation under way
        if command == "/start":
            return self.welcome()
        if command == "/help" or data == "help" or word == "help":
            return self.help()
        if command == "/back" or data == "back" or word == "back":
            return self.back()
        if command is not None:
            self.say(f"I don't know the command {command}. " + render.COMMANDS_LINE)
            return self.reask()
        if data is not None and data not in {b.data for b in self.current_buttons()}:
            self.say("That button belongs to an earlier message; here is where we are:")
            return self.reask()
        if self.state == "idle":
            return self.say("To dose a patient, start a new consultation.", ((NEW,),))
        if self.state == "review":
            return self.on_review(data, text)
        if self.state == "result":
            return self.on_result(data, text)
        if self.state in REMINDER_STATES:
            return self.on_reminder_answer(data.removeprefix("v:") if data is not None else text)
        answer = data.removeprefix("v:") if data is not None else text
        if self.answers.followup:
            answer = followup.translate(self.state, answer)
            both = followup.nothing_new(self.state, answer, self.answers, self.env)
            if both is not None and self.answers.pending is None:
                return self.apply(STEP_BY_NAME[self.state], both)
        self.on_answer(STEP_BY_NAME[self.state], answer, data)

    def on_answer(self, step: Step, answer: str, data: str | None) -> None:
        answers = self.answers
        if answers.pending is not None:
            if data == YES or answer.lower() in ("yes", "y"):
                updates = answers.pending.updates
                answers.pending = None
                return self.apply(step, updates)
            retry = answers.pending.retry
            answers.pending = None
            if data == NO or answer.lower() in ("no", "n"):
                if retry is not None:
                    return self.fire(f"edit_{retry}")
                return self.ask(step, "OK, please enter it again. ")
        if not answer:
            return self.ask(step, "Please answer the question. ")
        parsed = step.parse(answer, answers, self.env)
        if isinstance(parsed, Problem):
            return self.ask(step, parsed.message + "\n")
        if isinstance(parsed, Confirm):
            updates = _jsonable(parsed.updates)
            answers.pending = Pending(step=step.name, question=parsed.question, updates=updates, retry=parsed.retry)
            return self.say(parsed.question, (_confirm_buttons(), NAVIGATION))
        self.apply(step, parsed)

    def apply(self, step: Step, updates: dict[str, Any]) -> None:
        stay = bool(updates.pop("_stay", False))
        restored = Answers.model_validate({**self.answers.model_dump(), **updates})
        restored = reopen_dependants(self.answers, restored, step.name, updates)  # steps.DEPENDANTS
        drug_changed = restored.drug != self.answers.drug
        self.chat.answers = restored
        if stay:
            return self.ask(step)
        if restored.editing and not drug_changed:
            missing = next((s.name for s in self.applicable_steps() if not ANSWERED[s.name](restored)), None)
            return self.fire(f"edit_{missing}" if missing else "finish_edit")
        self.fire("advance")

    def on_review(self, data: str | None, text: str) -> None:
        if data == "confirm" or text.lower() in ("ok", "confirm", "yes"):
            return self.fire("confirm")
        if data is not None and data.startswith("edit:") and data[5:] in STEP_BY_NAME:
            self.answers.editing = True
            return self.fire(f"edit_{data[5:]}")
        self.say("Press Get recommendation, or Edit next to an answer to change it.")
        self.reask()

    # --- controls -------------------------------------------------------------------------------

    def start(self) -> None:
        self.chat.answers = Answers()
        self.chat.request = self.chat.response = None
        self.chat.saved = self.chat.reminders_set = False
        self.fire("start")

    def open_record(self, kind: str, label: str) -> None:
        """`fu:LABEL` (Same regimen, new result) or `fc:LABEL` (a full consultation), from any state."""
        record = followup.find(label, self.env)
        if record is None:
            self.say(followup.unknown(label))
            return None if self.state == "idle" else self.reask()
        if kind == followup.FOLLOWUP and not followup.has_regimen(record):
            full = Button("Full consultation", followup.FULL + record.label)
            return self.say(followup.no_regimen(record.label), ((full, NEW),))
        if self.state in STEP_BY_NAME or self.state == "review":
            self.say("The consultation under way is closed; nothing from it was saved.")
        self.chat.request = self.chat.response = None
        self.chat.saved = self.chat.reminders_set = False
        if kind == followup.FOLLOWUP:
            self.chat.answers = followup.prefill(record, self.env)
            self.state = "idle"
            return self.fire("start")
        if record.drug is None:
            return self.start()
        # The drug and the patient are answered; the record's values are offered as Keep from the weight on.
        answers = Answers(drug=record.drug, indication=record.indication, region=record.region)
        self.chat.answers = answers.model_copy(update=record_answers(record.drug, record, self.env))
        self.state = "patient"
        self.fire("advance")

    def back_to_record(self) -> None:
        """Back from the follow-up's first question: the record message again (nothing was entered)."""
        record = self.answers.record
        self.chat.answers = Answers()
        self.fire("cancel")
        if record is not None:
            self.outcome.replies.append(followup.record_message(record, self.env))

    def cancel(self) -> None:
        if self.state == "idle":
            return self.say("Nothing to cancel.", ((NEW,),))
        if self.state in REMINDER_STATES:
            self.say("No reminders set; the saved recommendation is kept.", (self.result_row(),))
            return self.fire("leave_reminders")
        self.chat.answers = Answers()
        self.fire("cancel")
        self.say("Consultation cancelled; nothing was saved from it.", ((NEW,),))

    def back(self) -> None:
        if self.state == "idle":
            return self.say("There is no consultation under way.", ((NEW,),))
        self.answers.pending = None
        self.answers.editing = False
        if self.state == "result" and self.answers.followup and self.answers.followup_asked:
            # A follow-up has no review screen: Back returns to its last question.
            return self.fire(f"edit_{self.answers.followup_asked[-1]}")
        self.fire("retreat")

    def welcome(self) -> None:
        self.say(render.WELCOME, ((NEW, Button("My patients", "patients")),))
        if self.state == "result" and self.chat.response is not None:
            self.say("Your last recommendation:")
            self.reask()
        elif self.state != "idle":
            self.say("You have a consultation under way; it continues here:")
            self.reask()

    def help(self) -> None:
        self.say(render.help_text(self.state))
        self.reask()

    def reask(self) -> None:
        """Show the question now open again (nothing entered is lost)."""
        answers = self.answers
        if answers.pending is not None:
            return self.say(answers.pending.question, (_confirm_buttons(), NAVIGATION))
        if self.state in STEP_BY_NAME:
            return self.ask(STEP_BY_NAME[self.state])
        if self.state == "review":
            return self.outcome.replies.append(render.review(answers, self.applicable_steps()))
        if self.state == "result":
            if self.chat.response is None:
                return self.say("Start a new consultation when you are ready.", ((NEW,),))
            # Shown again whole: at the start of a new session nothing of it is above.
            return self.outcome.replies.append(self.card())
        if self.state == "reminder_zone":
            return self.outcome.replies.append(self.with_navigation(reminder_words.zone_question()))
        if self.state == "reminder_time":
            return self.outcome.replies.append(self.with_navigation(reminder_words.time_question(self.drug)))
        self.say("Start a new consultation when you are ready.", ((NEW,),))


def _plain(label: str) -> str:
    """A label as people type it: no leading symbols, case or extra spaces ('✅ Get it' ~ 'get it')."""
    return " ".join(label.lstrip("⬅✖?✅ ").lower().split())


def _confirm_buttons() -> tuple[Button, ...]:
    return (Button("Yes, use it", YES), Button("No, re-enter", NO))


def _jsonable(updates: dict[str, Any]) -> dict[str, Any]:
    dumped = Answers.model_validate(updates).model_dump(mode="json", include=set(updates))
    return dumped | {"_stay": True} if updates.get("_stay") else dumped  # a list answer stays open after a yes


def handle(chat: ChatState, message: UserInput, env: Env) -> tuple[ChatState, Outcome]:
    """One update: the chat's state after it, the replies to send and the effects to persist."""
    # The flow changes its copy in place. A deep copy through JSON (in pydantic's Rust core; the
    # round trip every saved state makes between updates anyway) costs a fraction of copy.deepcopy,
    # which took 40% of the flow's time.
    conversation = Conversation(ChatState.model_validate_json(chat.model_dump_json()), env)
    conversation.receive(message)
    return conversation.chat, conversation.outcome


def refuse(chat: ChatState, env: Env, message: str) -> Outcome:
    """Say why a message was not read (too long, a damaged button), then the question now open again;
    the chat's state is not changed (nothing entered is lost)."""
    conversation = Conversation(ChatState.model_validate_json(chat.model_dump_json()), env)
    conversation.say(message)
    conversation.reask()
    return conversation.outcome
