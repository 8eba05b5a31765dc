"""The consultation's machine: its states (`State`), the conditions that skip a question, and the one
`transitions` Machine every chat shares (flows/consultation.py's `Conversation` is the model it is
fired for, unbound; docs/architecture.md, decisions 2 and 8). `python -m flows.diagram` draws it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from transitions import EventData, Machine

from flows.conversation_parts import REMINDER_STATES, State, Talk
from flows.steps import ANSWERED, STEPS, Step

STEP_NAMES = [step.name for step in STEPS]
QUESTIONS = [State(name) for name in STEP_NAMES]  # a step without a State fails here, at import
STATES = list(State)
_STATE_OF = {state.value: state for state in State}
if [State.idle, *QUESTIONS, State.review, State.result, *REMINDER_STATES] != STATES:
    raise ImportError("flows.conversation_parts.State must list the questions in the order of flows.steps.STEPS")


def asks(step: Step) -> Callable[[EventData], bool]:
    """The condition of entering `step`'s question: it applies to this drug and patient
    (`Step.applies`), and in a follow-up the record does not already answer it (unless this
    follow-up asked it)."""

    def condition(event: EventData) -> bool:
        talk = cast(Talk, event.model)  # flows/consultation.py's Conversation
        answers = talk.answers
        from_record = answers.followup and ANSWERED[step.name](answers) and step.name not in answers.followup_asked
        return step.applies(answers, talk.env) and not from_record

    condition.__name__ = condition.__qualname__ = f"asks_{step.name}"
    return condition


ASKS = {State(step.name): asks(step) for step in STEPS}


def _build_machine() -> Machine:
    """The consultation's states and transitions. Moving between questions is a ladder of conditional
    transitions: an event goes to the first question in its direction whose `asks_<step>` condition
    holds (transitions tries a trigger's transitions in the order they were added), so a question the
    drug does not need is never entered; past the last question comes the review."""
    entering = {
        State.review: "enter_review",
        State.result: "enter_result",
        State.reminder_zone: "enter_reminder_zone",
        State.reminder_time: "enter_reminder_time",
    } | dict.fromkeys(QUESTIONS, "enter_step")
    machine = Machine(
        model=None,
        states=[{"name": state, "on_enter": entering[state]} if state in entering else state for state in STATES],
        initial=State.idle,
        # One queue for every chat (the machine is shared): a `decide` or `confirm` fired while entering
        # a state runs after that entry completes. Safe only while the flow is synchronous: no callback
        # may await (or run in another thread), or another chat's events could interleave on the queue
        # (docs/architecture.md, decision 2).
        queued=True,
        send_event=True,
        auto_transitions=False,
    )
    steps: list[Any] = list(QUESTIONS)  # transitions' stubs want a list of str | Enum | State

    def ladder(trigger: str, source: Any, questions: list[State], last: State, **after: Any) -> None:
        for question in questions:
            machine.add_transition(trigger, source, question, conditions=[ASKS[question]])
        machine.add_transition(trigger, source, last, **after)

    ladder("start", "*", QUESTIONS, State.review)  # a follow-up's record may answer the first questions
    machine.add_transition("cancel", "*", State.idle)
    machine.add_transition("finish_edit", steps, State.review)
    for index, source in enumerate([*QUESTIONS, State.review]):
        if source != State.review:
            ladder("advance", source, QUESTIONS[index + 1 :], State.review)
        # Back: the previous question asked; at the first question, it again. None before (a follow-up,
        # its first questions answered by the record): the record's message again, nothing entered kept.
        earlier = QUESTIONS[index - 1 :: -1] if index else QUESTIONS[:1]
        ladder("retreat", source, earlier, State.idle, after="show_record")
    machine.add_transition("retreat", State.result, State.review)
    machine.add_transition("confirm", State.review, State.result)
    machine.add_transition("decide", steps, State.result)  # an answer already forces the outcome (a refer)
    for index, question in enumerate(QUESTIONS):
        # An edit asks its question, or (where it no longer applies) the next one that does.
        ladder(f"edit_{question}", [State.review, State.result, *steps], QUESTIONS[index:], State.review)
    machine.add_transition("ask_zone", State.result, State.reminder_zone)
    machine.add_transition("ask_time", [State.result, State.reminder_zone], State.reminder_time)
    machine.add_transition("leave_reminders", list(REMINDER_STATES), State.result)
    machine.add_transition("retreat", list(REMINDER_STATES), State.result)
    return machine


MACHINE = _build_machine()
