"""Fuzz of the JSON contract (issue 10): mutated requests never crash it, never echo megabytes,
and a batch writes one line per request line whatever the lines hold.

The mutations are seeded (repeatable): wrong types, extreme numbers and dates, deep nesting, huge
strings and keys, bad UTF-8, keys given twice, cut-off text. Every outcome must be valid JSON and a
recommendation or a contract error (`invalid_request` / `implausible_value`): an `internal_error`
here is a bug of ours that the fuzz found.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from typing import Any

import pytest

from core.contract import MAX_REQUEST_BYTES, recommend_outcome
from tests import helpers

SEEDS = [
    helpers.romiplostim(),
    helpers.romiplostim(patient={"weight_kg": 12, "age_years": 2}),
    helpers.hetrombopag(),
    helpers.hetrombopag("cit", current_dose=None),
    helpers.lusutrombopag(),
    helpers.lusutrombopag(region="jp", current_dose=helpers.dose(3, "mg", "2026-11-18", "2026-11-21")),
    helpers.luspatercept(),
    helpers.luspatercept("beta_thalassemia", baseline_rbc_units_per_12_weeks=6),
]
EDGE_DATES = [
    "0001-01-01",
    "9999-12-31",
    "1899-12-31",
    "1900-01-01",
    "2200-12-31",
    "2201-01-01",
    "2026-02-30",
    "2026-11-22T10:00:00",
    "22/11/2026",
    "",
]
EDGE_NUMBERS: list[Any] = [0, -1, -0.0, 1e-300, 1e300, 10**40, 3000.0001, 2**63, 0.1 + 0.2, 1e308, -1e308]
WEIRD: list[Any] = [None, True, False, "", "72", "x" * 5000, [], {}, [[[]]], {"a": {"b": {}}}, "\u0000", "🩸"]
MESSAGE_LIMIT = 2000  # an error message quotes excerpts, never the whole input


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at] if at else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*at, index))
    return found


def _set(root: Any, path: tuple[Any, ...], new: Any) -> None:
    for part in path[:-1]:
        root = root[part]
    root[path[-1]] = new


def _delete(root: Any, path: tuple[Any, ...]) -> None:
    for part in path[:-1]:
        root = root[part]
    del root[path[-1]]


def mutate(rng: random.Random) -> str | bytes:
    """One mutated request text."""
    request = json.loads(json.dumps(rng.choice(SEEDS)))
    for _ in range(rng.randint(1, 3)):
        paths = _paths(request)
        kind = rng.randrange(9)
        path = rng.choice(paths) if paths else None
        if kind == 0 and path:
            _set(request, path, rng.choice(EDGE_DATES))
        elif kind == 1 and path:
            _set(request, path, rng.choice(EDGE_NUMBERS))
        elif kind == 2 and path:
            _set(request, path, rng.choice(WEIRD))
        elif kind == 3 and path:
            _delete(request, path)
        elif kind == 4:
            request[rng.choice(["x" * rng.choice([1, 100, 100_000]), "weight", "lab"])] = rng.choice(WEIRD)
        elif kind == 5 and path:  # deep nesting, spliced into the text below
            _set(request, path, f"__deep_{rng.choice([10, 300, 3000])}__")
        elif kind == 6 and isinstance(request.get("labs"), list) and 0 < len(request["labs"]) < 10:
            request["labs"] = request["labs"] * rng.choice([2, 500, 1001])
    text = json.dumps(request, ensure_ascii=False)
    for depth in (10, 300, 3000):
        text = text.replace(f'"__deep_{depth}__"', "[" * depth + "1" + "]" * depth)
    tail = rng.randrange(6)
    if tail == 0 and text.endswith("}"):  # a key given twice, last one would win
        key = rng.choice(list(request) or ["drug"])
        text = text[:-1] + f', "{key}": ' + json.dumps(rng.choice(WEIRD)) + "}"
    elif tail == 1:
        text = text[: rng.randrange(len(text) + 1)]
    elif tail == 2:
        raw = text.encode()
        cut = rng.randrange(len(raw) + 1)
        return raw[:cut] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]) + raw[cut:]
    return text


def test_twenty_thousand_mutated_requests_give_json_and_no_internal_error() -> None:
    rng = random.Random(20261202)
    outcomes = {"ok": 0, "invalid": 0}
    for number in range(20_000):
        text = mutate(rng)
        line, outcome = recommend_outcome(text)
        assert outcome != "internal", (number, text[:500], line)
        body = json.loads(line)
        if outcome == "invalid":
            assert body["error"]["code"] in ("invalid_request", "implausible_value")
            assert len(body["error"]["message"]) < MESSAGE_LIMIT, (number, body["error"]["message"][:200])
            assert body["error"]["field"] is None or len(body["error"]["field"]) < 200
        else:
            assert body["action"] in (
                "start",
                "continue",
                "increase",
                "decrease",
                "hold",
                "resume",
                "discontinue",
                "complete",
                "refer",
            )
        outcomes[outcome] += 1
    # The mix shows the fuzz reaches both sides (bare refusals alone would prove little).
    assert outcomes["ok"] > 500, outcomes
    assert outcomes["invalid"] > 10_000, outcomes


@pytest.mark.parametrize(
    ("field", "value"),
    [("procedure_date", "0001-01-01"), ("as_of", "9999-12-31"), ("as_of", "1899-12-31"), ("as_of", "2201-01-01")],
)
def test_dates_outside_the_clinical_calendar_are_invalid_requests_naming_the_field(field: str, value: str) -> None:
    line, outcome = recommend_outcome(json.dumps(helpers.lusutrombopag(**{field: value})))
    assert outcome == "invalid"
    assert json.loads(line) == {
        "error": {
            "code": "invalid_request",
            "message": f'{field}: expected a date from 1900-01-01 to 2200-12-31, got "{value}"',
            "field": field,
        }
    }


def test_a_key_given_twice_is_an_invalid_request_not_the_last_value() -> None:
    text = json.dumps(helpers.romiplostim()).replace('"weight_kg": 72', '"weight_kg": 72, "weight_kg": 7.2')
    line, outcome = recommend_outcome(text)
    assert (json.loads(line), outcome) == (
        {
            "error": {
                "code": "invalid_request",
                "message": "patient.weight_kg: the key weight_kg is given twice",
                "field": "patient.weight_kg",
            }
        },
        "invalid",
    )


def test_a_huge_unknown_key_is_not_echoed_back() -> None:
    request = helpers.romiplostim() | {"k" * 500_000: 1}
    line, outcome = recommend_outcome(json.dumps(request))
    assert outcome == "invalid"
    assert len(line) < 400
    assert json.loads(line)["error"]["message"].endswith("… (500,000 characters): unknown field")


def test_a_request_over_the_size_limit_is_refused_before_parsing() -> None:
    request = helpers.romiplostim() | {"note": "x" * MAX_REQUEST_BYTES}
    line, outcome = recommend_outcome(json.dumps(request))
    assert outcome == "invalid"
    assert json.loads(line)["error"]["message"].startswith("the request is 1,048,")


def test_more_than_a_thousand_labs_is_an_invalid_request() -> None:
    request = helpers.romiplostim(labs=[helpers.platelets(32, "2026-11-21")] * 1001)
    line, outcome = recommend_outcome(json.dumps(request))
    assert outcome == "invalid"
    assert json.loads(line)["error"] == {
        "code": "invalid_request",
        "message": "labs: at most 1000 entries, got 1001",
        "field": "labs",
    }


def test_an_infinite_number_is_an_invalid_request() -> None:
    text = json.dumps(helpers.romiplostim()).replace('"weight_kg": 72', '"weight_kg": 1e999')
    line, outcome = recommend_outcome(text)
    assert outcome == "invalid"
    assert json.loads(line)["error"]["message"] == "patient.weight_kg: expected a finite number, got Infinity"


def test_an_internal_fault_on_one_line_is_that_lines_error_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core import contract
    from core.engine import recommend_data as real  # what core.contract calls

    def flaky(request: Any) -> dict[str, Any]:
        if request.drug == "hetrombopag":
            raise OverflowError("date value out of range")
        return real(request)

    monkeypatch.setattr(contract, "recommend_data", flaky)
    lines = [json.dumps(helpers.romiplostim()), json.dumps(helpers.hetrombopag()), json.dumps(helpers.luspatercept())]
    out = list(contract.recommend_outcomes(lines))
    assert [outcome for _, outcome in out] == ["ok", "internal", "ok"]
    assert json.loads(out[1][0]) == {
        "error": {
            "code": "internal_error",
            "message": "the request could not be decided (OverflowError)",
            "field": None,
        }
    }


def test_batch_process_writes_one_line_per_request_line_whatever_they_hold() -> None:
    rng = random.Random(7)
    lines: list[bytes] = []
    for _ in range(2000):
        text = mutate(rng)
        raw = text if isinstance(text, bytes) else text.encode()
        lines.append(raw.replace(b"\n", b" ").replace(b"\r", b" "))
    requests = [line for line in lines if line.strip()]
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "recommend", "--batch"],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out = done.stdout.decode().splitlines()
    assert len(out) == len(requests)
    for line in out:
        json.loads(line)
    assert b"Traceback" not in done.stderr
