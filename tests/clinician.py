"""A scripted clinician: answers the consultation chat from a request's facts, pressing buttons by their labels.

The clinician reads the question now open (`chat.state`, the step's name in flows/steps.py STEPS) and
answers it from a `Case`: the contract request, the patient's record if this is a follow-up, and which
results are entered at this visit. A button is "pressed" by typing its label (the chat must accept every
button by its label); values and dates are typed. It answers only what is asked, as asked: for a list
("red-cell transfusions from <date> to today") it gives the entries in the period the question names.

`ANSWERS` is a dispatch table keyed by step name: a new step needs one entry. A step with no entry
fails with a message naming it; so does an answer the chat refuses (no progress) and a confirmation
prompt the clinician did not expect (it confirms only unusual values and doses outside the label).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.numbers import fmt
from core.registry import rules_for
from core.units import UNITS_BY_TEST
from flows.consultation import _plain as plain_label  # how the chat reads a typed label
from flows.consultation import handle
from flows.replies import Button, Env, PatientSummary, Reply, UserInput
from flows.state import ChatState

Request = dict[str, Any]

# Typed units, as a clinician writes them (the contract's unit -> the text after the number).
TYPED_UNIT = {"10^9/L": "", "10^3/uL": " 10^3/uL", "G/L": " G/L", "/uL": "/uL", "g/dL": "", "g/L": " g/L"}
TYPED_UNIT |= {"mmol/L": " mmol/L"}
# The prompts the clinician says yes to: unusual values, doses outside the label, a result 8+ days old
# ("That count is 9 days old ... Use it anyway"), a status the record contradicts ("The record shows ...").
CONFIRMABLE = ("unusual", "not a level", "outside the label", "days old", "The record shows")
MAX_MESSAGES = 120


class ClinicianStuckError(AssertionError):
    """The chat asked something the clinician cannot answer, or refused an answer."""


@dataclass(frozen=True)
class Case:
    """What the clinician knows: the request, the record (follow-up) and the results entered today.

    `request["labs"]` holds the deciding results in date order, `latest` last. The record holds some of the
    others (a follow-up); the clinician types the rest when the chat asks for them (an earlier result, the
    counts since `since`).
    """

    request: Request
    record: PatientSummary | None = None
    latest: Request | None = None  # the latest deciding result, typed at this visit
    label: str = "RX-7"
    prefer_buttons: bool = True  # press "Keep 3 mg" / "Today" where a button says the answer

    @property
    def as_of(self) -> dt.date:
        return dt.date.fromisoformat(self.request["as_of"])

    @property
    def patient(self) -> Request:
        return self.request.get("patient") or {}

    @property
    def dose(self) -> Request | None:
        return self.request.get("current_dose")

    def env(self) -> Env:
        patients = {self.record.label: self.record} if self.record is not None else {}
        return Env(today=self.as_of, patients=patients)


@dataclass
class Question:
    """The question on screen: the chat's state, the reply that asked it, and the case."""

    chat: ChatState
    reply: Reply
    env: Env
    case: Case

    @property
    def buttons(self) -> list[Button]:
        return [button for row in self.reply.buttons for button in row]

    def label_of(self, data: str) -> str | None:
        return next((b.label for b in self.buttons if b.data == data), None)

    def press(self, data: str) -> str:
        """The label of the button with `data`, to be typed; it must be on screen, and the only one so read."""
        label = self.label_of(data)
        shown = ", ".join(f"{b.label!r}={b.data}" for b in self.buttons)
        if label is None:
            raise ClinicianStuckError(f"step {self.chat.state}: no button {data!r} among {shown}\n{self.reply.text}")
        if sum(plain_label(b.label) == plain_label(label) for b in self.buttons) > 1:
            raise ClinicianStuckError(f"step {self.chat.state}: the label {label!r} names two buttons: {shown}")
        return label

    def press_or_type(self, data: str, typed: str) -> str:
        label = self.label_of(data)
        return label if label is not None and self.case.prefer_buttons else typed

    def value_button(self, amount: Decimal) -> str | None:
        """A button whose value is `amount` (e.g. "Keep 3 mcg/kg", "7.5 mg")."""
        for button in self.buttons:
            if button.data.startswith("v:"):
                try:
                    if Decimal(button.data[2:]) == amount:
                        return button.label
                except ArithmeticError:
                    continue
        return None

    def date(self, day: dt.date) -> str:
        """A date: by its button (Today, Yesterday, Keep ..., Same as start) or typed as YYYY-MM-DD."""
        today = self.env.today
        answers = self.chat.answers
        wanted = {f"v:{day.isoformat()}"}
        if day == today:
            wanted.add("v:today")
        if day == today - dt.timedelta(days=1):
            wanted.add("v:yesterday")
        if answers.dose_since == day:
            wanted.add("v:same as start")
        label = next((b.label for b in self.buttons if b.data in wanted), None)
        return label if label is not None and self.case.prefer_buttons else day.isoformat()


