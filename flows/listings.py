"""The record lists: `/patients` and `/history`, a page at a time with Previous and Next (one message
each, whatever the size of the record)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from flows.buttons import PageButton, PageList, Word
from flows.names import DRUG_NAMES
from flows.replies import Button, Reply

PATIENTS_PAGE = 40  # labels per /patients page (a line is at most ~50 characters: one message)
HISTORY_PAGE = 30  # entries per /history page (a line is at most ~110 characters: one message)


def _pager(listing: PageList, page: int, pages: int, label: str = "") -> tuple[Button, ...]:
    """Previous and Next, where there is such a page."""
    buttons = []
    if page > 1:
        buttons.append(Button("◀ Previous", PageButton(listing, page - 1, label).encode()))
    if page < pages:
        buttons.append(Button("Next ▶", PageButton(listing, page + 1, label).encode()))
    return tuple(buttons)


def patients(labels: Sequence[tuple[str, str | None]], page: int = 1, pages: int = 1, total: int = 0) -> Reply:
    """`labels`: (label, drug or None) for the user's patients on this page of `pages` (`total` in all)."""
    if not labels:
        return Reply(
            "You have no saved patients yet. A patient is saved with Save to patient after a recommendation.",
            ((Button("New consultation", Word.NEW.value),),),
        )
    lines = ["Your patients:"]
    lines += [f"• {label}" + (f" ({DRUG_NAMES.get(drug, drug)})" if drug else "") for label, drug in labels]
    if pages > 1:
        lines.append(f"Page {page} of {pages} ({total:,} patients).")
    lines.append("Type /history LABEL to see one patient's record.")
    pager = _pager(PageList.PATIENTS, page, pages)
    return Reply("\n".join(lines), (*((pager,) if pager else ()), (Button("New consultation", Word.NEW.value),)))


def history(label: str, events: Sequence[tuple[dt.date, str]], page: int = 1, pages: int = 1, total: int = 0) -> Reply:
    """`events`: (date, line) for doses, results and recommendations, newest first: page `page` of `pages`."""
    if not events:
        return Reply(f"Nothing is recorded for {label} yet.")
    lines = [f"Record of {label} (newest first):"]
    lines += [f"{day} {text}" for day, text in events[:40]]
    if pages > 1:
        lines.append(f"Page {page} of {pages} ({total:,} entries; Next goes back in time).")
    elif len(events) > 40:
        lines.append(f"… and {len(events) - 40} earlier entries.")
    pager = _pager(PageList.HISTORY, page, pages, label)
    return Reply("\n".join(lines), (pager,) if pager else ())
