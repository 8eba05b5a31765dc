"""Every bad-input path of the contract: the error code, the offending field, and a useful message."""

from __future__ import annotations

import json

import pytest

from tests.helpers import (
    dose,
    hemoglobin,
    luspatercept,
    lusutrombopag,
    platelets,
    romiplostim,
    run,
    run_error,
    with_,
)


def test_future_lab_date_is_invalid():
    error = run_error(romiplostim(labs=[platelets(32, "2026-11-21"), platelets(40, "2026-11-23")]))
    assert error == {
        "code": "invalid_request",
        "message": "labs[1].date: 2026-11-23 is after as_of 2026-11-22",
        "field": "labs[1].date",
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"current_dose": dose(3, "mcg/kg", "2026-11-23", "2026-11-23")}, "current_dose.since"),
        ({"current_dose": dose(3, "mcg/kg", "2026-11-01", "2026-11-23")}, "current_dose.last_given"),
        ({"current_dose": dose(3, "mcg/kg", "2026-11-10", "2026-11-03")}, "current_dose.last_given"),
        ({"patient": {"weight_kg": 72, "weight_date": "2026-12-01"}}, "patient.weight_date"),
        ({"transfusions": [{"date": "2026-11-30", "units": 1}]}, "transfusions[0].date"),
    ],
)
def test_dates_after_as_of_or_out_of_order_are_invalid(changes, field):
    error = run_error(romiplostim(**changes))
    assert error["code"] == "invalid_request"
    assert error["field"] == field


@pytest.mark.parametrize("bad", ["22/11/2026", "2026-11-22T10:00:00", "2026-02-30", "2026-11-2", 20261122, None])
def test_as_of_must_be_an_iso_date(bad):
    error = run_error(romiplostim(as_of=bad))
    assert error["code"] == "invalid_request"
    assert error["field"] == "as_of"
    if bad is None:
        assert error["message"] == "as_of: expected a date as YYYY-MM-DD, got null"
    else:
        assert error["message"] == f"as_of: expected a date as YYYY-MM-DD, got {json.dumps(bad)}"


def test_unknown_lab_unit_is_invalid():
    error = run_error(romiplostim(labs=[platelets(32, "2026-11-21", unit="cells")]))
    assert error["code"] == "invalid_request"
    assert error["field"] == "labs[0].unit"
    assert "'10^9/L'" in error["message"]


def test_unit_of_the_wrong_test_is_invalid():
    error = run_error(romiplostim(labs=[platelets(32, "2026-11-21", unit="g/dL")]))
    assert error == {
        "code": "invalid_request",
        "message": "labs[0].unit: 'g/dL' is not a unit for platelets; expected one of 10^9/L, 10^3/uL, G/L, /uL",
        "field": "labs[0].unit",
    }


def test_platelets_per_microlitre_entered_as_10e9_names_the_mix_up():
    error = run_error(romiplostim(labs=[platelets(52000, "2026-11-21")]))
    assert error == {
        "code": "implausible_value",
        "message": "labs[0].value: platelet count 52000 10^9/L is above 3000 x10^9/L; "
        "did you mean 52 (a count of 52000 per uL)?",
        "field": "labs[0].value",
    }


def test_haemoglobin_in_g_per_l_entered_as_g_per_dl_names_the_mix_up():
    error = run_error(luspatercept(labs=[hemoglobin(89, "2026-11-21")]))
    assert error["code"] == "implausible_value"
    assert error["field"] == "labs[0].value"
    assert error["message"] == ("labs[0].value: haemoglobin 89 g/dL is above 25 g/dL; did you mean 89 g/L (8.9 g/dL)?")


def test_haemoglobin_in_g_per_dl_entered_as_g_per_l_names_the_mix_up():
    error = run_error(luspatercept(labs=[hemoglobin(8.9, "2026-11-21", unit="g/L")]))
    assert error["message"] == ("labs[0].value: haemoglobin 8.9 g/L is below 2 g/dL; did you mean 8.9 g/dL?")


def test_weight_in_grams_names_the_mix_up():
    error = run_error(romiplostim(patient={"weight_kg": 72000}))
    assert error == {
        "code": "implausible_value",
        "message": "patient.weight_kg: weight 72000 kg is above 350 kg; did you mean 72 kg (a weight of 72000 g)?",
        "field": "patient.weight_kg",
    }


def test_age_in_months_names_the_mix_up():
    error = run_error(romiplostim(patient={"weight_kg": 12, "age_years": 150}))
    assert error["code"] == "implausible_value"
    assert error["field"] == "patient.age_years"
    assert "did you mean 12.5 years (150 months)?" in error["message"]


