"""The JSON face of the core (shared/spec/dosing-contract.md): request text in, response text out.

Pure: the command line (bot/cli.py) only reads files and writes lines. Output is deterministic
(no clock, fixed key order), so the same request always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pydantic import ValidationError
from pydantic_core import to_json

from core.engine import recommend, recommend_data
from core.errors import RequestError, from_validation_error
from core.models import DoseRequest, DoseResponse, ErrorResponse


def decide_json(text: str | bytes) -> DoseResponse | ErrorResponse:
    """One request as JSON -> the recommendation, or the contract's error object."""
    try:
        request = DoseRequest.model_validate_json(text)
        return recommend(request)
    except ValidationError as exc:
        return from_validation_error(exc).to_response()
    except RequestError as exc:
        return exc.to_response()


def recommend_json(text: str | bytes) -> tuple[str, bool]:
    """One request -> (one line of JSON, whether it is a recommendation rather than an error).

    The same bytes as `decide_json(text).model_dump_json()`, without building the response models.
    """
    try:
        request = DoseRequest.model_validate_json(text)
        return to_json(recommend_data(request)).decode(), True
    except ValidationError as exc:
        return from_validation_error(exc).to_response().model_dump_json(), False
    except RequestError as exc:
        return exc.to_response().model_dump_json(), False


def recommend_lines(lines: Iterable[str | bytes]) -> Iterator[str]:
    """JSON Lines batch: one output line per non-blank input line, in order; errors stay in line."""
    for line in lines:
        if line and not _blank(line):
            yield recommend_json(line)[0]


def _blank(line: str | bytes) -> bool:
    """Only white space, Unicode's included (a no-break space from a spreadsheet is blank too)."""
    if line[:1] in (b"{", "{"):  # the usual line: a JSON object, not blank
        return False
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return text.isspace()
