"""Google events -> cached events (sync.providers.google.normalize), from a recorded
events.list page: identity, times, series with a moved and a cancelled instance, busy rules."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sync.providers.base import InvalidData, ProviderResource, ReadContext, Window
from sync.providers.google import normalize

PAGE = json.loads((Path(__file__).parents[1] / "fixtures/google/events_page.json").read_text())
WINDOW = Window.around(date(2026, 12, 2), past_days=42, future_days=201)
CONTEXT = ReadContext(default_tzid="Etc/UTC", self_emails=frozenset({"ada@example.com"}))


def groups() -> dict[str, ProviderResource]:
    grouped: dict[str, dict] = {}
    for item in PAGE["items"]:
        sid = normalize.series_id(item)
        normalize.add_item(grouped.setdefault(sid, normalize.new_group(PAGE["timeZone"])), item)
    return {
        sid: ProviderResource(sid, normalize.group_version(g), normalize.dump(g))
        for sid, g in grouped.items()
    }


def events_of(series: str):
    return normalize.normalize(groups()[series], window=WINDOW, context=CONTEXT)


def test_google_normalize_single_event_times_people_and_meeting():
    result = events_of("single1")
    [event] = result.events
    assert result.uids == ["single1"] and result.series == ""
    assert (event.provider_key, event.original_start) == ("single1", None)
    assert event.start == datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    assert event.end == datetime(2026, 12, 10, 10, 30, tzinfo=UTC)
    assert event.tzid == "Europe/Berlin" and event.ical_uid == "single1@google.com"
    assert event.participation_status == "declined"  # the self attendee's answer
    assert event.organizer == {"email": "boss@example.com", "display_name": "Boss"}
    assert event.meeting_url == "https://meet.google.com/abc-defg-hij"
    assert event.location_description == "Room 4" and event.transparency == "opaque"
    assert event.provider_resource == "single1" and event.provider_etag == '"3401661520000000"'


def test_google_normalize_all_day_stays_dates_with_an_exclusive_end():
    [event] = events_of("allday1").events
    assert event.is_all_day and (event.start_date, event.end_date) == (
        date(2026, 12, 14),
        date(2026, 12, 16),
    )
    assert event.start == datetime(2026, 12, 14, tzinfo=UTC)
    assert event.transparency == "transparent" and event.is_private
    assert event.participation_status == "accepted"  # the organizer is the end-user


def test_google_normalize_series_with_a_moved_and_a_cancelled_instance():
    result = events_of("weekly1")
    by_original = {e.original_start: e for e in result.events}
    assert result.uids == ["weekly1"] and result.series  # kept for the window roll
    assert len(result.events) == 7  # eight Mondays, one cancelled
    assert datetime(2026, 11, 16, 8, 0, tzinfo=UTC) not in by_original
    moved = by_original[datetime(2026, 11, 9, 8, 0, tzinfo=UTC)]
    assert moved.summary == "Standup (moved)"
    assert moved.start == datetime(2026, 11, 10, 8, 30, tzinfo=UTC)
    assert all(e.provider_key == "weekly1" and e.is_recurring for e in result.events)
    # Wall-clock 09:00 Berlin every Monday: 08:00 UTC in winter.
    assert by_original[datetime(2026, 12, 21, 8, 0, tzinfo=UTC)].summary == "Standup"


def test_google_normalize_working_location_is_not_busy():
    [event] = events_of("wl1").events
    assert event.transparency == "transparent"
    assert event.extended_transparency == "working_elsewhere"


def test_google_normalize_out_of_office_blocks_time():
    group = normalize.new_group("UTC")
    item = next(i for i in PAGE["items"] if i["id"] == "single1")
    normalize.add_item(group, {**item, "eventType": "outOfOffice", "attendees": []})
    resource = ProviderResource("single1", "v", normalize.dump(group))
    [event] = normalize.normalize(resource, window=WINDOW, context=CONTEXT).events
    assert (event.transparency, event.extended_transparency) == ("opaque", "out_of_office")
    assert events_of("allday1").events[0].extended_transparency == ""  # a plain event


def test_google_normalize_instance_without_its_master_is_kept_alone():
    group = normalize.new_group("Europe/Berlin")
    moved = next(i for i in PAGE["items"] if i["id"] == "weekly1_20261109T080000Z")
    normalize.add_item(group, moved)
    resource = ProviderResource("weekly1", "v", normalize.dump(group))
    [event] = normalize.normalize(resource, window=WINDOW, context=CONTEXT).events
    assert event.original_start == datetime(2026, 11, 9, 8, 0, tzinfo=UTC)


def test_google_normalize_series_version_changes_with_an_instance():
    group = normalize.load(groups()["weekly1"].payload)
    before = normalize.group_version(group)
    group["exceptions"]["weekly1_20261116T080000Z"]["etag"] = '"new"'
    assert normalize.group_version(group) != before
    assert normalize.master_etag(before) == '"3401661520000002"'


def test_google_normalize_cancelled_master_is_gone():
    group = normalize.load(groups()["weekly1"].payload)
    normalize.add_item(group, {"id": "weekly1", "status": "cancelled", "etag": '"x"'})
    assert normalize.is_gone(group)


def test_google_normalize_unreadable_payload_is_invalid_data():
    with pytest.raises(InvalidData):
        normalize.normalize(ProviderResource("x", "v", "{"), window=WINDOW, context=CONTEXT)
    broken = normalize.new_group()
    broken["master"] = {"id": "x", "start": {}, "recurrence": ["RRULE:FREQ=WEEKLY"]}
    with pytest.raises(InvalidData):
        normalize.normalize(
            ProviderResource("x", "v", normalize.dump(broken)), window=WINDOW, context=CONTEXT
        )


def series(start: dict, end: dict, recurrence: list[str]) -> list:
    group = normalize.new_group("Europe/Berlin")
    master = {"id": "s", "summary": "S", "start": start, "end": end, "recurrence": recurrence}
    normalize.add_item(group, master)
    resource = ProviderResource("s", "v", normalize.dump(group))
    return normalize.normalize(resource, window=WINDOW, context=CONTEXT).events


BERLIN = {"timeZone": "Europe/Berlin"}


@pytest.mark.parametrize(
    "start, end, recurrence, count",
    [
        # UNTIL in UTC on an all-day series (inclusive: the 5th is the last)
        (
            {"date": "2026-12-01"},
            {"date": "2026-12-02"},
            ["RRULE:FREQ=DAILY;UNTIL=20261205T000000Z"],
            5,
        ),
        # a date-only UNTIL on a timed series: up to that date's start
        (
            {"dateTime": "2026-12-01T09:00:00+01:00", **BERLIN},
            {"dateTime": "2026-12-01T10:00:00+01:00", **BERLIN},
            ["RRULE:FREQ=DAILY;UNTIL=20261204"],
            3,
        ),
        # a floating EXDATE (wall clock in the event's zone)
        (
            {"dateTime": "2026-12-01T09:00:00+01:00", **BERLIN},
            {"dateTime": "2026-12-01T10:00:00+01:00", **BERLIN},
            ["RRULE:FREQ=DAILY;COUNT=5", "EXDATE:20261203T090000"],
            4,
        ),
        # RDATE with a TZID
        (
            {"dateTime": "2026-12-01T09:00:00+01:00", **BERLIN},
            {"dateTime": "2026-12-01T10:00:00+01:00", **BERLIN},
            ["RRULE:FREQ=DAILY;COUNT=2", "RDATE;TZID=Europe/Berlin:20261210T150000"],
            3,
        ),
    ],
)
def test_google_normalize_recurrence_forms_google_sends(start, end, recurrence, count):
    assert len(series(start, end, recurrence)) == count


def test_google_normalize_series_keeps_its_wall_clock_across_dst():
    events = series(
        {"dateTime": "2026-10-22T09:00:00+02:00", **BERLIN},
        {"dateTime": "2026-10-22T09:30:00+02:00", **BERLIN},
        ["RRULE:FREQ=WEEKLY;COUNT=3"],
    )
    # 09:00 in Berlin: 07:00 UTC in summer time, 08:00 UTC after 25 October.
    assert [e.start.hour for e in sorted(events, key=lambda e: e.start)] == [7, 8, 8]
