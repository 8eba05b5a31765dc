"""A chat's conversation state: plain data, saved after every update and restored on the next."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from core.models import DoseRequest, DoseResponse, Drug

T = TypeVar("T")
U = TypeVar("U")


class _Data(BaseModel):
    # Unknown keys are ignored so that a state saved by an older release still restores.
    model_config = ConfigDict(extra="ignore")


class LabAnswer(_Data):
    test: Literal["platelets", "hemoglobin"]
    value: Decimal
    unit: str
    date: dt.date


class TransfusionAnswer(_Data):
    date: dt.date
    units: Decimal


class LabRecord(_Data):
    test: str
    value: str
    unit: str
    date: dt.date


class TransfusionRecord(_Data):
    date: dt.date
    units: str


class PatientSummary(_Data):
    """What the record holds about one patient, for pre-filling a follow-up visit.

    A consultation keeps a copy from the moment the patient is chosen, so the later questions
    offer the record's values without reading the database again.
    """

    label: str
    weight_kg: str | None = None
    weight_date: dt.date | None = None
    age_years: str | None = None
    child_pugh: str | None = None
    drug: Drug | None = None
    indication: str | None = None
    region: str | None = None
    dose_amount: str | None = None
    dose_since: dt.date | None = None
    last_given: dt.date | None = None
    doses_at_level: int | None = None  # doses given at the current level since it began (Taken counts)
    on_hold: bool = False
    baseline_rbc_units_per_12_weeks: str | None = None
    labs: tuple[LabRecord, ...] = ()
    transfusions: tuple[TransfusionRecord, ...] = ()
    # From the last recommendation given for this label (the audit), for the follow-up's record message.
    procedure_date: dt.date | None = None  # lusutrombopag: the procedure the course is for
    last_decided: dt.date | None = None  # that recommendation's date (its as_of)
    last_action: str | None = None
    last_dose: str | None = None  # e.g. '4 mcg/kg'
    last_rule: str | None = None


class Pending(_Data):
    """An answer that needs a yes before it is used (an unusual value, a likely unit slip)."""

    step: str
    question: str
    updates: dict[str, Any]
    retry: str | None = None  # on "No", the question to ask again (else this step's)


class Answers(_Data):
    drug: Drug | None = None
    indication: str | None = None
    region: str | None = None
    patient_label: str | None = None
    patient_is_new: bool = False
    weight_kg: Decimal | None = None
    weight_date: dt.date | None = None
    weight_date_unknown: bool = False
    weight_from_record: bool = False  # kept from the record, with the record's weighing date
    age_years: Decimal | None = None
    adult: bool = False
    child_pugh: str | None = None
    child_pugh_unknown: bool = False
    procedure_date: dt.date | None = None
    status: Literal["new", "on", "held"] | None = None
    dose_amount: Decimal | None = None
    dose_since: dt.date | None = None
    last_given: dt.date | None = None
    doses_at_level: int | None = None
    doses_estimated: bool = False
    lab_value: Decimal | None = None
    lab_unit: str | None = None
    lab_date: dt.date | None = None
    lab_skipped: bool = False
    previous_value: Decimal | None = None
    previous_unit: str | None = None
    previous_date: dt.date | None = None
    previous_skipped: bool = False
    added_labs: list[LabAnswer] = Field(default_factory=list)  # counts since `since` typed in this visit
    counts_done: bool = False
    transfusions: list[TransfusionAnswer] = Field(default_factory=list)
    transfusions_done: bool = False
    baseline: Decimal | None = None
    baseline_skipped: bool = False
    adverse: Literal["none", "mild", "severe", "hypersensitivity"] | None = None
    # From the patient's record: results already known, sent with the request.
    history_labs: list[LabAnswer] = Field(default_factory=list)
    record: PatientSummary | None = None  # the record as it was when the patient was chosen
    pending: Pending | None = None
    editing: bool = False
    # "Same regimen, new result": the record's answers stand; only what it lacks and the new results are asked.
    followup: bool = False
    followup_asked: list[str] = Field(default_factory=list)  # steps asked in this follow-up (Back returns to them)

    @model_serializer(mode="wrap")
    def _without_copies(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        """As saved (JSON): the record's results that `history_labs` already holds are written once.

        A follow-up carries the record's results twice (the record as chosen, and the deciding test's
        results it pre-filled): for a patient with a result a day, that doubled the chat state that
        is read and written on every update. The record keeps where they were (`in_history`: runs of
        [position, length]), and `_with_copies` puts them back on reading, the record as it was.
        """
        data = handler(self)
        if info.mode != "json" or self.record is None or not isinstance(data.get("record"), dict):
            return data
        runs = _shared_runs(self.record.labs, self.history_labs)
        if runs and isinstance(data["record"].get("labs"), list):
            data["record"]["labs"] = _without(data["record"]["labs"], runs)
            data["record"]["in_history"] = runs
        return data

    @model_validator(mode="before")
    @classmethod
    def _with_copies(cls, data: Any) -> Any:
        """The record's results written once (see `_without_copies`) restored from `history_labs`."""
        record = data.get("record") if isinstance(data, dict) else None
        if not isinstance(record, dict) or "in_history" not in record:
            return data
        record = dict(record)
        runs = record.pop("in_history")
        labs = _with(list(record.get("labs", ())), runs, (_as_record(lab) for lab in data["history_labs"]))
        return {**data, "record": {**record, "labs": labs}}


def _same(record: LabRecord, answer: LabAnswer) -> bool:
    return (record.test, record.date, record.unit, record.value) == (
        answer.test,
        answer.date,
        answer.unit,
        str(answer.value),
    )


