"""RULES.md section 7: every worked case, through the JSON contract, asserted exactly."""

from __future__ import annotations

from tests.helpers import (
    codes,
    dose,
    hemoglobin,
    hetrombopag,
    luspatercept,
    lusutrombopag,
    platelets,
    romiplostim,
    rules,
    run,
)


def days(start: str, end: str) -> list[str]:
    import datetime as dt

    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [str(first + dt.timedelta(days=n)) for n in range((last - first).days + 1)]


# --- Romiplostim -------------------------------------------------------------------------------


def test_case_01_romiplostim_increase():
    r = run(romiplostim(labs=[platelets(32, "2026-11-21")]))
    assert r["action"] == "increase"
    assert r["dose"] == {"amount": 4, "unit": "mcg/kg"}
    assert r["total"] == {"amount": 288, "unit": "mcg"}
    assert r["volume_ml"] == 0.58
    assert r["injections"] == 1
    assert r["vials"] == [{"size": 250, "unit": "mcg", "count": 1}, {"size": 125, "unit": "mcg", "count": 1}]
    assert r["next_dose_date"] == "2026-11-22"
    assert r["schedule"] == ["2026-11-22"]
    assert r["next_monitoring"] == {"date": "2026-11-29", "tests": ["platelets"]}
    assert codes(r) == ["thrombosis_risk"]
    assert r["rationale"][0] == {
        "rule": "romiplostim.increase",
        "source": "Nplate US PI 2.2",
        "text": "Platelets 32 x10^9/L on 2026-11-21, below 50: increase from 3 to 4 mcg/kg.",
    }
    assert r["ruleset"] == "romiplostim/us"


def test_case_02_romiplostim_reduce_two_consecutive_weeks():
    r = run(romiplostim(labs=[platelets(230, "2026-11-14"), platelets(250, "2026-11-21")]))
    assert r["action"] == "decrease"
    assert r["dose"] == {"amount": 2, "unit": "mcg/kg"}
    assert r["total"] == {"amount": 144, "unit": "mcg"}
    assert r["volume_ml"] == 0.29
    assert r["vials"] == [{"size": 250, "unit": "mcg", "count": 1}]
    assert r["next_dose_date"] == "2026-11-22"
    assert rules(r) == ["romiplostim.reduce"]


def test_case_03_romiplostim_one_high_week_continues():
    r = run(romiplostim(labs=[platelets(250, "2026-11-21"), platelets(180, "2026-11-14")]))
    assert r["action"] == "continue"
    assert r["dose"] == {"amount": 3, "unit": "mcg/kg"}
    assert r["total"] == {"amount": 216, "unit": "mcg"}
    assert r["next_monitoring"] == {"date": "2026-11-29", "tests": ["platelets"]}
    assert rules(r) == ["romiplostim.continue"]


def test_case_04_romiplostim_hold_above_400():
    r = run(romiplostim(labs=[platelets(420, "2026-11-21")]))
    assert r["action"] == "hold"
    assert r["dose"] is None
    assert r["total"] is None
    assert r["volume_ml"] is None
    assert r["injections"] is None
    assert r["vials"] == []
    assert r["next_dose_date"] is None
    assert r["schedule"] == []
    assert r["warnings"][0]["code"] == "platelets_high"
    assert r["warnings"][0]["severity"] == "critical"
    assert codes(r) == ["platelets_high", "thrombosis_risk"]
    assert r["next_monitoring"]["date"] == "2026-11-29"


def test_case_05_romiplostim_resume_one_below():
    r = run(romiplostim(on_hold=True, labs=[platelets(150, "2026-11-21")]))
    assert r["action"] == "resume"
    assert r["dose"] == {"amount": 2, "unit": "mcg/kg"}
    assert r["total"] == {"amount": 144, "unit": "mcg"}
    assert r["next_dose_date"] == "2026-11-22"
    assert rules(r) == ["romiplostim.resume"]


