"""Acceptance: Cronofy's official Python SDK reads everything back from a live server."""

from datetime import UTC, date, datetime, timedelta

import pytest
from pycronofy.exceptions import PyCronofyRequestError

from calendars.reads import PAGE_SIZE
from tests.calendars.helpers import (
    add_all_day_event,
    add_event,
    make_managed,
    make_world,
    sdk_client,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def sdk(live_server, transactional_db, settings):
    settings.CALENDAR_PROVIDER_CREATOR = "tests.calendars.test_api_calendars.recording_creator"
    world = make_world()
    client = sdk_client(world, live_server.url)
    return client, world.account, world.application, world.profile, world.calendar


def test_pycronofy_account_userinfo_profiles_calendars(sdk):
    client, account, _, profile, calendar = sdk
    assert client.account()["account_id"] == account.public_id
    userinfo = client.userinfo()
    assert userinfo["sub"] == account.public_id
    assert userinfo["cronofy.data"]["profiles"][0]["profile_calendars"][0]["calendar_id"] == (
        calendar.public_id
    )
    assert [p["profile_id"] for p in client.list_profiles()] == [profile.public_id]
    assert [c["calendar_id"] for c in client.list_calendars()] == [calendar.public_id]


def test_pycronofy_create_calendar_and_its_duplicate_path(sdk):
    client, _, _, profile, _ = sdk
    created = client.create_calendar(profile.public_id, "Bookings")
    assert created["calendar"]["calendar_name"] == "Bookings"

    with pytest.raises(PyCronofyRequestError) as caught:
        client.create_calendar(profile.public_id, "Bookings")
    assert caught.value.response.status_code == 422

    # pycronofy reads errors.name[0].key and then finds the existing calendar itself.
    existing = client.create_calendar(profile.public_id, "Bookings", error_on_duplicate=False)
    assert existing["calendar_id"] == created["calendar"]["calendar_id"]


def test_pycronofy_read_events_iterates_all_pages(sdk):
    client, _, application, _, calendar = sdk
    timed = [
        add_event(calendar, start=T0 + timedelta(minutes=15 * i)) for i in range(2 * PAGE_SIZE + 30)
    ]
    all_day = add_all_day_event(calendar, first=date(2026, 11, 20))
    managed = make_managed(add_event(calendar, start=T0 - timedelta(days=1)), application, "bk-1")

    events = list(
        client.read_events(
            from_date=date(2026, 11, 1), to_date=date(2026, 12, 31), tzid="Europe/London"
        )
    )

    uids = [e["event_uid"] for e in events]
    assert len(uids) == len(set(uids)) == len(timed) + 2  # pycronofy sends include_managed=True
    assert uids[:2] == [all_day.event_uid, managed.event_uid]
    assert events[1]["event_id"] == "bk-1"
    assert events[0]["start"] == "2026-11-20"

    only_managed = list(client.read_events(only_managed=True, include_managed=False))
    assert [e["event_uid"] for e in only_managed] == [managed.event_uid]


def test_pycronofy_read_free_busy(sdk):
    client, _, _, _, calendar = sdk
    for i in range(PAGE_SIZE + 10):
        add_event(calendar, start=T0 + timedelta(minutes=30 * i))
    blocks = client.read_free_busy(
        from_date="2026-11-23 00:00:00Z", to_date="2026-12-31T00:00:00Z", tzid="Etc/UTC"
    ).all()
    assert len(blocks) == PAGE_SIZE + 10
    assert {b["free_busy_status"] for b in blocks} == {"busy"}
