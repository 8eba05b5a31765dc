"""Request builders and a contract runner shared by the core tests."""

from __future__ import annotations

import json
from copy import deepcopy
from typing import Any

from core.contract import recommend_json

AS_OF = "2026-11-22"


def platelets(value: float, date: str, unit: str = "10^9/L") -> dict[str, Any]:
    return {"test": "platelets", "value": value, "unit": unit, "date": date}


def hemoglobin(value: float, date: str, unit: str = "g/dL") -> dict[str, Any]:
    return {"test": "hemoglobin", "value": value, "unit": unit, "date": date}


def dose(amount: float, unit: str, since: str, last_given: str, **extra: Any) -> dict[str, Any]:
    return {"amount": amount, "unit": unit, "since": since, "last_given": last_given, **extra}


def romiplostim(**overrides: Any) -> dict[str, Any]:
    """RULES.md 7, cases 1-6: 72 kg, 3 mcg/kg since 2026-11-01, last given 2026-11-15."""
    request: dict[str, Any] = {
        "drug": "romiplostim",
        "indication": "itp",
        "region": "us",
        "as_of": AS_OF,
        "patient": {"weight_kg": 72},
        "current_dose": dose(3, "mcg/kg", "2026-11-01", "2026-11-15"),
        "labs": [platelets(32, "2026-11-21")],
    }
    request.update(overrides)
    return request


def hetrombopag(indication: str = "itp", **overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "drug": "hetrombopag",
        "indication": indication,
        "as_of": AS_OF,
        "current_dose": dose(2.5, "mg", "2026-11-01", "2026-11-21"),
        "labs": [platelets(30, "2026-11-21")],
    }
    request.update(overrides)
    return request


def lusutrombopag(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "drug": "lusutrombopag",
        "indication": "cld_procedure",
        "as_of": AS_OF,
        "procedure_date": "2026-12-05",
        "labs": [platelets(38, "2026-11-21")],
    }
    request.update(overrides)
    return request


def luspatercept(indication: str = "mds", **overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "drug": "luspatercept",
        "indication": indication,
        "as_of": AS_OF,
        "patient": {"weight_kg": 70},
        "current_dose": dose(1, "mg/kg", "2026-10-11", "2026-11-01", doses_at_level=2),
        "transfusions": [{"date": "2026-11-08", "units": 1}],
        "labs": [hemoglobin(8.9, "2026-11-21")],
    }
    request.update(overrides)
    return request


def run(request: dict[str, Any]) -> dict[str, Any]:
    """A request through the JSON contract, as an outside system would send it."""
    line, ok = recommend_json(json.dumps(request))
    result: dict[str, Any] = json.loads(line)
    assert ok, result
    return result


def run_error(request: dict[str, Any] | str) -> dict[str, Any]:
    text = request if isinstance(request, str) else json.dumps(request)
    line, ok = recommend_json(text)
    result: dict[str, Any] = json.loads(line)
    assert not ok, result
    return result["error"]  # type: ignore[no-any-return]


def codes(response: dict[str, Any]) -> list[str]:
    return [w["code"] for w in response["warnings"]]


def rules(response: dict[str, Any]) -> list[str]:
    return [r["rule"] for r in response["rationale"]]


def with_(request: dict[str, Any], **changes: Any) -> dict[str, Any]:
    updated = deepcopy(request)
    updated.update(changes)
    return updated


async def save_with_reminders(
    service: Any, user: int, label: str, request: dict[str, Any], at: str, zone: str, chat_key: str | None = None
) -> dict[str, Any]:
    """What the chat does on Save to patient and Set reminders: save, set the zone, schedule."""
    import datetime as dt

    from core import recommend
    from core.models import DoseRequest
    from flows.replies import SaveConsultation, ScheduleReminders, response_json

    parsed = DoseRequest.model_validate(request)
    response = recommend(parsed)
    storage = service.storage
    async with storage.session() as session, session.begin():
        user_id = await storage.user_id(session, f"tg:{user}")
        await storage.save_consultation(session, user_id, SaveConsultation(label, parsed, response))
        await service._set_zone(session, user_id, zone)
        effect = ScheduleReminders(label, parsed.drug, response, dt.time.fromisoformat(at))
        await service.reminders.schedule(session, user_id, chat_key or f"tg:{user}:{user}", effect, zone)
    return response_json(response)
