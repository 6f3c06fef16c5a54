"""Availability rules: weekly wall-clock periods in a zone, as UTC minutes (no Django).

A rule's `weekly_periods` are `{"day": "monday", "start_time": "09:30", "end_time": "12:30"}`
in the rule's `tzid`. `weekly_windows` maps them onto a UTC window with calendars/
availability/zones.py, so that a minute is inside exactly when its wall-clock time in the zone
is: across a DST change a 09:00-17:00 rule stays 09:00-17:00 on the clock.
"""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from calendars.availability import zones
from calendars.availability.engine import Interval, merge

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK_RE = re.compile(r"^(?P<h>[01]\d|2[0-4]):(?P<m>[0-5]\d)$")


def clock_minutes(text) -> int | None:
    """ "09:30" as 570; "24:00" (end of day) as 1440; anything else None."""
    match = _CLOCK_RE.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    minutes = int(match["h"]) * 60 + int(match["m"])
    return minutes if minutes <= 1440 else None


def weekly_windows(
    zone: ZoneInfo, periods: list[tuple[int, int, int]], low: int, high: int
) -> list[Interval]:
    """The UTC minutes in [low, high) whose wall-clock time in `zone` falls in one of
    `periods`: (weekday 0-6, start minute, end minute of the day)."""
    if not periods or low >= high:
        return []
    pieces = zones.offset_pieces(zone, low, high)
    found: list[Interval] = []
    for day in zones.wall_dates(pieces):
        midnight = zones.day_minutes(day)
        for weekday, start, end in periods:
            if weekday == day.weekday():
                found.extend(zones.wall_to_utc(pieces, midnight + start, midnight + end))
    return merge(found)


def rule_periods(weekly_periods: list[dict]) -> list[tuple[int, int, int]]:
    """Stored weekly periods (already validated) as (weekday, start, end) minutes."""
    return [
        (DAYS.index(p["day"]), clock_minutes(p["start_time"]), clock_minutes(p["end_time"]))
        for p in weekly_periods
    ]


def rule_windows(rule, window: tuple[datetime, datetime]) -> list[Interval]:
    """A stored rule (tzid, weekly_periods) over a query window, as UTC minutes."""
    low = zones.to_minutes(window[0])
    high = zones.to_minutes(window[1]) + 1
    return weekly_windows(ZoneInfo(rule.tzid), rule_periods(rule.weekly_periods), low, high)
