"""The FHIR Bundle export and import, built and validated with fhir.resources (its R4B models: FHIR
4.3, the R4 line; fhir.resources 8 ships no 4.0.1 package).

A `collection` Bundle: the Patient (the label as a pseudonymous identifier, nothing else), an
Observation per result (LOINC, UCUM) and per fact (weight, age, Child-Pugh class, baseline burden), a
MedicationAdministration per dose, a Procedure per transfusion, a MedicationStatement for the current
treatment, a MedicationRequest for the last recommendation (its dose and dates), a DetectedIssue per
warning, and a Provenance naming HemaDose and the ruleset. Import reads the same resources back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from bot.exports import checks
from bot.exports.checks import UnreadableError
from bot.exports.csv_format import BASELINE_UNIT, Parsed
from bot.exports.record import PatientRecord
from core.engine import RULESET_VERSION
from core.units import HEMOGLOBIN_FACTORS, PLATELET_FACTORS
from flows.administration import administration

LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"
LABEL_SYSTEM = "urn:hemadose:patient-label"  # a label is the user's code, unique only among their patients
HEMADOSE = "urn:hemadose:code"  # HemaDose's own codes: facts without a LOINC code, drugs, warnings
REGION_EXTENSION = "urn:hemadose:extension:region"
UNITS_EXTENSION = "urn:hemadose:extension:transfusion-units"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
# LOINC by test and unit: haemoglobin in mmol/L is a substance concentration, its own code.
LAB_CODES = {
    "platelets": ("777-3", "Platelets [#/volume] in Blood by Automated count"),
    "hemoglobin": ("718-7", "Hemoglobin [Mass/volume] in Blood"),
}
HB_MOLAR = ("59260-0", "Hemoglobin [Moles/volume] in Blood")
# UCUM codes for the units the chat writes: 10^9/L is 10*9/L; G/L ("giga per litre") the same; mcg is ug.
UCUM_CODES = {unit: unit.replace("^", "*") for unit in (*PLATELET_FACTORS, *HEMOGLOBIN_FACTORS, "mg/kg", "mg", "kg")}
UCUM_CODES |= {"G/L": UCUM_CODES[next(iter(PLATELET_FACTORS))], "mcg/kg": "ug/kg", "years": "a"}
FACT_CODES = {
    "weight_kg": (LOINC, "29463-7", "Body weight", "kg"),
    "age_years": (LOINC, "30525-0", "Age", "years"),
    "child_pugh": (HEMADOSE, "child-pugh-class", "Child-Pugh class", ""),
    "baseline_rbc_units_per_12_weeks": (
        HEMADOSE,
        "baseline-rbc-units",
        "Baseline RBC transfusion burden",
        BASELINE_UNIT,
    ),
}
REQUEST_STATUS = {  # the decision's action -> MedicationRequest.status
    "start": "active",
    "continue": "active",
    "increase": "active",
    "decrease": "active",
    "resume": "active",
    "hold": "on-hold",
    "discontinue": "stopped",
    "complete": "completed",
    "refer": "draft",  # the rules did not decide: a draft the clinician completes
}
ISSUE_SEVERITY = {"critical": "high", "warning": "moderate", "info": "low"}


def _number(value: str | Decimal) -> Decimal:
    return Decimal(str(value))


def _quantity(value: str | Decimal, unit: str) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": _number(value), "unit": unit}
    if unit in UCUM_CODES:
        quantity |= {"system": UCUM, "code": UCUM_CODES[unit]}
    return quantity


def _drug(drug: str) -> dict[str, Any]:
    return {"coding": [{"system": HEMADOSE, "code": drug, "display": drug}], "text": drug}


def _url(label: str, *parts: object) -> str:
    """A stable entry URL: the same record exports the same Bundle."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, '/'.join(['hemadose', label, *map(str, parts)]))}"


