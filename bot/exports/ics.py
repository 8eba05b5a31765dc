"""The iCalendar export: the planned dose days and the next blood test of the last recommendation,
with an alarm at the patient's reminder time (icalendar).

Dates are the core's stored decision (its dose date or course, its monitoring date). With reminders set,
each event starts at their local time in the user's zone and its alarm fires then; without, each is an
all-day event with an alarm at its start, and the file says so.
"""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event

from bot.exports.record import PatientRecord
from core.models import DoseResponse
from flows.administration import administration
from flows.reminders import lab_words

PRODUCT = "-//HemaDose//clinical export//EN"
EVENT_MINUTES = 15  # how long a timed event lasts in the calendar (a slot, not a clinical number)


def planned(response: DoseResponse) -> list[tuple[str, dt.date]]:
    """('dose' | 'lab', day) for every planned date of the decision, in date order."""
    days: list[tuple[str, dt.date]] = []
    if response.dose is not None:
        doses = response.schedule or ([response.next_dose_date] if response.next_dose_date else [])
        days += [("dose", day) for day in doses]
    if response.next_monitoring is not None:
        days.append(("lab", response.next_monitoring.date))
    return sorted(days, key=lambda item: (item[1], item[0]))


def to_ics(record: PatientRecord, now: dt.datetime, default_zone: str = "UTC") -> bytes | None:
    """The calendar, or None when no recommendation plans a date."""
    last = record.last
    if last is None or not planned(last.response):
        return None
    response, drug = last.response, last.request.drug
    zone = ZoneInfo(record.time_zone or default_zone)
    calendar = Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"HemaDose {record.label}")
    dose_words = administration(drug, response.model_dump(mode="json"))
    for kind, day in planned(response):
        event = Event()
        summary = f"{record.label}: {drug} dose" if kind == "dose" else f"{record.label}: {lab_words(response)}"
        event.add("summary", summary)
        event.add("description", dose_words if kind == "dose" else f"Blood test: {lab_words(response)}")
        event.add("uid", f"{uuid.uuid5(uuid.NAMESPACE_URL, f'hemadose/{record.label}/{kind}/{day}')}@hemadose")
        event.add("dtstamp", now.astimezone(dt.UTC))
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", summary)
        if record.reminder_time is not None:
            start = dt.datetime.combine(day, record.reminder_time, tzinfo=zone)
            event.add("dtstart", start)
            event.add("dtend", start + dt.timedelta(minutes=EVENT_MINUTES))
        else:
            event.add("dtstart", day)
            event.add("dtend", day + dt.timedelta(days=1))
        alarm.add("trigger", dt.timedelta(0))  # at the event's start: the reminder time
        event.add_component(alarm)
        calendar.add_component(event)
    calendar.add_missing_timezones()  # a VTIMEZONE for the zone of the timed events
    return bytes(calendar.to_ical())
