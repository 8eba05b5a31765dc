"""The consultation flow: one `transitions` machine shared by every chat.

A chat's state is plain data (`ChatState`). For each update a `Conversation` is built around it,
the shared machine's events are fired for it, and the changed data is handed back to be saved.
Nothing is bound to the conversation object (no `add_model`), so taking part costs a chat
microseconds and no memory once the update is done.

The states are `State` (flows/conversation_parts.py), the machine flows/machine.py's `MACHINE`.
Questions a drug does not need are never entered: every move between questions is a ladder of
transitions conditional on `asks_<step>` (`Step.applies`, and in a follow-up "not answered by the
record"), so `back` and `next` both pass over them. What each state does with input, which buttons
it shows and how it asks again is one row of `SCREENS`. `python -m flows.diagram` draws the machine
(docs/consultation.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pydantic import ValidationError
from transitions import EventData

from core import RequestError, recommend
from core.models import DoseRequest
from flows import followup, render
from flows import reminders as reminder_words
from flows.answering import Answering, confirm_buttons
from flows.controls import Controls
from flows.conversation_parts import CHANGE_REMINDERS, NAVIGATION, NEW, State
from flows.machine import _STATE_OF, MACHINE, QUESTIONS, STEP_NAMES
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
from flows.routes import ROUTES, Owner, Routed, route
from flows.setup_reminders import ReminderSetup
from flows.state import Answers, ChatState
from flows.steps import NUMERIC_STEPS, STEP_BY_NAME, STEPS, Step

# Steps from here on collect results (labs, transfusions, baseline): every fact the rules that use no
# lab read is asked before them, so entering this part is where those rules can already decide.
LAB_PART = STEP_NAMES.index("lab_value")
AFTER_RESULT = STEP_NAMES.index("lab_date") + 1  # the deciding result and its date are in


class Conversation(Answering, Controls, ResultScreen, ReminderSetup):
    """One chat's state for the length of one update; the shared machine's model. The recommendation
    screen (`ResultScreen`) and the reminder questions (`ReminderSetup`) are parts in their own modules."""

    def __init__(self, chat: ChatState, env: Env) -> None:
        self.chat = chat
        self.env = env
        self.outcome = Outcome()
        # Where the patient question goes when it was entered without the user's patients (`run`).
        self.patient_question_at: int | None = None
        # The question this update answered: steps skipped on the way on do not count as answered, so
        # "did this answer cross the results" is judged from here, not from the last skipped step.
        self.answered_in = chat.state

    @property
    def state(self) -> State:
        return _STATE_OF[self.chat.state]  # a dict lookup: State(...) costs several times more, per access

    @state.setter
    def state(self, value: State) -> None:
        self.chat.state = value.value  # saved as plain data

    @property
    def answers(self) -> Answers:
        return self.chat.answers

    def fire(self, trigger: str) -> None:
        MACHINE.events[trigger].trigger(self)

    def say(self, text: str, buttons: tuple[tuple[Button, ...], ...] = ()) -> None:
        self.outcome.replies.append(Reply(text, buttons))

    # --- callbacks of the machine ---------------------------------------------------------------

    def moving_on(self, event: EventData) -> bool:
        """Whether this entry goes on past an answer (not back, not to an edited question): an edit
        whose question no longer applies goes on to the next that does, as if answered."""
        name = event.event.name
        passed_edit = name.startswith("edit_") and name != f"edit_{self.state.value}"
        return (name in ("advance", "start") or passed_edit) and not self.answers.editing

    def enter_step(self, event: EventData) -> None:
        # Only questions that apply are entered (the transitions' `asks_<step>` conditions).
        if self.moving_on(event) and self.decided_early(self.answered_in):
            return self.fire("decide")
        if self.state == State.patient and not self.env.patients:
            # The adapter reads the user's patients only for this question: asked once it has (`ask_patient`).
            self.patient_question_at = len(self.outcome.replies)
            return None
        self.ask(STEP_BY_NAME[self.state])

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
        moving_on = self.moving_on(event)
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
        if self.answers.pending is not None:
            return [*confirm_buttons(), *NAVIGATION]
        return SCREENS[self.state].buttons(self)

    def step_buttons(self) -> list[Button]:
        shown = followup.options(self.state, self.answers, self.env) if self.answers.followup else None
        return [*(shown or STEP_BY_NAME[self.state].options(self.answers, self.env)), *NAVIGATION]

    def review_buttons(self) -> list[Button]:
        return [button for row in render.review(self.answers, self.applicable_steps()).buttons for button in row]

    def result_buttons(self) -> list[Button]:
        # Save stays valid (a second press says so); Set reminders says to save first.
        buttons = [*render.result_buttons(saved=False), *render.result_buttons(saved=True), CHANGE_REMINDERS]
        return list(dict.fromkeys(buttons))

    def zone_buttons(self) -> list[Button]:
        return [b for row in reminder_words.zone_question().buttons for b in row] + [*NAVIGATION]

    def time_buttons(self) -> list[Button]:
        drug = self.answers.drug or ""
        return [b for row in reminder_words.time_question(drug).buttons for b in row] + [*NAVIGATION]

    def idle_buttons(self) -> list[Button]:
        return [NEW]

    def receive(self, message: UserInput) -> None:
        text = (message.text or "").strip()
        data = message.button
        if data is None and text and not text.startswith("/"):
            typed = _plain(text)
            data = next((b.data for b in self.current_buttons() if _plain(b.label) == typed), None)
        routed = route(text if data is None else None, data)  # the one routing table (flows/routes.py)
        if routed.route is not None and routed.route.owner == Owner.FLOW and CONTROLS[routed.route.name](self, routed):
            return None
        if routed.command is not None:  # not one of the consultation's (the service answers its own first)
            self.say(f"I don't know the command {routed.command}. " + render.COMMANDS_LINE)
            return self.reask()
        if data is not None and data not in {b.data for b in self.current_buttons()}:
            self.say("That button belongs to an earlier message; here is where we are:")
            return self.reask()
        SCREENS[self.state].answer(self, data, text)

    # --- the consultation's routes (flows/routes.py): True when the input was theirs -------------------

    def on_record_button(self, routed: Routed) -> bool:
        assert routed.data is not None
        self.open_record(routed.data[: len(followup.FULL)], routed.argument)  # in any state
        return True

    def on_new(self, routed: Routed) -> bool:
        if routed.command is None and self.state not in (State.idle, State.result, State.review):
            return False  # a New button from an older message does not end a consultation under way
        self.start()
        return True

    # --- the states' answers (SCREENS) ----------------------------------------------------------

    def on_idle(self, data: str | None, text: str) -> None:
        self.say("To dose a patient, start a new consultation.", ((NEW,),))

    def on_reminder_input(self, data: str | None, text: str) -> None:
        self.on_reminder_answer(data.removeprefix("v:") if data is not None else text)

    def on_review(self, data: str | None, text: str) -> None:
        if data == "confirm" or text.lower() in ("ok", "confirm", "yes"):
            return self.fire("confirm")
        if data is not None and data.startswith("edit:") and data[5:] in STEP_BY_NAME:
            self.answers.editing = True
            return self.fire(f"edit_{data[5:]}")
        self.say("Press Get recommendation, or Edit next to an answer to change it.")
        self.reask()

    def reask(self) -> None:
        """Show the question now open again (nothing entered is lost)."""
        if self.answers.pending is not None:
            return self.say(self.answers.pending.question, (confirm_buttons(), NAVIGATION))
        SCREENS[self.state].reask(self)

    def reask_step(self) -> None:
        self.ask(STEP_BY_NAME[self.state])

    def show_review(self) -> None:
        self.outcome.replies.append(render.review(self.answers, self.applicable_steps()))

    def show_result(self) -> None:
        if self.chat.response is None:
            return self.say("Start a new consultation when you are ready.", ((NEW,),))
        # Shown again whole: at the start of a new session nothing of it is above.
        self.outcome.replies.append(self.card())

    def reask_zone(self) -> None:
        self.outcome.replies.append(self.with_navigation(reminder_words.zone_question()))

    def reask_time(self) -> None:
        self.outcome.replies.append(self.with_navigation(reminder_words.time_question(self.drug)))

    def reask_idle(self) -> None:
        self.say("Start a new consultation when you are ready.", ((NEW,),))


class Screen(NamedTuple):
    """What a state does with input: its answer, the buttons now valid on screen, and how its
    question is shown again. One row per state (`SCREENS`), looked up by `Conversation`."""

    answer: Callable[[Conversation, str | None, str], None]
    buttons: Callable[[Conversation], list[Button]]
    reask: Callable[[Conversation], None]


QUESTION = Screen(Conversation.answer_step, Conversation.step_buttons, Conversation.reask_step)
SCREENS: dict[State, Screen] = {
    State.idle: Screen(Conversation.on_idle, Conversation.idle_buttons, Conversation.reask_idle),
    **dict.fromkeys(QUESTIONS, QUESTION),
    State.review: Screen(Conversation.on_review, Conversation.review_buttons, Conversation.show_review),
    State.result: Screen(Conversation.on_result, Conversation.result_buttons, Conversation.show_result),
    State.reminder_zone: Screen(Conversation.on_reminder_input, Conversation.zone_buttons, Conversation.reask_zone),
    State.reminder_time: Screen(Conversation.on_reminder_input, Conversation.time_buttons, Conversation.reask_time),
}
if set(SCREENS) != set(State):
    raise ImportError("every state needs its row in SCREENS")


def _taking(control: Callable[[Conversation], None]) -> Callable[[Conversation, Routed], bool]:
    def handler(conversation: Conversation, routed: Routed) -> bool:
        control(conversation)
        return True

    return handler


CONTROLS: dict[str, Callable[[Conversation, Routed], bool]] = {
    "record": Conversation.on_record_button,
    "new": Conversation.on_new,
    "cancel": _taking(Conversation.cancel),
    "start": _taking(Conversation.welcome),
    "help": _taking(Conversation.help),
    "back": _taking(Conversation.back),
}
if set(CONTROLS) != {r.name for r in ROUTES if r.owner == Owner.FLOW}:
    raise ImportError("every route the consultation owns needs its handler in CONTROLS")


def _plain(label: str) -> str:
    """A label as people type it: no leading symbols, case or extra spaces ('✅ Get it' ~ 'get it')."""
    return " ".join(label.lstrip("⬅✖?✅ ").lower().split())


class Run(NamedTuple):
    """One update's result: the chat's state after it, the replies and effects, and where the patient
    question goes once the user's patients are known (None: not asked, or asked already)."""

    chat: ChatState
    outcome: Outcome
    patient_question_at: int | None = None


