"""Acceptance: Cronofy's Python SDK asks a live server for availability (periods and slots)."""

from datetime import UTC, datetime

import pytest
from django.utils import timezone

from sync.models import CalendarSyncState
from tests.calendars.helpers import add_event, make_world, sdk_client
from tests.factories import make_access_token, make_account, make_calendar, make_profile

NINE = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def sdk(live_server, transactional_db):
    world = make_world()
    other = make_account()
    other_calendar = make_calendar(profile=make_profile(account=other))
    make_access_token(account=other, application=world.application)
    for calendar in (world.calendar, other_calendar):
        CalendarSyncState.objects.create(calendar=calendar, last_synced_at=timezone.now())
    add_event(world.calendar, start=NINE.replace(hour=10), minutes=60)
    add_event(other_calendar, start=NINE.replace(hour=13), minutes=60)
    return sdk_client(world, live_server.url), world.account.public_id, other.public_id


PERIODS = ({"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T15:00:00Z"},)


def test_pycronofy_availability_periods_for_two_groups(sdk):
    client, me, other = sdk
    periods = client.availability(
        participants=({"members": [me]}, {"members": [other]}),
        required_duration=60,
        available_periods=[dict(p) for p in PERIODS],
    )
    assert [(p["start"], p["end"]) for p in periods] == [
        ("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z"),
        ("2026-12-01T11:00:00Z", "2026-12-01T13:00:00Z"),
        ("2026-12-01T14:00:00Z", "2026-12-01T15:00:00Z"),
    ]
    assert periods[0]["participants"] == [{"sub": me}, {"sub": other}]


def test_pycronofy_availability_slots_with_buffer_and_interval(sdk):
    client, me, other = sdk
    slots = client.availability(
        participants={"members": [me, other]},
        required_duration=30,
        available_periods=[dict(p) for p in PERIODS],
        start_interval=30,
        buffer={"before": 30, "after": {"minutes": 0}},
        response_format="slots",
        max_results=3,
    )
    assert [s["start"] for s in slots] == [
        "2026-12-01T09:00:00Z",
        "2026-12-01T09:30:00Z",
        "2026-12-01T11:30:00Z",
    ]


def test_pycronofy_availability_query_slots(sdk):
    client, me, _ = sdk
    slots = client.availability(
        participants={"members": [{"sub": me, "available_periods": [dict(p) for p in PERIODS]}]},
        required_duration=60,
        query_slots=[{"start": "2026-12-01T09:00:00Z"}, {"start": "2026-12-01T10:00:00Z"}],
        response_format="overlapping_slots",
    )
    assert [s["start"] for s in slots] == ["2026-12-01T09:00:00Z"]


def test_pycronofy_sequenced_availability(sdk):
    client, me, other = sdk
    sequences = client.sequenced_availability(
        sequence=[
            {
                "sequence_id": "interview",
                "ordinal": 1,
                "participants": {"members": [me]},
                "required_duration": 60,
            },
            {
                "sequence_id": "debrief",
                "ordinal": 2,
                "participants": {"members": [other]},
                "required_duration": 30,
                "buffer": {"before": {"minimum": {"minutes": 30}, "maximum": {"minutes": 60}}},
            },
        ],
        available_periods=[dict(p) for p in PERIODS],
    )
    # me is busy 10-11, other 13-14: the interview fits at 09:00, the debrief 30-60 minutes
    # after it ends.
    first = sequences[0]["sequence"]
    assert [(s["sequence_id"], s["start"], s["end"]) for s in first] == [
        ("interview", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z"),
        ("debrief", "2026-12-01T10:30:00Z", "2026-12-01T11:00:00Z"),
    ]
    assert first[1]["participants"] == [{"sub": other}]
    starts = [s["sequence"][0]["start"] for s in sequences]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