def test_case_06_romiplostim_eu_reduces_where_us_continues():
    labs = [platelets(160, "2026-11-21"), platelets(170, "2026-11-14")]
    eu = run(romiplostim(region="eu", labs=labs))
    assert eu["action"] == "decrease"
    assert eu["dose"] == {"amount": 2, "unit": "mcg/kg"}
    assert eu["ruleset"] == "romiplostim/eu"
    assert eu["rationale"][0]["source"] == "Nplate EU SmPC 4.2"
    us = run(romiplostim(region="us", labs=labs))
    assert us["action"] == "continue"
    assert us["dose"] == {"amount": 3, "unit": "mcg/kg"}


def test_case_07_romiplostim_no_response_at_maximum():
    r = run(
        romiplostim(
            current_dose=dose(10, "mcg/kg", "2026-10-25", "2026-11-15"),
            labs=[platelets(20, "2026-11-21")],
        )
    )
    assert r["action"] == "discontinue"
    assert r["dose"] is None
    assert codes(r) == ["no_response", "rebound_thrombocytopenia", "thrombosis_risk"]
    assert rules(r) == ["romiplostim.no_response"]
    assert "4 weekly doses" in r["rationale"][0]["text"]
    assert r["next_monitoring"]["date"] == "2026-11-29"


def test_case_08_romiplostim_child_increase_weight_reassess():
    r = run(
        romiplostim(
            patient={"weight_kg": 18, "age_years": 6},
            current_dose=dose(1, "mcg/kg", "2026-11-01", "2026-11-15"),
            labs=[platelets(30, "2026-11-21")],
        )
    )
    assert r["action"] == "increase"
    assert r["dose"] == {"amount": 2, "unit": "mcg/kg"}
    assert r["total"] == {"amount": 36, "unit": "mcg"}
    assert r["volume_ml"] == 0.07
    assert r["vials"] == [{"size": 125, "unit": "mcg", "count": 1}]
    assert codes(r) == ["thrombosis_risk", "pediatric_weight_reassess"]
    assert rules(r) == ["romiplostim.increase", "romiplostim.pediatric_weight"]


def test_case_09_romiplostim_small_dose_is_diluted():
    r = run(
        romiplostim(
            patient={"weight_kg": 12, "age_years": 2, "weight_date": "2026-11-01"},
            current_dose=dose(1, "mcg/kg", "2026-11-01", "2026-11-15"),
            labs=[platelets(60, "2026-11-21")],
        )
    )
    assert r["action"] == "continue"
    assert r["total"] == {"amount": 12, "unit": "mcg"}
    assert r["volume_ml"] == 0.1
    assert r["vials"] == [{"size": 125, "unit": "mcg", "count": 1}]
    assert codes(r) == ["thrombosis_risk", "dilution_required"]
    assert rules(r) == ["romiplostim.continue", "dose.dilution"]


def test_case_10_romiplostim_stale_count_refers():
    r = run(romiplostim(labs=[platelets(32, "2026-11-10")]))
    assert r["action"] == "refer"
    assert r["dose"] is None
    assert codes(r) == ["stale_lab", "thrombosis_risk"]
    assert rules(r) == ["lab.stale"]
    assert r["next_monitoring"] == {"date": "2026-11-22", "tests": ["platelets"]}


# --- Hetrombopag -------------------------------------------------------------------------------


def test_case_11_hetrombopag_itp_increase():
    r = run(hetrombopag(labs=[platelets(30, "2026-11-21")]))
    assert r["action"] == "increase"
    assert r["dose"] == {"amount": 5, "unit": "mg"}
    assert r["total"] == {"amount": 5, "unit": "mg"}
    assert r["volume_ml"] is None
    assert r["injections"] is None
    assert r["vials"] == []
    assert r["next_dose_date"] == "2026-11-22"
    assert r["next_monitoring"] == {"date": "2026-11-29", "tests": ["platelets"]}
    assert codes(r) == ["thrombosis_risk", "empty_stomach", "protocol_derived"]
    assert r["ruleset"] == "hetrombopag/cn"
    given_today = run(hetrombopag(current_dose=dose(2.5, "mg", "2026-11-01", "2026-11-22")))
    assert given_today["next_dose_date"] == "2026-11-23"
    assert given_today["schedule"] == ["2026-11-23"]