def to_bundle(record: PatientRecord, now: dt.datetime) -> Bundle:
    """The record as a validated Bundle (fhir.resources raises if a resource is malformed)."""
    label = record.label
    patient = _url(label, "patient")
    subject = {"reference": patient}
    entries: list[tuple[str, dict[str, Any]]] = [
        (patient, {"resourceType": "Patient", "identifier": [{"system": LABEL_SYSTEM, "value": label}]})
    ]
    for name, (system, code, display, unit) in FACT_CODES.items():
        value = getattr(record, name)
        if value is None:
            continue
        fact: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
            "subject": subject,
        }
        fact |= {"valueString": value} if name == "child_pugh" else {"valueQuantity": _quantity(value, unit)}
        if name == "weight_kg" and record.weight_date is not None:
            fact["effectiveDateTime"] = record.weight_date.isoformat()
        entries.append((_url(label, "fact", name), fact))
    for index, lab in enumerate(record.labs):
        code, display = HB_MOLAR if lab.test == "hemoglobin" and lab.unit == "mmol/L" else LAB_CODES[lab.test]
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": lab.test},
            "subject": subject,
            "effectiveDateTime": lab.date.isoformat(),
            "valueQuantity": _quantity(lab.value, lab.unit),
        }
        entries.append((_url(label, "lab", index), observation))
    for index, dose in enumerate(record.doses):
        given: dict[str, Any] = {
            "resourceType": "MedicationAdministration",
            "status": "completed" if dose.status == "given" else "not-done",
            "medicationCodeableConcept": _drug(dose.drug),
            "subject": subject,
            "effectiveDateTime": dose.given_on.isoformat(),
            "dosage": {"dose": _quantity(dose.amount, dose.unit)},
        }
        if dose.status != "given":
            given["statusReason"] = [{"coding": [{"system": HEMADOSE, "code": dose.status}], "text": dose.status}]
        entries.append((_url(label, "dose", index), given))
    for index, transfusion in enumerate(record.transfusions):
        procedure = {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"coding": [{"system": HEMADOSE, "code": "red-cell-transfusion"}], "text": "Red-cell transfusion"},
            "subject": subject,
            "performedDateTime": transfusion.date.isoformat(),
            "extension": [{"url": UNITS_EXTENSION, "valueDecimal": _number(transfusion.units)}],
        }
        entries.append((_url(label, "transfusion", index), procedure))
    t = record.treatment
    if t is not None:
        statement: dict[str, Any] = {
            "resourceType": "MedicationStatement",
            "status": "on-hold" if t.on_hold else "active",
            "medicationCodeableConcept": _drug(t.drug),
            "subject": subject,
            "reasonCode": [{"coding": [{"system": HEMADOSE, "code": t.indication}], "text": t.indication}],
            "extension": [{"url": REGION_EXTENSION, "valueCode": t.region}],
        }
        if t.since is not None:
            statement["effectivePeriod"] = {"start": t.since.isoformat()}
        dosage: dict[str, Any] = {"text": f"dosed in {t.dose_unit}"}
        if t.dose_amount is not None:
            dosage["doseAndRate"] = [{"doseQuantity": _quantity(t.dose_amount, t.dose_unit)}]
        statement["dosage"] = [dosage]
        entries.append((_url(label, "treatment"), statement))
    last = record.last
    if last is not None:
        entries += _decision(label, subject, last.request.drug, last.request.indication, last)
    targets = [{"reference": url} for url, _ in entries]
    ruleset = last.response.ruleset if last is not None else "none"
    provenance = {
        "resourceType": "Provenance",
        "target": targets,
        "recorded": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "assembler",
                        }
                    ]
                },
                "who": {"display": f"HemaDose (rules {RULESET_VERSION})"},
            }
        ],
        "activity": {
            "text": f"Exported by HemaDose; last decision by ruleset {ruleset}, HemaDose rules {RULESET_VERSION}"
        },
    }
    entries.append((_url(label, "provenance"), provenance))
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "entry": [{"fullUrl": url, "resource": resource} for url, resource in entries],
    }
    return Bundle.model_validate(bundle)


