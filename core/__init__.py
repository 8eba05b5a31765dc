"""HemaDose dosing core: pure, synchronous rules of RULES.md (ruleset v1.1), no I/O."""

from core.contract import decide_json, recommend_json, recommend_lines, recommend_outcome
from core.engine import recommend, validate
from core.errors import RequestError
from core.missed import MissedDoseGuidance, missed_dose_guidance
from core.models import DoseRequest, DoseResponse, ErrorResponse

__all__ = [
    "DoseRequest",
    "DoseResponse",
    "ErrorResponse",
    "MissedDoseGuidance",
    "RequestError",
    "decide_json",
    "missed_dose_guidance",
    "recommend",
    "recommend_json",
    "recommend_lines",
    "recommend_outcome",
    "validate",
]