def number(value: Any) -> str:
    return fmt(Decimal(str(value)))


def typed_lab(lab: Request) -> str:
    return f"{number(lab['value'])}{TYPED_UNIT[lab['unit']]}"


# --- one function per step -------------------------------------------------------------------------


def _drug(q: Question) -> str:
    return q.press(f"v:{q.case.request['drug']}")


def _indication(q: Question) -> str:
    return q.press(f"v:{q.case.request['indication']}")


def _region(q: Question) -> str:
    region = q.case.request.get("region") or rules_for(q.case.request["drug"]).profile.default_region
    return q.press(f"v:{region}")


def _patient(q: Question) -> str:
    if q.case.record is not None:
        return q.press(f"v:{q.case.record.label}")
    return q.case.label


def _weight(q: Question) -> str:
    weight = Decimal(str(q.case.patient["weight_kg"]))
    record = q.case.record
    if record is not None and record.weight_kg is not None and Decimal(record.weight_kg) == weight:
        return q.press("v:keep")  # keeps the record's weighing date too
    return number(weight)


def _age(q: Question) -> str:
    age = q.case.patient.get("age_years")
    if age is None:
        return q.press("v:adult")
    record = q.case.record
    if record is not None and record.age_years is not None and Decimal(record.age_years) == Decimal(str(age)):
        return q.press_or_type("v:keep", number(age))
    return number(age)


def _weight_date(q: Question) -> str:
    weighed = q.case.patient.get("weight_date")
    if weighed is None:
        return q.press("v:not known")
    return q.date(dt.date.fromisoformat(weighed))


def _child_pugh(q: Question) -> str:
    return q.press(f"v:{q.case.patient.get('child_pugh') or 'unknown'}")


def _procedure_date(q: Question) -> str:
    return str(q.case.request["procedure_date"])


def _status(q: Question) -> str:
    dose = q.case.dose
    if dose is None:
        return q.press("v:new")
    record, held = q.case.record, bool(q.case.request.get("on_hold"))
    if record is not None and q.label_of("v:same") is not None and record.on_hold == held:
        return q.press("v:same")  # "As saved: on 3 mcg/kg since ..."
    return q.press("v:held" if held else "v:on")  # the record contradicts it: "The record shows ..." confirmed


def _dose_amount(q: Question) -> str:
    assert q.case.dose is not None
    amount = Decimal(str(q.case.dose["amount"]))
    button = q.value_button(amount)
    return button if button is not None and q.case.prefer_buttons else number(amount)


def _dose_since(q: Question) -> str:
    assert q.case.dose is not None
    return q.date(dt.date.fromisoformat(q.case.dose["since"]))


def _last_given(q: Question) -> str:
    assert q.case.dose is not None
    return q.date(dt.date.fromisoformat(q.case.dose["last_given"]))


def _doses_at_level(q: Question) -> str:
    assert q.case.dose is not None
    doses = q.case.dose.get("doses_at_level")
    if doses is None:
        return q.press("v:estimate")
    button = q.value_button(Decimal(doses))
    return button if button is not None and q.case.prefer_buttons else str(doses)


def _lab_value(q: Question) -> str:
    latest = q.case.latest
    return q.press("v:skip") if latest is None else typed_lab(latest)


def _lab_date(q: Question) -> str:
    assert q.case.latest is not None
    return q.date(dt.date.fromisoformat(q.case.latest["date"]))


