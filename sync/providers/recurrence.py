"""The desired recurrence of a managed series (calendars.recurrence's rule, as it arrives in
ManagedEventWrite.desired) in RFC 5545 RRULE notation, which CalDAV and Google both store.

UNTIL is inclusive: an integrator's `until` date covers instances starting on that day in the
event's zone, so a timed series ends at the last second of that day there, in UTC as RFC 5545
requires when DTSTART is a date-time; an all-day series names the date itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_CODES = {
    "monday": "MO",
    "tuesday": "TU",
    "wednesday": "WE",
    "thursday": "TH",
    "friday": "FR",
    "saturday": "SA",
    "sunday": "SU",
}


def _zone(tzid: str):
    try:
        return ZoneInfo(tzid) if tzid else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def until_instant(until: str, tzid: str) -> datetime:
    """The last moment (UTC) of the `until` date in the event's zone."""
    next_day = date.fromisoformat(until) + timedelta(days=1)
    return datetime.combine(next_day, time.min, tzinfo=_zone(tzid)).astimezone(UTC) - timedelta(
        seconds=1
    )


def rrule(recurrence: Mapping, *, tzid: str, is_all_day: bool) -> str:
    """`FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=6` for one rule."""
    parts = [f"FREQ={recurrence['frequency'].upper()}"]
    if int(recurrence.get("interval") or 1) != 1:
        parts.append(f"INTERVAL={int(recurrence['interval'])}")
    if recurrence.get("by_day"):
        parts.append("BYDAY=" + ",".join(DAY_CODES[day] for day in recurrence["by_day"]))
    if recurrence.get("count"):
        parts.append(f"COUNT={int(recurrence['count'])}")
    elif recurrence.get("until"):
        if is_all_day:
            parts.append("UNTIL=" + date.fromisoformat(recurrence["until"]).strftime("%Y%m%d"))
        else:
            parts.append(
                "UNTIL=" + until_instant(recurrence["until"], tzid).strftime("%Y%m%dT%H%M%SZ")
            )
    return ";".join(parts)