def _shared_runs(labs: tuple[LabRecord, ...], history: list[LabAnswer]) -> list[list[int]]:
    """Where history's results, in order and all of them, stand in the record's (runs of [position,
    length]); none if they are not all there in order as the same values (then nothing is left out)."""
    return _runs(labs, history, _same)


def _runs(items: Sequence[T], wanted: Sequence[U], same: Callable[[T, U], bool]) -> list[list[int]]:
    """Where every one of `wanted`, in order, stands among `items` ([position, length] runs), or []."""
    runs: list[list[int]] = []
    next_one = 0
    for position, item in enumerate(items):
        if next_one < len(wanted) and same(item, wanted[next_one]):
            if runs and runs[-1][0] + runs[-1][1] == position:
                runs[-1][1] += 1
            else:
                runs.append([position, 1])
            next_one += 1
    return runs if next_one == len(wanted) and wanted else []


def _without(items: list[Any], runs: list[list[int]]) -> list[Any]:
    left_out = {position for start, length in runs for position in range(start, start + length)}
    return [item for position, item in enumerate(items) if position not in left_out]


def _with(items: list[Any], runs: list[list[int]], copies: Iterable[Any]) -> list[Any]:
    """`items` with the runs left out by `_without` put back, taken in order from `copies`."""
    restored, taken = list(items), iter(copies)
    for start, length in runs:
        restored[start:start] = [next(taken) for _ in range(length)]
    return restored


def _as_record(lab: Any) -> dict[str, Any]:
    """A history result (saved JSON, or a model) as the record's result it was copied from."""
    if isinstance(lab, LabAnswer):
        return {"test": lab.test, "value": str(lab.value), "unit": lab.unit, "date": lab.date}
    return {"test": lab["test"], "value": str(lab["value"]), "unit": lab["unit"], "date": lab["date"]}


def _in_request(lab: dict[str, Any]) -> dict[str, Any]:
    """A history result (saved JSON: the value as text) as the request's JSON holds it (a number: an
    int where whole, else a float, as the contract writes it)."""
    value = Decimal(str(lab["value"]))
    number = int(value) if value == value.to_integral_value() else float(value)
    return {**lab, "value": number}


def _same_in_request(lab: Any, known: Any) -> bool:
    """The request's result is the history's, to the JSON type of its value (45 and 45.0 differ)."""
    if not isinstance(lab, dict) or not isinstance(known, dict) or set(lab) != set(known):
        return False
    restored = _in_request(known)
    return bool(lab == restored) and type(lab["value"]) is type(restored["value"])


class RecordEdit(_Data):
    """A correction under way (/patient's Edit, Change weight, Delete patient): what is edited, the
    answers taken so far (JSON text), and a value awaiting a yes. Nothing is written until it is whole."""

    label: str
    what: Literal["lab", "dose", "transfusion", "weight", "patient"]
    row_id: int | None = None  # the entry's row (the patient's for weight and patient)
    step: Literal["value", "date", "label"] = "value"
    old: dict[str, Any] = Field(default_factory=dict)  # the entry as it was (JSON text)
    new: dict[str, Any] = Field(default_factory=dict)  # the new value, once taken
    pending: dict[str, Any] | None = None  # a value to confirm (a likely unit slip, an unusual value)
    indication: str | None = None  # a dose's: which levels the label has


class ChatState(_Data):
    """Everything a chat needs to resume: the flow's state name and the answers so far."""

    state: str = "idle"
    answers: Answers = Field(default_factory=Answers)
    request: dict[str, Any] | None = None  # the last recommendation's request and response
    response: dict[str, Any] | None = None
    saved: bool = False
    reminders_set: bool = False  # reminders were set from this recommendation (not offered again)
    reminder_zone: str | None = None  # the zone reminders are being set in
    offered_record: str | None = None  # the patient whose record message (/patients LABEL) was shown last
    record_edit: RecordEdit | None = None  # a correction of a record under way (flows/records.py)

    @model_serializer(mode="wrap")
    def _without_copies(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        """As saved (JSON): the request's results that `answers.history_labs` holds are written once
        (`request_in_history`: where they were), as the record's are (`Answers._without_copies`)."""
        data = handler(self)
        request, answers = data.get("request"), data.get("answers")
        history = answers.get("history_labs") if isinstance(answers, dict) else None
        if info.mode != "json" or not isinstance(request, dict) or not isinstance(request.get("labs"), list):
            return data
        runs = _runs(request["labs"], history or [], _same_in_request)
        if runs:
            data["request"] = {**request, "labs": _without(request["labs"], runs)}
            data["request_in_history"] = runs
        return data

    @model_validator(mode="before")
    @classmethod
    def _with_copies(cls, data: Any) -> Any:
        """The request's results written once (see `_without_copies`) restored from `answers.history_labs`."""
        if not isinstance(data, dict) or "request_in_history" not in data:
            return data
        data = dict(data)
        runs, request = data.pop("request_in_history"), dict(data["request"])
        request["labs"] = _with(request["labs"], runs, (_in_request(lab) for lab in data["answers"]["history_labs"]))
        return {**data, "request": request}

    def dose_request(self) -> DoseRequest:
        """The last recommendation's request as the core's model (kept as JSON between updates)."""
        assert self.request is not None, "asked only once a recommendation was given"
        return DoseRequest.model_validate(self.request)

    def dose_response(self) -> DoseResponse:
        """The last recommendation as the core's model (kept as JSON between updates)."""
        assert self.response is not None, "asked only once a recommendation was given"
        return DoseResponse.model_validate(self.response)