def in_deciding_unit(lab: Request) -> Decimal:
    return Decimal(str(lab["value"])) * UNITS_BY_TEST[lab["test"]][lab["unit"]]


def _results(case: Case, test: str) -> list[tuple[dt.date, Request]]:
    return [(dt.date.fromisoformat(lab["date"]), lab) for lab in case.request.get("labs") or [] if lab["test"] == test]


def earlier_result(case: Case) -> Request | None:
    """The earlier result the chat asks for, read from the request as the question words it:
    romiplostim "the previous week's platelet count (taken <latest - 10> to <latest - 4>)": the latest of them;
    luspatercept "the lowest haemoglobin from the 3 weeks before ... with no transfusion after it" (none dated
    from that result's day to the day before the latest); lusutrombopag "the platelet count from before the
    course (on or before day 1, <since>)": the latest of them."""
    assert case.latest is not None
    latest = dt.date.fromisoformat(case.latest["date"])
    drug = case.request["drug"]
    if drug == "luspatercept":
        given = [dt.date.fromisoformat(t["date"]) for t in case.request.get("transfusions") or []]
        found = [
            lab
            for day, lab in _results(case, "hemoglobin")
            if latest - dt.timedelta(days=21) <= day < latest and not any(day <= t < latest for t in given)
        ]
        return min(found, key=in_deciding_unit, default=None)
    if drug == "romiplostim":
        first, last = latest - dt.timedelta(days=10), latest - dt.timedelta(days=4)
    else:
        assert case.dose is not None
        first, last = dt.date.min, dt.date.fromisoformat(case.dose["since"])
    dated = [(day, lab) for day, lab in _results(case, "platelets") if first <= day <= last]
    return dated[-1][1] if dated else None  # listed in date order


def _previous_value(q: Question) -> str:
    earlier = earlier_result(q.case)
    return q.press("v:skip") if earlier is None else typed_lab(earlier)


def _previous_date(q: Question) -> str:
    earlier = earlier_result(q.case)
    assert earlier is not None
    return q.date(dt.date.fromisoformat(earlier["date"]))


def _counts(q: Question) -> str:
    """Every count of the request dated from the date the question names (`since`, or the start of the
    lusutrombopag pre-procedure window) to today that the chat does not list yet, one per message, then
    Done. The listed ones are the chat's: the record's, those added, the earlier and latest."""
    answers = q.chat.answers
    since = asked_from(q.reply.text, q.env.today)
    assert since is not None, q.reply.text
    shown: list[tuple[dt.date | None, Decimal | None, str | None]] = [
        (lab.date, lab.value, lab.unit) for lab in [*answers.history_labs, *answers.added_labs]
    ]
    shown += [(answers.previous_date, answers.previous_value, answers.previous_unit)]
    shown += [(answers.lab_date, answers.lab_value, answers.lab_unit)]
    listed = [
        (day, value * UNITS_BY_TEST["platelets"][unit])
        for day, value, unit in shown
        if day is not None and value is not None and unit is not None
    ]
    for lab in q.case.request.get("labs") or []:
        day = dt.date.fromisoformat(lab["date"])
        if lab["test"] != "platelets" or not since <= day <= q.env.today:
            continue
        if (day, in_deciding_unit(lab)) not in listed:
            return f"{day.isoformat()} {typed_lab(lab)}"
    return q.press("v:done")


def asked_from(question: str, today: dt.date) -> dt.date | None:
    """The first date a list question asks about: 'since 2026-06-01', 'from ...', 'the last 12 weeks'."""
    if match := re.search(r"\b(?:since|from) (\d{4}-\d{2}-\d{2})", question):
        return dt.date.fromisoformat(match.group(1))
    if match := re.search(r"\blast (\d+) weeks\b", question):
        return today - dt.timedelta(weeks=int(match.group(1)))
    return None


def _transfusions(q: Question) -> str:
    """One transfusion per message (those in the asked window not yet listed), then Done (or None)."""
    first = asked_from(q.reply.text, q.env.today)
    listed = [(t.date, t.units) for t in q.chat.answers.transfusions]
    for given in q.case.request.get("transfusions") or []:
        day, units = dt.date.fromisoformat(given["date"]), Decimal(str(given["units"]))
        if first is not None and day < first:
            continue
        if (day, units) in listed:
            listed.remove((day, units))
            continue
        return f"{day.isoformat()} {number(units)}"
    return q.press("v:done") if q.label_of("v:done") is not None else q.press("v:none")