def test_case_12_hetrombopag_waits_two_weeks():
    r = run(hetrombopag(current_dose=dose(5, "mg", "2026-11-15", "2026-11-21")))
    assert r["action"] == "continue"
    assert r["dose"] == {"amount": 5, "unit": "mg"}
    assert rules(r) == ["hetrombopag.wait"]


def test_case_13_hetrombopag_reduce():
    r = run(hetrombopag(current_dose=dose(5, "mg", "2026-10-01", "2026-11-21"), labs=[platelets(300, "2026-11-21")]))
    assert r["action"] == "decrease"
    assert r["dose"] == {"amount": 2.5, "unit": "mg"}
    assert r["total"] == {"amount": 2.5, "unit": "mg"}


def test_case_14_hetrombopag_hold():
    r = run(hetrombopag(current_dose=dose(7.5, "mg", "2026-10-01", "2026-11-21"), labs=[platelets(450, "2026-11-21")]))
    assert r["action"] == "hold"
    assert r["dose"] is None
    assert r["next_monitoring"] == {"date": "2026-11-25", "tests": ["platelets"]}
    assert codes(r) == ["platelets_high", "thrombosis_risk", "empty_stomach", "protocol_derived"]


def test_case_15_hetrombopag_resume():
    r = run(
        hetrombopag(
            on_hold=True,
            current_dose=dose(7.5, "mg", "2026-10-01", "2026-11-15"),
            labs=[platelets(140, "2026-11-21")],
        )
    )
    assert r["action"] == "resume"
    assert r["dose"] == {"amount": 5, "unit": "mg"}
    assert r["next_dose_date"] == "2026-11-22"
    assert "missed_doses" not in codes(r)


def test_case_16_hetrombopag_cit_start_is_protocol_derived():
    r = run(hetrombopag("cit", current_dose=None, labs=[platelets(60, "2026-11-21")]))
    assert r["action"] == "start"
    assert r["dose"] == {"amount": 7.5, "unit": "mg"}
    assert r["next_dose_date"] == "2026-11-22"
    assert "protocol_derived" in codes(r)


def test_case_17_hetrombopag_cit_increase():
    r = run(
        hetrombopag(
            "cit",
            current_dose=dose(7.5, "mg", "2026-11-01", "2026-11-21"),
            labs=[platelets(80, "2026-11-21")],
        )
    )
    assert r["action"] == "increase"
    assert r["dose"] == {"amount": 10, "unit": "mg"}


# --- Lusutrombopag -----------------------------------------------------------------------------


def test_case_18_lusutrombopag_start_today():
    r = run(lusutrombopag())
    assert r["action"] == "start"
    assert r["dose"] == {"amount": 3, "unit": "mg"}
    assert r["total"] == {"amount": 3, "unit": "mg"}
    assert r["next_dose_date"] == "2026-11-22"
    assert r["schedule"] == days("2026-11-22", "2026-11-28")
    assert r["next_monitoring"] == {"date": "2026-12-03", "tests": ["platelets"]}
    assert codes(r) == ["portal_vein_thrombosis", "lactation"]
    assert r["ruleset"] == "lusutrombopag/us"


def test_case_19_lusutrombopag_start_waits_for_window():
    r = run(lusutrombopag(procedure_date="2026-12-20"))
    assert r["action"] == "start"
    assert r["next_dose_date"] == "2026-12-06"
    assert r["schedule"] == days("2026-12-06", "2026-12-12")
    assert r["next_monitoring"]["date"] == "2026-12-18"


def test_case_20_lusutrombopag_too_late():
    r = run(lusutrombopag(procedure_date="2026-11-27"))
    assert r["action"] == "refer"
    assert r["dose"] is None
    assert codes(r) == ["portal_vein_thrombosis", "procedure_window", "lactation"]
    assert rules(r) == ["lusutrombopag.too_late"]