def run(chat: ChatState, message: UserInput, env: Env) -> Run:
    """One update. An update that reaches the patient question with no patients in `env` (the adapter
    reads them only for that question) returns the question's place, for `ask_patient`."""
    # The flow changes its copy in place. A deep copy through JSON (in pydantic's Rust core; the
    # round trip every saved state makes between updates anyway) costs a fraction of copy.deepcopy,
    # which took 40% of the flow's time.
    conversation = Conversation(ChatState.model_validate_json(chat.model_dump_json()), env)
    conversation.receive(message)
    return Run(conversation.chat, conversation.outcome, conversation.patient_question_at)


def ask_patient(done: Run, env: Env) -> Outcome:
    """The patient question of a `run` that reached it, asked with the user's patients (`env.patients`)
    in its place: the request the flow made, fulfilled without running the update again."""
    if done.patient_question_at is None:
        return done.outcome
    conversation = Conversation(done.chat, env)
    conversation.ask(STEP_BY_NAME[State.patient])
    done.outcome.replies[done.patient_question_at : done.patient_question_at] = conversation.outcome.replies
    return done.outcome


def handle(chat: ChatState, message: UserInput, env: Env) -> tuple[ChatState, Outcome]:
    """One update with `env.patients` all the user's patients: the chat's state after it, the replies and effects."""
    done = run(chat, message, env)
    return done.chat, ask_patient(done, env)


def refuse(chat: ChatState, env: Env, message: str) -> Outcome:
    """Say why a message was not read (too long, a damaged button), then the question now open again;
    the chat's state is not changed (nothing entered is lost)."""
    conversation = Conversation(ChatState.model_validate_json(chat.model_dump_json()), env)
    conversation.say(message)
    conversation.reask()
    return conversation.outcome