def _decision(
    label: str, subject: dict[str, str], drug: str, indication: str, last: Any
) -> list[tuple[str, dict[str, Any]]]:
    """The last recommendation as a MedicationRequest, and its warnings as DetectedIssues."""
    response = last.response
    url = _url(label, "recommendation", last.at.isoformat())
    rule = response.rationale[0]
    request: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": REQUEST_STATUS[response.action],
        "intent": "proposal",
        "medicationCodeableConcept": _drug(drug),
        "subject": subject,
        "authoredOn": last.at.replace(tzinfo=dt.UTC).isoformat(timespec="seconds"),
        "reasonCode": [{"coding": [{"system": HEMADOSE, "code": indication}], "text": indication}],
        "note": [{"text": f"{response.action}: rule {rule.rule} ({rule.source}); ruleset {response.ruleset}"}],
    }
    if response.dose is not None:
        days = response.schedule or ([response.next_dose_date] if response.next_dose_date else [])
        instruction: dict[str, Any] = {
            "text": administration(drug, response.model_dump(mode="json")),
            "doseAndRate": [{"doseQuantity": _quantity(_number(response.dose.amount), response.dose.unit)}],
        }
        if days:
            instruction["timing"] = {"event": [day.isoformat() for day in days]}
        request["dosageInstruction"] = [instruction]
    entries = [(url, request)]
    for index, warning in enumerate(response.warnings):
        issue = {
            "resourceType": "DetectedIssue",
            "status": "final",
            "severity": ISSUE_SEVERITY[warning.severity],
            "code": {"coding": [{"system": HEMADOSE, "code": warning.code}], "text": warning.code},
            "patient": subject,
            "identifiedDateTime": last.at.replace(tzinfo=dt.UTC).isoformat(timespec="seconds"),
            "implicated": [{"reference": url}],
            "detail": warning.message,
        }
        entries.append((_url(label, "warning", last.at.isoformat(), index), issue))
    return entries


def to_fhir(record: PatientRecord, now: dt.datetime) -> bytes:
    return to_bundle(record, now).model_dump_json(indent=2, exclude_none=True).encode("utf-8")


# --- import ------------------------------------------------------------------------------------------


def _coding(concept: Any) -> tuple[str | None, str | None]:
    codings = (concept.coding or []) if concept is not None else []
    return (codings[0].system, codings[0].code) if codings else (None, None)


def _unit(quantity: Any) -> str:
    """The unit as the chat writes it: the quantity's own text, else read back from its UCUM code."""
    if quantity.unit:
        return str(quantity.unit)
    back = {code: unit for unit, code in reversed(UCUM_CODES.items())}
    return back.get(str(quantity.code or ""), str(quantity.code or ""))


def _when(resource: Any, name: str) -> Any:
    return getattr(resource, name, None)


def from_fhir(content: bytes, today: dt.date) -> Parsed:
    """The Bundle's resources read back; each problem names its entry (counted from 0)."""
    parsed = Parsed()
    try:
        bundle = Bundle.model_validate_json(content)
    except ValidationError as error:
        for fault in error.errors()[:20]:
            where = list(fault["loc"])
            place = f"entry {where[1]}" if len(where) > 1 and where[0] == "entry" else "the Bundle"
            path = ".".join(str(part) for part in where[2:] if part != "resource") or ".".join(map(str, where))
            parsed.problems.append(f"{place}: {path}: {fault['msg']}")
        return parsed
    entries = bundle.entry or []
    resources: list[Any] = [entry.resource for entry in entries]
    labels = [
        identifier.value
        for resource in resources
        if resource is not None and resource.get_resource_type() == "Patient"
        for identifier in (resource.identifier or [])
        if identifier.system == LABEL_SYSTEM
    ]
    if len(labels) != 1:
        parsed.problems.append(f"the Bundle has {len(labels)} Patients labelled by HemaDose; an import needs one")
        return parsed
    try:
        record = parsed.record(checks.label(str(labels[0]), today))
    except UnreadableError as problem:
        parsed.problems.append(f"the Patient: {problem}")
        return parsed
    for index, resource in enumerate(resources):
        try:
            _entry(parsed, record, resource, today)
        except UnreadableError as problem:
            parsed.problems.append(f"entry {index}: {problem}")
    return parsed