def test_case_21_lusutrombopag_count_not_low():
    r = run(lusutrombopag(labs=[platelets(62, "2026-11-21")]))
    assert r["action"] == "refer"
    assert codes(r) == ["platelets_not_low", "portal_vein_thrombosis", "lactation"]
    assert r["next_monitoring"]["date"] == "2026-12-03"


def test_case_22_lusutrombopag_jp_day5_stop_and_us_continue():
    started = {
        "procedure_date": "2026-11-29",
        "current_dose": dose(3, "mg", "2026-11-18", "2026-11-21"),
        "labs": [platelets(35, "2026-11-17"), platelets(58, "2026-11-22")],
    }
    jp = run(lusutrombopag(region="jp", **started))
    assert jp["action"] == "discontinue"
    assert jp["dose"] is None
    assert rules(jp) == ["lusutrombopag.jp_stop"]
    assert jp["ruleset"] == "lusutrombopag/jp"
    us = run(lusutrombopag(region="us", **started))
    assert us["action"] == "continue"
    assert us["dose"] == {"amount": 3, "unit": "mg"}
    assert us["next_dose_date"] == "2026-11-22"
    assert us["schedule"] == ["2026-11-22", "2026-11-23", "2026-11-24"]
    assert us["next_monitoring"]["date"] == "2026-11-27"


# --- Luspatercept ------------------------------------------------------------------------------


def test_case_23_luspatercept_mds_increase_split():
    r = run(luspatercept("mds"))
    assert r["action"] == "increase"
    assert r["dose"] == {"amount": 1.33, "unit": "mg/kg"}
    assert r["total"] == {"amount": 93.1, "unit": "mg"}
    assert r["volume_ml"] == 1.86
    assert r["injections"] == 2
    assert r["vials"] == [{"size": 75, "unit": "mg", "count": 1}, {"size": 25, "unit": "mg", "count": 1}]
    assert r["next_dose_date"] == "2026-11-22"
    assert r["next_monitoring"] == {"date": "2026-12-13", "tests": ["hemoglobin"]}
    assert codes(r) == [
        "hypertension",
        "thrombosis_risk",
        "embryo_fetal_toxicity",
        "label_update_pending",
        "split_injection",
    ]
    assert rules(r) == ["luspatercept.increase", "dose.split_injection"]


def test_case_24_luspatercept_hold_hb_high():
    r = run(
        luspatercept(
            "beta_thalassemia",
            patient={"weight_kg": 60},
            current_dose=dose(1.25, "mg/kg", "2026-09-01", "2026-11-01"),
            transfusions=[{"date": "2026-10-20", "units": 2}],
            labs=[hemoglobin(11.8, "2026-11-21")],
        )
    )
    assert r["action"] == "hold"
    assert r["dose"] is None
    assert r["next_monitoring"] == {"date": "2026-11-29", "tests": ["hemoglobin"]}
    assert rules(r) == ["luspatercept.hb_high"]
    assert "extramedullary_hematopoiesis" in codes(r)


def test_case_25_luspatercept_hb_rise_reduces():
    r = run(
        luspatercept(
            "beta_thalassemia",
            patient={"weight_kg": 60},
            current_dose=dose(1, "mg/kg", "2026-10-11", "2026-11-01"),
            transfusions=[],
            labs=[hemoglobin(8.6, "2026-11-03"), hemoglobin(10.9, "2026-11-21")],
        )
    )
    assert r["action"] == "decrease"
    assert r["dose"] == {"amount": 0.8, "unit": "mg/kg"}
    assert r["total"] == {"amount": 48, "unit": "mg"}
    assert r["volume_ml"] == 0.96
    assert r["injections"] == 1
    assert r["vials"] == [{"size": 25, "unit": "mg", "count": 2}]
    assert rules(r) == ["luspatercept.hb_rise"]
