"""The committed diagram of the consultation (docs/consultation.md) is the one the machine draws."""

from __future__ import annotations

from pathlib import Path

from flows.diagram import edges, markdown
from flows.machine import MACHINE

COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "consultation.md"


def test_the_committed_diagram_is_drawn_from_the_machine():
    assert COMMITTED.read_text(encoding="utf-8") == markdown(), (
        "docs/consultation.md is out of date: run `python -m flows.diagram > docs/consultation.md`"
    )


def test_the_diagram_draws_the_skips_and_the_way_back_to_the_record():
    drawn = edges(MACHINE)
    assert ("weight", "age", "advance [asks_age], else advance from age") in drawn
    assert ("region", "indication", "retreat [asks_indication], else retreat from indication") in drawn
    assert drawn.index(("drug", "drug", "retreat [asks_drug]")) < drawn.index(
        ("drug", "idle", "retreat otherwise / show_record")
    )
    assert ("any_state", "drug", "start [asks_drug], else advance from drug") in drawn
    assert ("review", "result", "confirm") in drawn
    assert ("any_question", "result", "decide") in drawn
    # Every transition of the machine is on the picture, folded or drawn (no state left unreached).
    reached = {dest for _, dest, _ in drawn}
    assert reached == set(MACHINE.states)