def _entry(parsed: Parsed, record: PatientRecord, resource: Any, today: dt.date) -> None:
    kind = resource.get_resource_type() if resource is not None else None
    if kind == "Observation":
        system, code = _coding(resource.code)
        fact = next((name for name, (s, c, _, _) in FACT_CODES.items() if (s, c) == (system, code)), None)
        if fact == "child_pugh":
            record.child_pugh = checks.child_pugh(str(resource.valueString or ""))
            return
        quantity = resource.valueQuantity
        if quantity is None:
            raise UnreadableError("an Observation without a valueQuantity")
        if fact == "weight_kg":
            record.weight_kg = checks.weight(quantity.value)
            effective = _when(resource, "effectiveDateTime")
            record.weight_date = checks.day(str(effective), "weight date", today) if effective else None
        elif fact == "age_years":
            record.age_years = checks.age(quantity.value)
        elif fact is not None:
            record.baseline_rbc_units_per_12_weeks = checks.baseline(quantity.value)
        else:
            tests = {c: test for test, (c, _) in LAB_CODES.items()} | {HB_MOLAR[0]: "hemoglobin"}
            if system != LOINC or code not in tests:
                raise UnreadableError(
                    f"an Observation coded {code!r} is not a result HemaDose reads (LOINC 777-3, 718-7)"
                )
            effective = _when(resource, "effectiveDateTime")
            date = checks.day(str(effective) if effective else None, "effectiveDateTime", today)
            record.labs.append(checks.lab(tests[code], quantity.value, _unit(quantity), date))
    elif kind == "MedicationAdministration":
        _, drug = _coding(resource.medicationCodeableConcept)
        dosage = resource.dosage
        if dosage is None or dosage.dose is None:
            raise UnreadableError("a MedicationAdministration without dosage.dose")
        effective = _when(resource, "effectiveDateTime")
        day = checks.day(str(effective) if effective else None, "effectiveDateTime", today)
        status = "given"
        if resource.status != "completed":
            _, reason = _coding((resource.statusReason or [None])[0])
            status = reason or "skipped"
        record.doses.append(checks.dose(str(drug), dosage.dose.value, _unit(dosage.dose), day, status))
    elif kind == "Procedure":
        units = next((e.valueDecimal for e in resource.extension or [] if e.url == UNITS_EXTENSION), None)
        performed = _when(resource, "performedDateTime")
        day = checks.day(str(performed) if performed else None, "performedDateTime", today)
        record.transfusions.append(checks.transfusion(day, units))
    elif kind == "MedicationStatement":
        _, drug = _coding(resource.medicationCodeableConcept)
        _, indication = _coding((resource.reasonCode or [None])[0])
        region = next((e.valueCode for e in resource.extension or [] if e.url == REGION_EXTENSION), "")
        period = resource.effectivePeriod
        since = checks.day(str(period.start), "effectivePeriod.start", today) if period and period.start else None
        dosage = (resource.dosage or [None])[0]
        quantity = dosage.doseAndRate[0].doseQuantity if dosage is not None and dosage.doseAndRate else None
        unit = (
            _unit(quantity)
            if quantity is not None
            else str(dosage.text or "").removeprefix("dosed in ")
            if dosage
            else ""
        )
        amount = quantity.value if quantity is not None else None
        record.treatment = checks.treatment(
            str(drug), str(indication), str(region), amount, unit, since, resource.status == "on-hold"
        )
    elif kind in ("MedicationRequest", "DetectedIssue"):
        if kind == "MedicationRequest":
            parsed.recommendations += 1  # the audit's, not imported
    elif kind not in ("Patient", "Provenance"):
        raise UnreadableError(f"a {kind} is not part of a HemaDose record")
