"""The consultation flow: one `transitions` machine shared by every chat.

A chat's state is plain data (`ChatState`). For each update a `Conversation` is built around it,
the shared machine's events are fired for it, and the changed data is handed back to be saved.
Nothing is bound to the conversation object (no `add_model`), so taking part costs a chat
microseconds and no memory once the update is done. Steps a drug does not need are skipped on
entry, in the direction of travel, so `back` and `next` both pass over them.
"""

from __future__ import annotations

import datetime as dt
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from transitions import EventData, Machine

from core import RequestError, recommend
from core.errors import from_validation_error
from core.models import DoseRequest, DoseResponse
from core.reminders import PlannedReminder
from core.reminders import plan as plan_reminders
from flows import reminders as reminder_words
from flows import render
from flows.parsing import Problem
from flows.replies import (
    AuditRecommendation,
    Button,
    Env,
    Outcome,
    Reply,
    SaveConsultation,
    ScheduleReminders,
    SetTimeZone,
    UserInput,
    rows,
)
from flows.request import build_request, step_for_field
from flows.state import Answers, ChatState, Pending
from flows.steps import ANSWERED, NUMERIC_STEPS, STEP_BY_NAME, STEPS, Confirm, Step, reopen_dependants

STEP_NAMES = [step.name for step in STEPS]
REMINDER_STATES = ("reminder_zone", "reminder_time")
STATES = ["idle", *STEP_NAMES, "review", "result", *REMINDER_STATES]
NAVIGATION = (Button("⬅ Back", "back"), Button("✖ Cancel", "cancel"), Button("? Help", "help"))
NEW = Button("New consultation", "new")
YES, NO = "v:yes", "v:no"


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
    for step in STEP_NAMES:
        machine.add_transition(f"edit_{step}", ["review", "result", *steps], step)
    machine.add_transition("ask_zone", "result", "reminder_zone")
    machine.add_transition("ask_time", ["result", "reminder_zone"], "reminder_time")
    machine.add_transition("leave_reminders", list(REMINDER_STATES), "result")
    machine.add_transition("retreat", list(REMINDER_STATES), "result")
    return machine


MACHINE = _build_machine()


