"""Missed doses (RULES.md section 6): each drug's own rule, for the reminders. Not part of `recommend`."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict

from core.models import Drug

MissedAction = Literal["take_today", "skip", "give_as_soon_as_possible", "contact_team"]

_SECTION_6 = "HemaDose ruleset v1, section 6 (no label rule)"


class MissedDoseGuidance(BaseModel):
    """What to do about one missed dose. Doubling up is never advised."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drug: Drug
    rule: str
    source: str
    action: MissedAction
    give_missed_dose: bool  # the missed dose itself is still to be given
    notify_team: bool
    # The earliest date for the dose after the missed one (luspatercept: 21 days after it is given).
    next_dose_not_before: dt.date | None
    text: str


def missed_dose_guidance(
    drug: Drug, scheduled: dt.date, today: dt.date, given_on: dt.date | None = None
) -> MissedDoseGuidance:
    """Guidance for a dose scheduled on `scheduled` and not confirmed; `given_on` when given late."""
    one_day = dt.timedelta(days=1)
    if drug == "lusutrombopag":
        if today == scheduled:
            return MissedDoseGuidance(
                drug=drug,
                rule="missed.lusutrombopag",
                source="Mulpleta US PI 2.1",
                action="take_today",
                give_missed_dose=True,
                notify_team=False,
                next_dose_not_before=today + one_day,
                text="Take today's 3 mg dose as soon as possible today, then the usual schedule tomorrow. "
                "Never two doses in one day.",
            )
        return MissedDoseGuidance(
            drug=drug,
            rule="missed.lusutrombopag",
            source="Mulpleta US PI 2.1",
            action="skip",
            give_missed_dose=False,
            notify_team=True,
            next_dose_not_before=today,
            text=f"The dose of {scheduled} is not made up: the course is one day shorter. Take today's dose "
            "as usual (never two in one day) and tell the treating team before the procedure.",
        )
    if drug == "hetrombopag":
        return MissedDoseGuidance(
            drug=drug,
            rule="missed.hetrombopag",
            source=_SECTION_6,
            action="skip",
            give_missed_dose=False,
            notify_team=True,
            next_dose_not_before=scheduled + one_day,
            text="Do not take two doses to make up. Take the next dose at the usual time, on an empty "
            "stomach, and tell the treating team.",
        )
    if drug == "romiplostim":
        return MissedDoseGuidance(
            drug=drug,
            rule="missed.romiplostim",
            source=_SECTION_6,
            action="contact_team",
            give_missed_dose=True,
            notify_team=True,
            next_dose_not_before=None,
            text=f"The injection of {scheduled} was missed. Do not double the next one; contact the treating "
            "team to give it as soon as possible.",
        )
    given = given_on or today
    return MissedDoseGuidance(
        drug=drug,
        rule="missed.luspatercept",
        source="Reblozyl US PI 2.3 (missed dose)",
        action="give_as_soon_as_possible",
        give_missed_dose=given_on is None,
        notify_team=False,
        next_dose_not_before=given + dt.timedelta(days=21),
        text=f"Give the dose of {scheduled} as soon as possible, then keep at least 21 days to the next "
        f"(not before {given + dt.timedelta(days=21)}); later dates move accordingly.",
    )
