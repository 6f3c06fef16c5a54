"""Wall-clock times in a zone as UTC minutes, exact across DST changes (no Django).

A weekly rule ("Monday 09:00-17:00 in Europe/London") and an all-day event ("the 29th, in
the member's zone") are intervals of wall-clock time. Around a DST change the wall clock
skips or repeats an hour, so one wall-clock interval can be one UTC interval, a shorter one,
or two. `offset_pieces` splits a UTC span where the zone's offset changes; `wall_to_utc` then
maps a wall-clock interval piece by piece: a UTC minute belongs to it exactly when its wall
time does.
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from calendars.availability.engine import Interval, merge

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PROBE = 60  # minutes between probes; no zone changes its offset twice within an hour
_DAY = 1440


def to_minutes(moment: datetime) -> int:
    """An aware datetime as whole minutes since the epoch, rounded down."""
    return int((moment - EPOCH).total_seconds() // 60)


def from_minutes(minute: int) -> datetime:
    return EPOCH + timedelta(minutes=minute)


def day_minutes(day: date) -> int:
    """Midnight of `day` on the wall clock, as minutes since the (wall-clock) epoch."""
    return (day - EPOCH.date()).days * _DAY


def _offset(tz: ZoneInfo, minute: int) -> int:
    return int(from_minutes(minute).astimezone(tz).utcoffset().total_seconds() // 60)


def offset_pieces(tz: ZoneInfo, start: int, end: int) -> list[tuple[int, int, int]]:
    """(utc_start, utc_end, offset in minutes) covering [start, end), split at every change."""
    pieces, piece_start, offset = [], start, _offset(tz, start)
    probe = start
    while probe < end:
        step_end = min(probe + _PROBE, end)
        if _offset(tz, step_end) != offset:
            # The change lies in (probe, step_end]: find its first minute.
            lo, hi = probe, step_end
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _offset(tz, mid) == offset else (lo, mid)
            pieces.append((piece_start, hi, offset))
            piece_start, offset = hi, _offset(tz, hi)
        probe = step_end
    pieces.append((piece_start, end, offset))
    return [p for p in pieces if p[0] < p[1]]


def wall_to_utc(pieces, wall_start: int, wall_end: int) -> list[Interval]:
    """The UTC minutes (within the pieces) whose wall-clock time is in [wall_start, wall_end)."""
    found = []
    for utc_start, utc_end, offset in pieces:
        lo, hi = max(utc_start, wall_start - offset), min(utc_end, wall_end - offset)
        if lo < hi:
            found.append((lo, hi))
    return merge(found)


def wall_dates(pieces) -> list[date]:
    """Every wall-clock date that the pieces touch."""
    first = (pieces[0][0] + pieces[0][2]) // _DAY
    last = (pieces[-1][1] + pieces[-1][2]) // _DAY
    return [EPOCH.date() + timedelta(days=d) for d in range(first, last + 1)]
