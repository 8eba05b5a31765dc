"""The clinical note: the last decision as the card shows it, with its reasons, to paste into the record.

The card and the Why? text are the chat's own (flows/render.py), rendered from the core's stored
request and decision: the note cannot say a number the card did not.
"""

from __future__ import annotations

from bot.exports.record import PatientRecord, Recommendation
from core.models import DoseRequest
from flows import render
from flows.replies import Env
from flows.state import Answers

NO_DECISION = "No recommendation is on record for this patient yet: the note needs one (/new gives one)."


def _answers(label: str, request: DoseRequest) -> Answers:
    """What the card reads besides the decision: the patient's label, and the request's weight and dose."""
    dose = request.current_dose
    return Answers(
        drug=request.drug,
        indication=request.indication,
        region=request.region,
        patient_label=label,
        weight_kg=request.patient.weight_kg,
        dose_amount=dose.amount if dose is not None else None,
    )


def clinical_note(record: PatientRecord) -> str | None:
    """The note for the last recommendation, or None when there is none."""
    last = record.last
    if last is None:
        return None
    return note_for(record.label, last)


def note_for(label: str, entry: Recommendation) -> str:
    request, response = entry.request, entry.response
    card = render.recommendation(response, _answers(label, request), Env(request.as_of), request)
    why = render.why(response.model_dump(mode="json"), saved=True)
    asked = entry.at.strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"HemaDose clinical note — patient {label}",
        f"Decision for {request.as_of.isoformat()}, asked by {entry.asked_by} at {asked}",
        f"Ruleset {response.ruleset} ({render.RULES_NAME})",
        "",
        card.text,
        "",
        why.text,
    ]
    return "\n".join(lines) + "\n"
