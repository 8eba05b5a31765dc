"""The recommendation card leads with what to do: every refer names its reason, a hold says when to
recheck and how to resume, the dose line says how the dose is prepared."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.engine import recommend
from core.models import DoseRequest
from flows import render
from flows.replies import Env
from flows.state import Answers

TODAY = dt.date(2026, 11, 22)
CORE = Path(__file__).parent.parent / "core"


def romiplostim(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "drug": "romiplostim",
        "indication": "itp",
        "region": "us",
        "as_of": "2026-11-22",
        "patient": {"weight_kg": 72},
        "current_dose": {"amount": 3, "unit": "mcg/kg", "since": "2026-11-01", "last_given": "2026-11-15"},
        "labs": [{"test": "platelets", "value": 32, "unit": "10^9/L", "date": "2026-11-21"}],
    }
    return request | changes


def hetrombopag(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "drug": "hetrombopag",
        "indication": "itp",
        "as_of": "2026-11-22",
        "current_dose": {"amount": 2.5, "unit": "mg", "since": "2026-10-01", "last_given": "2026-11-21"},
        "labs": [{"test": "platelets", "value": 30, "unit": "10^9/L", "date": "2026-11-21"}],
    }
    return request | changes


def luspatercept(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "drug": "luspatercept",
        "indication": "beta_thalassemia",
        "as_of": "2026-11-22",
        "patient": {"weight_kg": 60},
        "current_dose": {"amount": 1, "unit": "mg/kg", "since": "2026-10-11", "last_given": "2026-11-01"},
        "labs": [{"test": "hemoglobin", "value": 9, "unit": "g/dL", "date": "2026-11-21"}],
    }
    return request | changes


def lusutrombopag(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "drug": "lusutrombopag",
        "indication": "cld_procedure",
        "region": "us",
        "as_of": "2026-11-22",
        "procedure_date": "2026-12-05",
        "labs": [{"test": "platelets", "value": 38, "unit": "10^9/L", "date": "2026-11-21"}],
    }
    return request | changes


def platelets(*pairs: tuple[float, str]) -> list[dict[str, Any]]:
    return [{"test": "platelets", "value": value, "unit": "10^9/L", "date": day} for value, day in pairs]


def card(payload: dict[str, Any], **answers: Any) -> list[str]:
    request = DoseRequest.model_validate(payload)
    response = recommend(request)
    dose = payload.get("current_dose")
    known = Answers(
        drug=payload["drug"],
        indication=payload["indication"],
        patient_label="P-1",
        dose_amount=None if dose is None else Decimal(str(dose["amount"])),
        weight_kg=None if "weight_kg" not in payload.get("patient", {}) else Decimal(payload["patient"]["weight_kg"]),
        **answers,
    )
    return render.recommendation(response, known, Env(TODAY), request).text.splitlines()


NO_DOSE: dict[str, Any] = {"current_dose": None}
# Each refer rule of the core, a request it decides, and the headline the card leads with.
REFERS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    (
        "lab.missing",
        romiplostim(labs=[]),
        {},
        "REFER: no platelet count — take one today (the rules need one from the last 7 days)",
    ),
    (
        "lab.stale",
        romiplostim(labs=platelets((32, "2026-11-13"))),
        {},
        "REFER: the platelet count is 9 days old (Fri 2026-11-13) — repeat it today "
        "(the rules need one from the last 7 days)",
    ),
    (
        "dose.not_a_level",
        hetrombopag(current_dose={"amount": 4, "unit": "mg", "since": "2026-10-01", "last_given": "2026-11-21"}),
        {},
        "REFER: 4 mg is not a dose of the label (2.5, 3.75, 5, 7.5 mg) — the clinician decides",
    ),
    (
        "romiplostim.age",
        romiplostim(patient={"weight_kg": 7, "age_years": 0.5}, **NO_DOSE),
        {},
        "REFER: age 0.5 years — romiplostim is not approved below 1 year; the clinician decides",
    ),
    (
        "romiplostim.start",
        romiplostim(labs=platelets((450, "2026-11-21")), **NO_DOSE),
        {},
        "REFER: not started — the platelet count (450 ×10^9/L on Sat 2026-11-21) is above 400 ×10^9/L; "
        "the clinician decides",
    ),
    (
        "romiplostim.resume",
        romiplostim(
            on_hold=True,
            current_dose={"amount": 1, "unit": "mcg/kg", "since": "2026-11-01", "last_given": "2026-11-15"},
            labs=platelets((150, "2026-11-21")),
        ),
        {},
        "REFER: the platelet count (150 ×10^9/L on Sat 2026-11-21) is below 200 ×10^9/L, but resuming at 1 minus "
        "1 mcg/kg would be under 1 mcg/kg — the clinician decides how to resume",
    ),
    (
        "romiplostim.reduce",
        romiplostim(
            current_dose={"amount": 1.5, "unit": "mcg/kg", "since": "2026-11-01", "last_given": "2026-11-15"},
            labs=platelets((230, "2026-11-14"), (250, "2026-11-21")),
        ),
        {},
        "REFER: platelets above 200 ×10^9/L for 2 consecutive weeks, but reducing 1.5 by 1 mcg/kg would be under "
        "1 mcg/kg — the clinician decides",
    ),
    (
        "hetrombopag.start",
        hetrombopag(labs=platelets((450, "2026-11-21")), **NO_DOSE),
        {},
        "REFER: not started — the platelet count (450 ×10^9/L on Sat 2026-11-21) is above 400 ×10^9/L; "
        "the clinician decides",
    ),
    (
        "hetrombopag.resume",
        hetrombopag(on_hold=True, labs=platelets((140, "2026-11-21"))),
        {},
        "REFER: the platelet count (140 ×10^9/L on Sat 2026-11-21) is below 150 ×10^9/L, but 2.5 minus 2.5 mg is "
        "not a level — the clinician decides how to resume",
    ),
    (
        "hetrombopag.reduce",
        hetrombopag(labs=platelets((300, "2026-11-21"))),
        {},
        "REFER: the platelet count (300 ×10^9/L on Sat 2026-11-21) is above 250 ×10^9/L at the lowest level, "
        "2.5 mg — there is no lower dose; the clinician decides",
    ),
    (
        "luspatercept.adverse_reaction",
        luspatercept(adverse_reaction={"grade": 3}),
        {"adverse": "severe"},
        "REFER: adverse reaction (grade 3 or more) — the label's management was not confirmed; the clinician decides",
    ),
    (
        "luspatercept.start",
        luspatercept(labs=[{"test": "hemoglobin", "value": 11.8, "unit": "g/dL", "date": "2026-11-21"}], **NO_DOSE),
        {},
        "REFER: not started — the haemoglobin (11.8 g/dL on Sat 2026-11-21) is 11.5 g/dL or more; "
        "the clinician decides",
    ),
    (
        "luspatercept.increase",
        luspatercept(),
        {},
        "REFER: 2 doses at 1 mg/kg: whether to increase depends on the baseline transfusion burden, which is not "
        "given — enter it, or the clinician decides",
    ),
    (
        "luspatercept.no_response",
        luspatercept(current_dose={"amount": 1.25, "unit": "mg/kg", "since": "2026-09-20", "last_given": "2026-11-01"}),
        {},
        "REFER: 3 doses at the maximum 1.25 mg/kg: judging the response needs the baseline transfusion burden, "
        "which is not given — enter it, or the clinician decides",
    ),
    (
        "lusutrombopag.child_pugh_c",
        lusutrombopag(region="jp", patient={"child_pugh": "C"}),
        {},
        "REFER: contraindicated in Japan (Child-Pugh C) — the clinician decides (do not start)",
    ),
    (
        "lusutrombopag.too_late",
        lusutrombopag(procedure_date="2026-11-27"),
        {},
        "REFER: the procedure on Fri 2026-11-27 is 5 days away — too late for the 7-day course, which starts "
        "14 to 8 days before; the clinician decides",
    ),
    (
        "lusutrombopag.not_low",
        lusutrombopag(labs=platelets((62, "2026-11-21"))),
        {},
        "REFER: the platelet count (62 ×10^9/L on Sat 2026-11-21) is not below 50 ×10^9/L — lusutrombopag is "
        "only for counts below 50; the clinician decides",
    ),
]


@pytest.mark.parametrize(("rule", "payload", "answers", "headline"), REFERS, ids=[r[0] for r in REFERS])
def test_a_refer_headline_names_its_reason(rule: str, payload: dict[str, Any], answers: Any, headline: str) -> None:
    lines = card(payload, **answers)
    assert lines[-2].startswith(f"Rule: {rule} · ")
    assert lines[2] == headline


def test_every_refer_rule_of_the_core_has_its_own_headline() -> None:
    """A refer rule added to the core without a headline here fails: the generic one is a fallback."""
    found = {"lab.missing", "lab.stale"}  # refer through check_deciding_lab
    for module in CORE.glob("*.py"):
        found |= set(re.findall(r'\brefer\(\s*"([a-z_]+\.[a-z_]+)"', module.read_text()))
    assert found == {rule for rule, *_ in REFERS}


def test_the_stale_count_age_comes_from_its_date() -> None:
    lines = card(romiplostim(labs=platelets((32, "2026-11-01"))))
    assert lines[2].startswith("REFER: the platelet count is 21 days old (Sun 2026-11-01)")
    assert lines[3] == "Next check: platelet count on Sun 2026-11-22"


def test_a_hold_says_when_to_recheck_and_how_to_resume() -> None:
    held = card(romiplostim(labs=platelets((420, "2026-11-21"))))
    assert held[2] == (
        "HOLD: no dose now. Recheck the platelet count on Sun 2026-11-29; resume at 2 mcg/kg when it is below "
        "200 ×10^9/L."
    )
    assert not any(line.startswith("Next check:") for line in held)  # said once, in the headline
    eu = card(romiplostim(region="eu", labs=platelets((300, "2026-11-21"))))
    assert eu[2].endswith("resume at 2 mcg/kg when it is below 150 ×10^9/L.")
    still = card(romiplostim(on_hold=True, labs=platelets((250, "2026-11-21"))))
    assert still[2].endswith("resume at 2 mcg/kg when it is below 200 ×10^9/L.")  # the pre-hold dose minus 1
    lowest = card(
        romiplostim(
            current_dose={"amount": 1, "unit": "mcg/kg", "since": "2026-11-01", "last_given": "2026-11-15"},
            labs=platelets((420, "2026-11-21")),
        )
    )
    assert lowest[2].endswith(
        "when it is below 200 ×10^9/L the clinician decides how to resume (1 minus 1 mcg/kg is under 1 mcg/kg)."
    )
    het = card(
        hetrombopag(
            current_dose={"amount": 7.5, "unit": "mg", "since": "2026-10-01", "last_given": "2026-11-21"},
            labs=platelets((450, "2026-11-21")),
        )
    )
    assert het[2] == (
        "HOLD: no dose now. Recheck the platelet count on Wed 2026-11-25; resume at 5 mg when it is below 150 ×10^9/L."
    )
    lus = card(
        luspatercept(
            current_dose={"amount": 1.25, "unit": "mg/kg", "since": "2026-09-20", "last_given": "2026-11-01"},
            labs=[{"test": "hemoglobin", "value": 11.8, "unit": "g/dL", "date": "2026-11-21"}],
        )
    )
    assert lus[2] == (
        "HOLD: no dose now. Recheck the haemoglobin on Sun 2026-11-29; resume at the pre-hold 1.25 mg/kg when it "
        "is 11 g/dL or less."
    )


def test_the_dose_line_carries_the_preparation() -> None:
    toddler = card(
        romiplostim(
            patient={"weight_kg": 12, "age_years": 2, "weight_date": "2026-11-22"},
            current_dose={"amount": 1, "unit": "mcg/kg", "since": "2026-10-01", "last_given": "2026-11-15"},
            labs=platelets((60, "2026-11-21")),
        )
    )
    assert toddler[3] == (
        "Dose: 12 mcg (1 mcg/kg × 12 kg) = 0.10 mL after dilution to 125 mcg/mL "
        "(preservative-free 0.9% sodium chloride)"
    )
    split = card(
        luspatercept(
            indication="mds",
            patient={"weight_kg": 70},
            current_dose={
                "amount": 1,
                "unit": "mg/kg",
                "since": "2026-10-11",
                "last_given": "2026-11-01",
                "doses_at_level": 2,
            },
            transfusions=[{"date": "2026-11-08", "units": 1}],
            labs=[{"test": "hemoglobin", "value": 8.9, "unit": "g/dL", "date": "2026-11-21"}],
        )
    )
    assert split[2:4] == [
        "INCREASE: 1.33 mg/kg (was 1)",
        "Dose: 93.1 mg (1.33 mg/kg × 70 kg) = 1.86 mL of the 50 mg/mL solution, as 2 injections (at most 1.2 mL each)",
    ]
    tablet = card(hetrombopag())
    assert tablet[3].startswith("Dose: 5 mg by mouth once daily; take on an empty stomach")


def test_a_discontinue_names_its_reason() -> None:
    stop = card(
        romiplostim(
            current_dose={"amount": 10, "unit": "mcg/kg", "since": "2026-10-25", "last_given": "2026-11-15"},
            labs=platelets((20, "2026-11-21")),
        )
    )
    assert stop[2] == "DISCONTINUE: no response — platelets below 50 ×10^9/L after 4 doses at the maximum 10 mcg/kg"


def test_the_footer_and_why_name_the_ruleset() -> None:
    lines = card(romiplostim())
    assert lines[-1] == "HemaDose rules v1.1. This supports, and does not replace, clinical judgement."
    response = recommend(DoseRequest.model_validate(romiplostim())).model_dump(mode="json")
    assert render.why(response, saved=False).text.splitlines()[-1] == (
        "Ruleset romiplostim/us (HemaDose rules v1.1). This supports, and does not replace, clinical judgement."
    )


def test_help_says_what_happens_to_a_count_per_microlitre() -> None:
    text = render.help_text("lab_value")
    assert "52000 is offered as 52 ×10^9/L for you to confirm (Yes, use it) or re-enter" in text
    assert "read as 52" not in text
    assert "(RULES.md v1.1)" in render.help_text("drug")


def test_child_pugh_c_during_a_japanese_course_asks_whether_to_stop() -> None:
    """RULES.md v1.1: the core refers a JP course in Child-Pugh C; the headline is ready for it."""
    from core.framework import Context
    from core.lusutrombopag import PROFILE

    course = lusutrombopag(
        region="jp",
        patient={"child_pugh": "C"},
        current_dose={"amount": 3, "unit": "mg", "since": "2026-11-20", "last_given": "2026-11-21"},
    )
    ctx = Context.of(DoseRequest.model_validate(course), PROFILE)
    reason = render._refer_reason("lusutrombopag.child_pugh_c", ctx, Answers())
    assert reason == "contraindicated in Japan (Child-Pugh C) — the clinician decides whether to stop the course"