def _baseline(q: Question) -> str:
    baseline = q.case.request.get("baseline_rbc_units_per_12_weeks")
    return q.press("v:skip") if baseline is None else number(baseline)


def _adverse(q: Question) -> str:
    reaction = q.case.request.get("adverse_reaction")
    if reaction is None:
        kind = "none"
    elif reaction.get("hypersensitivity") and reaction["grade"] >= 3:
        kind = "hypersensitivity"
    else:
        kind = "severe" if reaction["grade"] >= 3 else "mild"
    return q.press(f"v:{kind}")


ANSWERS: dict[str, Callable[[Question], str]] = {
    "drug": _drug,
    "indication": _indication,
    "region": _region,
    "patient": _patient,
    "weight": _weight,
    "age": _age,
    "weight_date": _weight_date,
    "child_pugh": _child_pugh,
    "procedure_date": _procedure_date,
    "status": _status,
    "dose_amount": _dose_amount,
    "dose_since": _dose_since,
    "last_given": _last_given,
    "doses_at_level": _doses_at_level,
    "lab_value": _lab_value,
    "lab_date": _lab_date,
    "previous_value": _previous_value,
    "previous_date": _previous_date,
    "counts": _counts,
    "transfusions": _transfusions,
    "baseline": _baseline,
    "adverse": _adverse,
}


# --- the conversation ------------------------------------------------------------------------------


@dataclass
class Transcript:
    chat: ChatState
    typed: list[str] = field(default_factory=list)  # what the clinician sent, /new first
    texts: list[str] = field(default_factory=list)  # every reply's text
    steps: list[str] = field(default_factory=list)  # the step each typed answer replied to

    @property
    def request(self) -> Request:
        assert self.chat.request is not None, self.texts[-3:]
        return self.chat.request

    @property
    def response(self) -> Request:
        assert self.chat.response is not None, self.texts[-3:]
        return self.chat.response


def answer(q: Question) -> str:
    """What the clinician types next."""
    pending = q.chat.answers.pending
    if pending is not None:
        if not any(word in pending.question for word in CONFIRMABLE):
            raise ClinicianStuckError(f"step {q.chat.state}: unexpected confirmation {pending.question!r}")
        return q.press("v:yes")  # "Yes, use it"
    if q.chat.state == "review":
        return q.press("confirm")  # "✅ Get recommendation"
    step = ANSWERS.get(q.chat.state)
    if step is None:
        raise ClinicianStuckError(f"the clinician has no answer for the step {q.chat.state!r}: add it to ANSWERS")
    return step(q)


def consult(case: Case) -> Transcript:
    """Run one consultation to its recommendation; every message is typed text."""
    env = case.env()
    chat, outcome = handle(ChatState(), UserInput(text="/new"), env)
    transcript = Transcript(chat, ["/new"], [r.text for r in outcome.replies])
    while chat.state != "result":
        if len(transcript.typed) > MAX_MESSAGES:
            raise ClinicianStuckError(f"no recommendation after {MAX_MESSAGES} messages: {transcript.typed}")
        asked = next((r for r in reversed(outcome.replies) if r.buttons), outcome.replies[-1])
        typed = answer(Question(chat, asked, env, case))
        transcript.steps.append(chat.state)
        before = chat
        chat, outcome = handle(chat, UserInput(text=typed), env)
        transcript.typed.append(typed)
        transcript.texts += [r.text for r in outcome.replies]
        refused = next((r.text for r in outcome.replies if "Please give it again" in r.text), None)
        if refused is not None:  # the core refused the request built from the answers
            raise ClinicianStuckError(f"after {typed!r} the chat said: {refused}")
        if chat.state == before.state and chat.answers == before.answers:
            replies = "\n".join(r.text for r in outcome.replies)
            raise ClinicianStuckError(f"step {chat.state}: the chat refused {typed!r}:\n{replies}")
    transcript.chat = chat
    return transcript
