"""Request errors of the contract: `invalid_request` (shape) and `implausible_value` (bounds).

Messages name the field and what was expected, so the person or system that sent the request
can correct it without reading the contract.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from core.models import DoseRequest, ErrorBody, ErrorCode, ErrorResponse


class RequestError(ValueError):
    """A request the core refuses to decide on; carries the contract's error object."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.field = field

    def to_response(self) -> ErrorResponse:
        """The contract's error JSON for this refusal, so every caller reports it the same way."""
        return ErrorResponse(error=ErrorBody(code=self.code, message=self.message, field=self.field))


EXCERPT = 60  # characters of a sent value or key an error quotes: never the whole of a huge input


def excerpt(text: str) -> str:
    """`text` cut to a short excerpt: an error must not echo megabytes back."""
    return text if len(text) <= EXCERPT else f"{text[:EXCERPT]}… ({len(text):,} characters)"


def field_path(loc: tuple[int | str, ...]) -> str | None:
    """('labs', 0, 'value') -> 'labs[0].value', the contract's field path (long keys cut short)."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = excerpt(part)
            path += f".{name}" if path else name
    return path or None


def _shown(value: Any) -> str:
    try:
        shown = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        shown = repr(value)
    return excerpt(shown)


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The request model that holds the field at `loc` (for spelling suggestions)."""
    model: type[BaseModel] = DoseRequest
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        nested = _nested_model(field.annotation)
        if nested is None:
            return None
        model = nested
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _suggestion(loc: tuple[int | str, ...], candidates: list[str]) -> str:
    name = str(loc[-1])
    if len(name) > EXCERPT:  # difflib is quadratic: a megabyte key is no typo of a field name
        return ""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe(error: ErrorDetails, unknown_keys: list[str]) -> str:
    kind = error["type"]
    loc = error["loc"]
    value = error.get("input")
    if kind == "missing":
        hint = _suggestion(loc, unknown_keys) if unknown_keys else ""
        return f"required field is missing{hint}"
    if kind == "extra_forbidden":
        model = _model_at(loc)
        hint = _suggestion(loc, list(model.model_fields)) if model else ""
        return f"unknown field{hint}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{_shown(value)} is not known here; expected {expected}"
    if kind in {"iso_date", "number_type", "whole_number_type", "bool_type"}:
        return str(error["msg"]).split(", got")[0] + f", got {_shown(value)}"
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"expected an object, got {_shown(value)}"
    if kind in {"list_type", "tuple_type"}:
        return f"expected a list, got {_shown(value)}"
    if kind == "too_long":
        return (
            f"at most {error.get('ctx', {}).get('max_length')} entries, got {error.get('ctx', {}).get('actual_length')}"
        )
    if kind in {"string_type"}:
        return f"expected a string, got {_shown(value)}"
    return f"{error['msg']} (got {_shown(value)})"


def from_validation_error(exc: ValidationError) -> RequestError:
    """The first fault in field order, as the contract reports it."""
    errors = exc.errors(include_url=False)
    if errors and errors[0]["type"] == "json_invalid":
        return RequestError("invalid_request", f"the request is not valid JSON: {errors[0]['msg']}")
    order = list(DoseRequest.model_fields)
    # Unknown fields carry no position of their own: they come after the known ones.
    first = min(
        errors,
        key=lambda e: order.index(str(e["loc"][0])) if e["loc"] and e["loc"][0] in order else len(order),
    )
    loc = tuple(first["loc"])
    if not loc:
        return RequestError("invalid_request", f"the request must be a JSON object, got {_shown(first.get('input'))}")
    if first["type"] == "drug_shape":
        context = first.get("ctx", {})
        path = context.get("field") or f"{field_path(loc)}.{context['subfield']}"
        return RequestError("invalid_request", f"{path}: {context['message']}", path)
    unknown = [str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden" and e["loc"][:-1] == loc[:-1]]
    path = field_path(loc)
    return RequestError("invalid_request", f"{path}: {_describe(first, unknown)}", path)