class Conversation:
    """One chat's state for the length of one update; the shared machine's model."""

    def __init__(self, chat: ChatState, env: Env) -> None:
        self.chat = chat
        self.env = env
        self.outcome = Outcome()

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
        if not step.applies(self.answers, self.env):
            direction = event.event.name if event.event.name in ("advance", "retreat") else "advance"
            self.fire(direction)
            return
        self.ask(step)

    def enter_review(self, event: EventData) -> None:
        self.answers.editing = False
        self.outcome.replies.append(render.review(self.answers, self.applicable_steps()))

    def enter_result(self, event: EventData) -> None:
        if event.transition is not None and event.transition.source in REMINDER_STATES:
            # Back from setting reminders: the recommendation stands (it is above), not computed again.
            if event.event.name == "retreat":
                self.say("Back to the recommendation; no reminders set.", (render.result_buttons(self.chat.saved),))
            return
        try:
            payload = build_request(self.answers, self.env)
            request = DoseRequest.model_validate(payload)
            response = recommend(request)
        except (RequestError, ValidationError) as exc:
            field, message = _fault(exc)
            step = step_for_field(field)
            # In the chat's words: no contract field names ('as_of' is today's date here).
            detail = message.split(": ", 1)[-1].replace("as_of", "today")
            self.say(f"{STEP_BY_NAME[step].title}: {detail}. Please give it again:")
            self.answers.editing = True
            self.fire(f"edit_{step}")
            return
        self.chat.request = request.model_dump(mode="json", exclude_defaults=True)
        self.chat.response = response.model_dump(mode="json")
        self.chat.saved = False
        self.outcome.effects.append(
            AuditRecommendation(self.answers.patient_label, self.chat.request, self.chat.response)
        )
        self.outcome.replies.append(render.recommendation(response, self.answers, self.env))

    # --- asking and answering -------------------------------------------------------------------

    def ask(self, step: Step, prefix: str = "") -> None:
        options = step.options(self.answers, self.env)
        text = step.question(self.answers, self.env)
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
            return [*STEP_BY_NAME[self.state].options(answers, self.env), *NAVIGATION]
        if self.state == "review":
            return [button for row in render.review(answers, self.applicable_steps()).buttons for button in row]
        if self.state == "result":
            # Save stays valid (a second press says so); Set reminders says to save first.
            return list(dict.fromkeys([*render.result_buttons(saved=False), *render.result_buttons(saved=True)]))
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

    def on_result(self, data: str | None, text: str) -> None:
        if data == "why" or text.lower() in ("why", "why?"):
            assert self.chat.response is not None
            return self.outcome.replies.append(render.why(self.chat.response, self.chat.saved))
        if data == "remind" or text.lower() in ("remind", "reminders", "set reminders"):
            return self.on_remind()
        if data == "save" or text.lower() == "save":
            if self.chat.saved:
                return self.say(f"Already saved to {self.answers.patient_label}.", (render.result_buttons(True),))
            assert self.chat.request is not None
            assert self.chat.response is not None
            label = self.answers.patient_label
            assert label is not None
            self.outcome.effects.append(SaveConsultation(label, self.chat.request, self.chat.response))
            self.chat.saved = True
            return self.say(f"Saved to {label}: dose, result and recommendation.", (render.result_buttons(True),))
        choices = "Set reminders" if self.chat.saved else "Save to patient"
        self.say(f"Press {choices}, Why? or New consultation.", (render.result_buttons(self.chat.saved),))

    # --- reminders after a saved recommendation ---------------------------------------------------

    @property
    def drug(self) -> str:
        return self.answers.drug or ""

    def with_navigation(self, reply: Reply, prefix: str = "") -> Reply:
        return Reply(prefix + reply.text, (*reply.buttons, NAVIGATION))

    @property
    def zone_for_reminders(self) -> str:
        return self.chat.reminder_zone or self.env.time_zone or "UTC"

    def planned(self, at: dt.time = dt.time(0)) -> list[PlannedReminder]:
        assert self.chat.response is not None
        response = DoseResponse.model_validate(self.chat.response)
        zone = self.zone_for_reminders
        now = (
            self.env.now.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
            if self.env.now is not None
            else dt.datetime.combine(self.env.today, dt.time(0))
        )
        drug = response.ruleset.split("/")[0]
        return plan_reminders(drug, response, now, at)  # type: ignore[arg-type]

    def on_remind(self) -> None:
        if not self.chat.saved:
            return self.say(
                "Reminders belong to a patient's record: press Save to patient first.",
                (render.result_buttons(False),),
            )
        if not self.planned():
            return self.say(
                "This recommendation sets no dose or test date to remind of (a referral, or nothing due).",
                (render.result_buttons(True),),
            )
        self.chat.reminder_zone = self.env.time_zone or self.chat.reminder_zone
        self.fire("ask_time" if self.chat.reminder_zone else "ask_zone")

    def enter_reminder_zone(self, event: EventData) -> None:
        self.outcome.replies.append(self.with_navigation(reminder_words.zone_question()))

    def enter_reminder_time(self, event: EventData) -> None:
        self.outcome.replies.append(self.with_navigation(reminder_words.time_question(self.drug)))

    def on_reminder_answer(self, answer: str) -> None:
        if not answer:
            return self.reask()
        if self.state == "reminder_zone":
            zone = reminder_words.known_zone(answer)
            if zone is None:
                problem = f"'{answer}' is not a time zone I know. Use an Area/City name, e.g. Europe/London.\n"
                return self.outcome.replies.append(self.with_navigation(reminder_words.zone_question(), problem))
            self.chat.reminder_zone = zone
            self.outcome.effects.append(SetTimeZone(zone))
            return self.fire("ask_time")
        at = reminder_words.parse_time(answer)
        if isinstance(at, Problem):
            question = reminder_words.time_question(self.drug)
            return self.outcome.replies.append(self.with_navigation(question, at.message + "\n"))
        assert self.chat.request is not None
        assert self.chat.response is not None
        label = self.answers.patient_label
        assert label is not None
        self.outcome.effects.append(ScheduleReminders(label, self.chat.request, self.chat.response, at))
        lab = reminder_words.lab_words(self.chat.response)
        summary = reminder_words.plan_summary(label, self.planned(at), at, self.zone_for_reminders, lab)
        self.say(summary, (render.result_buttons(True),))
        self.fire("leave_reminders")

    # --- controls -------------------------------------------------------------------------------

    def start(self) -> None:
        self.chat.answers = Answers()
        self.chat.request = self.chat.response = None
        self.chat.saved = False
        self.fire("start")

    def cancel(self) -> None:
        if self.state == "idle":
            return self.say("Nothing to cancel.", ((NEW,),))
        if self.state in REMINDER_STATES:
            self.say("No reminders set; the saved recommendation is kept.", (render.result_buttons(True),))
            return self.fire("leave_reminders")
        self.chat.answers = Answers()
        self.fire("cancel")
        self.say("Consultation cancelled; nothing was saved from it.", ((NEW,),))

    def back(self) -> None:
        if self.state == "idle":
            return self.say("There is no consultation under way.", ((NEW,),))
        self.answers.pending = None
        self.answers.editing = False
        self.fire("retreat")

    def welcome(self) -> None:
        self.say(render.WELCOME, ((NEW, Button("My patients", "patients")),))
        if self.state != "idle":
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
            return self.say("The recommendation is above.", (render.result_buttons(self.chat.saved),))
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


def _fault(exc: RequestError | ValidationError) -> tuple[str | None, str]:
    """The contract's field and message for a request the core refused."""
    error = from_validation_error(exc) if isinstance(exc, ValidationError) else exc
    return error.field, error.message


def handle(chat: ChatState, message: UserInput, env: Env) -> tuple[ChatState, Outcome]:
    """One update: the chat's state after it, the replies to send and the effects to persist."""
    # The flow changes its copy in place. A deep copy through JSON (in pydantic's Rust core; the
    # round trip every saved state makes between updates anyway) costs a fraction of copy.deepcopy,
    # which took 40% of the flow's time.
    conversation = Conversation(ChatState.model_validate_json(chat.model_dump_json()), env)
    conversation.receive(message)
    return conversation.chat, conversation.outcome
