"""Wall-clock rules and all-day days as UTC minutes, against a minute-by-minute oracle, on
windows that cross DST changes (hypothesis)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from calendars.availability import zones
from calendars.availability.rules import weekly_windows

ZONES = ("Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC")
# Windows around each zone's changes in 2026 (March/April and October/November).
CHANGES = [
    datetime(2026, 3, 27, tzinfo=UTC),
    datetime(2026, 10, 23, tzinfo=UTC),
    datetime(2026, 4, 3, tzinfo=UTC),
    datetime(2026, 10, 30, tzinfo=UTC),
]


def covered(intervals):
    return {t for a, b in intervals for t in range(a, b)}


@st.composite
def windows(draw):
    start = zones.to_minutes(draw(st.sampled_from(CHANGES))) + draw(st.integers(0, 1440))
    return draw(st.sampled_from(ZONES)), start, start + draw(st.integers(1, 3 * 1440))


@settings(max_examples=150, deadline=None)
@given(
    window=windows(),
    periods=st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 1439), st.integers(1, 1440)).map(
            lambda p: (p[0], min(p[1], p[2] - 1), max(p[2], p[1] + 1))
        ),
        max_size=4,
    ),
)
def test_weekly_windows_match_the_wall_clock_minute_by_minute(window, periods):
    name, low, high = window
    zone = ZoneInfo(name)
    expected = set()
    for minute in range(low, high):
        local = zones.from_minutes(minute).astimezone(zone)
        clock = local.hour * 60 + local.minute
        if any(day == local.weekday() and a <= clock < b for day, a, b in periods):
            expected.add(minute)
    assert covered(weekly_windows(zone, periods, low, high)) == expected


@settings(max_examples=40, deadline=None)
@given(window=windows(), length=st.integers(1, 3))
def test_all_day_span_matches_the_local_dates(window, length):
    name, low, high = window
    zone = ZoneInfo(name)
    pieces = zones.offset_pieces(zone, low, high)
    first = zones.from_minutes(low).astimezone(zone).date()
    wall_start = zones.day_minutes(first)
    got = covered(zones.wall_to_utc(pieces, wall_start, wall_start + length * 1440))
    expected = {
        m
        for m in range(low, high)
        if 0 <= (zones.from_minutes(m).astimezone(zone).date() - first).days < length
    }
    assert got == expected
