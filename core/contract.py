"""The JSON face of the core (shared/spec/dosing-contract.md): request text in, response text out.

Pure: the command line (bot/cli.py) only reads files and writes lines. Output is deterministic
(no clock, fixed key order), so the same request always gives the same bytes.

Input is bounded and total: a request over `MAX_REQUEST_BYTES` or with a key given twice is an
`invalid_request`; any fault of ours on one request becomes that request's `internal_error`
object, never a traceback, so a batch always writes one line per request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import to_json

from core.engine import recommend, recommend_data
from core.errors import RequestError, excerpt, field_path, from_validation_error
from core.models import DoseRequest, DoseResponse, ErrorResponse

MAX_REQUEST_BYTES = 1 << 20  # 1 MiB: a thousand labs take about 70 kB
Outcome = Literal["ok", "invalid", "internal"]
log = logging.getLogger("hemadose.contract")


def decide_json(text: str | bytes) -> DoseResponse | ErrorResponse:
    """One request as JSON -> the recommendation, or the contract's error object."""
    try:
        _check_size(text)
        request = DoseRequest.model_validate_json(text)
        _check_repeated_keys(text, request)
        return recommend(request)
    except ValidationError as exc:
        return from_validation_error(exc).to_response()
    except RequestError as exc:
        return exc.to_response()


def recommend_json(text: str | bytes) -> tuple[str, bool]:
    """One request -> (one line of JSON, whether it is a recommendation rather than an error).

    The same bytes as `decide_json(text).model_dump_json()`, without building the response models.
    """
    line, outcome = recommend_outcome(text)
    return line, outcome == "ok"


def recommend_outcome(text: str | bytes) -> tuple[str, Outcome]:
    """One request -> one line of JSON and what it is; never raises."""
    try:
        _check_size(text)
        request = DoseRequest.model_validate_json(text)
        _check_repeated_keys(text, request)
        return to_json(recommend_data(request)).decode(), "ok"
    except ValidationError as exc:
        return from_validation_error(exc).to_response().model_dump_json(), "invalid"
    except RequestError as exc:
        return exc.to_response().model_dump_json(), "invalid"
    except Exception as exc:  # a fault of ours: reported for this request alone
        log.error("internal error on a request: %s", type(exc).__name__)
        error = RequestError("internal_error", f"the request could not be decided ({type(exc).__name__})")
        return error.to_response().model_dump_json(), "internal"


def recommend_lines(lines: Iterable[str | bytes]) -> Iterator[str]:
    """JSON Lines batch: one output line per non-blank input line, in order; errors stay in line."""
    for line, _ in recommend_outcomes(lines):
        yield line


def recommend_outcomes(lines: Iterable[str | bytes]) -> Iterator[tuple[str, Outcome]]:
    """The batch with each line's outcome (the command line's exit status needs the internal ones)."""
    for line in lines:
        if line and not _blank(line):
            yield recommend_outcome(line)


def _blank(line: str | bytes) -> bool:
    """Only white space, Unicode's included (a no-break space from a spreadsheet is blank too)."""
    if line[:1] in (b"{", "{"):  # the usual line: a JSON object, not blank
        return False
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return text.isspace()


class _Object(dict[str, Any]):
    """A JSON object that remembers a key it was given twice (json.loads keeps the last silently)."""

    duplicate: str | None = None


def _first_repeated(pairs: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    raise AssertionError("called only when a key repeats")  # pragma: no cover


def _check_size(text: str | bytes) -> None:
    """Refuse oversize text before pydantic reads it (and before anything echoes it)."""
    if len(text) > MAX_REQUEST_BYTES:
        raise RequestError(
            "invalid_request", f"the request is {len(text):,} bytes; at most {MAX_REQUEST_BYTES:,} are read"
        )


def _fields_given(request: DoseRequest) -> int:
    """The keys the request's JSON objects carried: every known key sets one field (unknown keys are
    refused), so with no key repeated this is the number of keys in the text."""
    given = len(request.model_fields_set) + len(request.patient.model_fields_set)
    for part in (request.current_dose, request.adverse_reaction, *request.labs, *request.transfusions):
        if part is not None:
            given += len(part.model_fields_set)
    return given


def _check_repeated_keys(text: str | bytes, request: DoseRequest) -> None:
    """A key given twice: JSON parsers keep the last silently (`"weight_kg": 72, "weight_kg": 7.2` would
    dose a tenth of the weight without a word).

    Every key is followed by one colon, so when the text has no more colons than the fields the request
    set, no key can repeat: one count in C instead of a second parse. Only when the counts differ (a
    repeated key, or a colon inside a string) is the text parsed again to find the repeated key.
    """
    colons = text.count(b":") if isinstance(text, bytes) else text.count(":")
    if colons <= _fields_given(request):
        return
    repeated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        obj = dict(items)
        if len(obj) == len(items):
            return obj
        repeated = True
        marked = _Object(obj)
        marked.duplicate = _first_repeated(items)
        return marked

    parsed = json.loads(text, object_pairs_hook=pairs)  # valid JSON: pydantic has just read it
    if not repeated:
        return
    path = _duplicate_path(parsed, ())
    if path is not None:
        where = field_path(path)
        raise RequestError("invalid_request", f"{where}: the key {excerpt(str(path[-1]))} is given twice", where)


def _duplicate_path(value: Any, at: tuple[int | str, ...]) -> tuple[int | str, ...] | None:
    if isinstance(value, dict):
        if isinstance(value, _Object) and value.duplicate is not None:
            return (*at, value.duplicate)
        for key, item in value.items():
            found = _duplicate_path(item, (*at, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _duplicate_path(item, (*at, index))
            if found is not None:
                return found
    return None
