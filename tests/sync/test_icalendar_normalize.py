"""Normalization corpus: time zones (DST, Windows names, floating), all-day, recurrence."""

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sync.providers.base import Window
from sync.providers.icalendar.normalize import (
    InvalidCalendarData,
    has_recurrence,
    normalize_resource,
)
from tests.sync.helpers import soon, vcalendar, vevent

CORPUS = Path(__file__).parent.parent / "fixtures" / "ical"
WINDOW = Window.around(date(2027, 1, 1), past_days=42, future_days=201)


def _load(name, **kwargs):
    return normalize_resource((CORPUS / name).read_text(), window=WINDOW, **kwargs)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_normalize_dst_transition_keeps_local_wall_time():
    _, events = _load("dst_weekly.ics")
    # 09:00 New York: EST (UTC-5) on 1 March, EDT (UTC-4) from 14 March 2027.
    assert [e.start for e in events] == [
        utc(2027, 3, 1, 14),
        utc(2027, 3, 8, 14),
        utc(2027, 3, 15, 13),
    ]
    assert {e.tzid for e in events} == {"America/New_York"}
    assert [e.original_start for e in events] == [e.start for e in events]


def test_normalize_maps_windows_zone_names_to_iana():
    [event] = _load("windows_zone.ics")[1]
    assert event.tzid == "Europe/Berlin" and event.start == utc(2027, 1, 15, 8)
    assert event.end == utc(2027, 1, 15, 8, 30) and event.original_start is None


@pytest.mark.parametrize(
    ("default_tzid", "expected"),
    [("Etc/UTC", utc(2027, 1, 15, 9)), ("America/Chicago", utc(2027, 1, 15, 15))],
)
def test_normalize_floating_time_uses_the_default_zone(default_tzid, expected):
    [event] = _load("floating.ics", default_tzid=default_tzid)[1]
    assert event.start == expected and event.tzid == default_tzid


def test_normalize_all_day_events_are_dates_with_exclusive_end():
    _, events = _load("all_day.ics")
    trip = next(e for e in events if e.provider_key == "all-day-trip")
    assert trip.is_all_day and (trip.start_date, trip.end_date) == (
        date(2027, 1, 15),
        date(2027, 1, 18),
    )
    assert trip.start == utc(2027, 1, 15) and trip.transparency == "transparent"
    birthdays = [e for e in events if e.provider_key == "all-day-birthday"]
    # Yearly from 10 Jan 2027; the window (20 Nov 2026 .. 21 Jul 2027) holds one occurrence.
    assert [(b.start_date, b.end_date) for b in birthdays] == [
        (date(2027, 1, 10), date(2027, 1, 11))
    ]
    assert birthdays[0].is_recurring and birthdays[0].original_start == utc(2027, 1, 10)


def test_normalize_recurrence_applies_exdate_rdate_and_overrides():
    uids, events = _load("recurrence.ics", self_emails=frozenset({"me@example.com"}))
    assert uids == ["series"]
    by_original = {e.original_start: e for e in events}
    # Daily 10:00 Berlin (09:00 UTC) x5 from 4 Jan, minus EXDATE 5 Jan, plus RDATE 10 Jan 12:00.
    assert sorted(by_original) == [
        utc(2027, 1, 4, 9),
        utc(2027, 1, 6, 9),
        utc(2027, 1, 7, 9),
        utc(2027, 1, 8, 9),
        utc(2027, 1, 10, 11),
    ]
    moved = by_original[utc(2027, 1, 6, 9)]
    assert moved.start == utc(2027, 1, 6, 14) and moved.summary == "Daily (moved)"
    assert moved.status == "tentative"
    assert by_original[utc(2027, 1, 7, 9)].status == "cancelled"
    first = by_original[utc(2027, 1, 4, 9)]
    assert first.is_recurring and first.is_private and first.categories == ["Work", "Team"]
    assert first.participation_status == "tentative"
    assert first.organizer == {"email": "olga@example.com", "display_name": "Olga"}
    assert first.meeting_url == "https://meet.google.com/abc-defg-hij"
    assert {a["email"]: a["status"] for a in first.attendees} == {
        "me@example.com": "tentative",
        "olga@example.com": "accepted",
    }


def test_normalize_instances_outside_the_window_are_not_materialized():
    narrow = Window(utc(2027, 1, 6), utc(2027, 1, 8))
    _, events = normalize_resource((CORPUS / "recurrence.ics").read_text(), window=narrow)
    assert sorted(e.original_start for e in events) == [utc(2027, 1, 6, 9), utc(2027, 1, 7, 9)]


def test_normalize_rejects_garbage():
    with pytest.raises(InvalidCalendarData):
        normalize_resource("this is not iCalendar", window=WINDOW)


def test_has_recurrence_reads_only_the_events():
    timezone_rule = (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
        "END:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    single = vevent("one", soon(2))
    with_timezone = vcalendar(single).replace("BEGIN:VEVENT", timezone_rule + "BEGIN:VEVENT", 1)
    assert "RRULE" in with_timezone and not has_recurrence(with_timezone)
    assert has_recurrence(vcalendar(vevent("s", soon(2), extra="RRULE:FREQ=DAILY")))
    override_only = vevent("inv", soon(3), extra="RECURRENCE-ID:20261205T090000Z")
    assert has_recurrence(vcalendar(override_only))  # an invitation to one instance