def test_negative_platelets_are_implausible():
    error = run_error(romiplostim(labs=[platelets(-5, "2026-11-21")]))
    assert error["code"] == "implausible_value"
    assert error["message"] == "labs[0].value: platelet count -5 10^9/L is below 0 x10^9/L"


def test_implausible_value_in_a_non_deciding_lab_is_rejected_too():
    error = run_error(romiplostim(labs=[platelets(32, "2026-11-21"), hemoglobin(95, "2026-11-21")]))
    assert error["code"] == "implausible_value"
    assert error["field"] == "labs[1].value"


def test_unknown_field_is_invalid_and_suggests_the_spelling():
    error = run_error(with_(romiplostim(), on_hols=True))
    assert error == {
        "code": "invalid_request",
        "message": "on_hols: unknown field (did you mean 'on_hold'?)",
        "field": "on_hols",
    }


def test_unknown_nested_field_is_invalid():
    error = run_error(romiplostim(patient={"weight_kg": 72, "wieght_date": "2026-11-01"}))
    assert error["field"] == "patient.wieght_date"
    assert error["message"] == "patient.wieght_date: unknown field (did you mean 'weight_date'?)"


def test_misspelt_required_field_is_reported_as_missing_with_the_spelling():
    request = romiplostim()
    request["as_off"] = request.pop("as_of")
    error = run_error(request)
    assert error == {
        "code": "invalid_request",
        "message": "as_of: required field is missing (did you mean 'as_off'?)",
        "field": "as_of",
    }


@pytest.mark.parametrize("missing", ["drug", "indication", "as_of"])
def test_missing_required_field(missing):
    request = romiplostim()
    del request[missing]
    error = run_error(request)
    assert error == {"code": "invalid_request", "message": f"{missing}: required field is missing", "field": missing}


@pytest.mark.parametrize("missing", ["amount", "unit", "since", "last_given"])
def test_current_dose_needs_all_four(missing):
    request = romiplostim()
    del request["current_dose"][missing]
    error = run_error(request)
    assert error["field"] == f"current_dose.{missing}"
    assert error["message"] == f"current_dose.{missing}: required field is missing"


def test_weight_required_for_weight_based_drugs():
    error = run_error(romiplostim(patient={"age_years": 40}))
    assert error["field"] == "patient.weight_kg"
    error = run_error(luspatercept(patient=None))
    assert error["field"] == "patient.weight_kg"


def test_procedure_date_required_for_lusutrombopag():
    error = run_error(lusutrombopag(procedure_date=None))
    assert error["field"] == "procedure_date"


def test_wrong_dose_unit_is_invalid():
    error = run_error(romiplostim(current_dose=dose(3, "mg/kg", "2026-11-01", "2026-11-15")))
    assert error == {
        "code": "invalid_request",
        "message": "current_dose.unit: romiplostim is dosed in mcg/kg, not mg/kg",
        "field": "current_dose.unit",
    }


def test_unknown_dose_unit_is_invalid():
    error = run_error(romiplostim(current_dose=dose(3, "mcg", "2026-11-01", "2026-11-15")))
    assert error["field"] == "current_dose.unit"
    assert error["code"] == "invalid_request"


@pytest.mark.parametrize("amount", [0, -1])
def test_dose_amount_must_be_positive(amount):
    error = run_error(romiplostim(current_dose=dose(amount, "mcg/kg", "2026-11-01", "2026-11-15")))
    assert error["field"] == "current_dose.amount"
    assert error["code"] == "invalid_request"


def test_unknown_drug_is_invalid():
    error = run_error(romiplostim(drug="eltrombopag"))
    assert error["field"] == "drug"
    assert error["message"] == (
        "drug: \"eltrombopag\" is not known here; expected 'romiplostim', 'hetrombopag', 'lusutrombopag' "
        "or 'luspatercept'"
    )


def test_indication_of_another_drug_is_invalid():
    error = run_error(romiplostim(indication="mds"))
    assert error == {
        "code": "invalid_request",
        "message": "indication: 'mds' is not an indication of romiplostim; expected one of itp",
        "field": "indication",
    }


def test_unknown_indication_is_invalid():
    error = run_error(romiplostim(indication="aplastic_anaemia"))
    assert error["field"] == "indication"


def test_region_without_rules_for_the_drug_is_invalid():
    error = run_error(romiplostim(region="jp"))
    assert error["field"] == "region"
    assert error["message"] == "region: 'jp' is not a region with rules for romiplostim; expected one of us, eu"


def test_on_hold_needs_a_current_dose_and_never_for_lusutrombopag():
    assert run_error(romiplostim(current_dose=None, on_hold=True))["field"] == "on_hold"
    started = lusutrombopag(current_dose=dose(3, "mg", "2026-11-20", "2026-11-21"), on_hold=True)
    assert run_error(started)["field"] == "on_hold"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"on_hold": "yes"}, "on_hold"),
        ({"on_hold": 1}, "on_hold"),
        ({"patient": {"weight_kg": "72"}}, "patient.weight_kg"),
        ({"patient": {"weight_kg": True}}, "patient.weight_kg"),
        ({"labs": [{"test": "platelets", "value": "32", "unit": "10^9/L", "date": "2026-11-21"}]}, "labs[0].value"),
        ({"labs": {"test": "platelets"}}, "labs"),
        ({"transfusions": [{"date": "2026-11-01", "units": 0}]}, "transfusions[0].units"),
        ({"baseline_rbc_units_per_12_weeks": -1}, "baseline_rbc_units_per_12_weeks"),
        ({"adverse_reaction": {"grade": 5}}, "adverse_reaction.grade"),
        ({"adverse_reaction": {"grade": 2.5}}, "adverse_reaction.grade"),
        (
            {"current_dose": dose(3, "mcg/kg", "2026-11-01", "2026-11-15", doses_at_level=0)},
            "current_dose.doses_at_level",
        ),
    ],
)
def test_wrong_types_are_invalid_not_coerced(changes, field):
    error = run_error(romiplostim(**changes))
    assert error["code"] == "invalid_request"
    assert error["field"] == field


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", "null", '{"drug": "romiplostim",'])
def test_unreadable_or_non_object_requests_are_invalid(text):
    error = run_error(text)
    assert error["code"] == "invalid_request"
    assert error["field"] is None


def test_shape_errors_come_before_plausibility_in_field_order():
    request = romiplostim(labs=[platelets(52000, "2026-11-21")], patient={"weight_kg": 72000}, bogus=1)
    assert run_error(request)["field"] == "bogus"  # shape first, even after the bounds faults
    request = romiplostim(labs=[platelets(52000, "2026-11-21")], patient={"weight_kg": 72000})
    assert run_error(request)["field"] == "patient.weight_kg"  # then plausibility, in field order
    request = romiplostim(as_of="soon", region="mars")
    assert run_error(request)["field"] == "region"  # region comes before as_of in the contract


def test_null_optional_fields_mean_absent():
    base = run(romiplostim())
    nulls = run(romiplostim(on_hold=None, transfusions=None, baseline_rbc_units_per_12_weeks=None, region=None))
    assert nulls == base
    reaction = run(luspatercept(adverse_reaction={"grade": 3, "hypersensitivity": None}))
    assert reaction["action"] == "refer"
    assert reaction["rationale"][0]["rule"] == "luspatercept.adverse_reaction"


def test_unusual_values_are_accepted_with_info():
    r = run(romiplostim(labs=[platelets(0, "2026-11-21")]))
    assert r["action"] == "increase"
    assert [w["code"] for w in r["warnings"]] == ["thrombosis_risk", "unusual_value"]
    assert r["rationale"][1] == {
        "rule": "value.unusual",
        "source": "HemaDose ruleset v1.1, section 0 (conventions)",
        "text": "Unusual values, confirm them: platelets 0 x10^9/L on 2026-11-21.",
    }
    r = run(romiplostim(labs=[platelets(60, "2026-11-21"), hemoglobin(3.5, "2026-11-20")]))
    assert "unusual_value" in [w["code"] for w in r["warnings"]]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        # a drug-dependent fault in an earlier field beats a type fault in a later one
        (
            {"drug": "romiplostim", "indication": "itp", "region": "jp", "as_of": "soon", "patient": {"weight_kg": 72}},
            "region",
        ),
        (
            {
                "drug": "romiplostim",
                "indication": "mds",
                "as_of": "2026-11-22",
                "patient": {"weight_kg": 72},
                "transfusions": [{"date": "2026-11-01", "units": 0}],
            },
            "indication",
        ),
        (
            {
                "drug": "romiplostim",
                "indication": "itp",
                "as_of": "2026-11-22",
                "patient": {},
                "labs": [{"test": "platelets", "value": 32, "unit": "mg", "date": "2026-11-21"}],
            },
            "patient.weight_kg",
        ),
        (
            {
                "drug": "romiplostim",
                "indication": "itp",
                "as_of": "2026-11-22",
                "patient": {"weight_kg": 72},
                "labs": [
                    {"test": "platelets", "value": 32, "unit": "g/dL", "date": "2026-11-21"},
                    {"test": "platelets", "value": "x", "unit": "10^9/L", "date": "2026-11-21"},
                ],
            },
            "labs[0].unit",
        ),
        (
            {"drug": "romiplostim", "indication": "mds", "as_of": "2026-11-22", "patient": {"weight_kg": 72}, "foo": 1},
            "indication",
        ),
    ],
)
def test_several_faults_are_reported_in_field_order(request_, field):
    assert run_error(request_)["field"] == field
