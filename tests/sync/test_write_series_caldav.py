"""Recurring managed events and explicit conferencing, end to end on a real Radicale server:
Cronofy's Python SDK upserts (202), the reconciler writes one RRULE series to the server, and
the reads show its instances, with stable ids across the next sync and a rule change."""

from datetime import timedelta

import icalendar
import pytest

from calendars.models import Event, ManagedEventWrite
from sync import services
from tests.sync.helpers import vcalendar, vevent
from tests.sync.series_helpers import (
    MONDAY,
    assert_a_rerun_makes_no_call,
    assert_instance_writes_make_no_second_call,
    assert_read_back_after_instance_writes,
    read_managed,
    sdk_for,
    standup,
    starts,
    weekly,
    writable_daily_instances,
    write_one_instance_each,
)
from tests.sync.writes_helpers import connect, server_resources

JOIN_URL = "https://meet.example.com/standup-42"


@pytest.fixture
def sdk(live_server, radicale_server, transactional_db, settings):
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""  # the test runs the reconciler in-process
    user, url, calendar = connect(radicale_server)
    services.sync_calendar(calendar_id=calendar.pk)
    return sdk_for(calendar, live_server.url), radicale_server, user, url, calendar


def _master(server, user, url) -> icalendar.Event:
    [text] = server_resources(server, user, url).values()
    [master] = icalendar.Calendar.from_ical(text).walk("VEVENT")
    return master


def test_recurring_managed_event_created_changed_and_deleted_through_pycronofy(sdk):
    client, server, user, url, calendar = sdk

    client.upsert_event(calendar.public_id, standup(recurrence=weekly(count=4)))
    assert services.reconcile_event_writes().done
    master = _master(server, user, url)
    assert master["RRULE"].to_ical() == b"FREQ=WEEKLY;COUNT=4;BYDAY=MO,WE"
    assert master["SEQUENCE"] == 0
    assert_a_rerun_makes_no_call(calendar)

    instances = read_managed(client)
    assert [e["start"] for e in instances] == starts(0, 2, 7, 9)
    assert {e["event_id"] for e in instances} == {"standup"}
    assert all(e["recurring"] and e["options"]["update"] for e in instances)
    assert len({e["series_identifier"] for e in instances}) == 1
    uids = [e["event_uid"] for e in instances]
    assert len(set(uids)) == 4

    # The next sync finds exactly what we wrote: same instances, same ids, nothing changed.
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.result.changed == 0, outcome
    assert [e["event_uid"] for e in read_managed(client)] == uids

    # A repeat of the same upsert records nothing; the rule change is one more PUT.
    client.upsert_event(calendar.public_id, standup(recurrence=weekly(count=4)))
    client.upsert_event(calendar.public_id, standup(recurrence=weekly(count=2)))
    assert ManagedEventWrite.objects.count() == 2
    services.reconcile_event_writes()
    master = _master(server, user, url)
    assert master["RRULE"].to_ical() == b"FREQ=WEEKLY;COUNT=2;BYDAY=MO,WE"
    assert master["SEQUENCE"] == 1
    assert_a_rerun_makes_no_call(calendar)
    assert [e["event_uid"] for e in read_managed(client)] == uids[:2]

    client.delete_event(calendar.public_id, "standup")
    assert read_managed(client) == []  # at once, before the reconciler ran
    services.reconcile_event_writes()
    assert server_resources(server, user, url) == {}
    assert set(ManagedEventWrite.objects.values_list("status", flat=True)) == {"done"}
    assert not Event.objects.filter(calendar=calendar, is_deleted=False).exists()


def test_explicit_conferencing_round_trips_through_radicale(sdk):
    client, server, user, url, calendar = sdk
    conferencing = {
        "profile_id": "explicit",
        "provider_description": "Example Meet",
        "join_url": JOIN_URL,
    }
    client.upsert_event(
        calendar.public_id,
        standup(
            recurrence={"rules": [{"frequency": "daily", "count": 2}]}, conferencing=conferencing
        ),
    )
    services.reconcile_event_writes()
    conference = _master(server, user, url)["CONFERENCE"]
    assert str(conference) == JOIN_URL and conference.params["LABEL"] == "Example Meet"
    assert [e["meeting_url"] for e in read_managed(client)] == [JOIN_URL, JOIN_URL]

    # An upsert without conferencing leaves the link; "none" removes it.
    client.upsert_event(calendar.public_id, standup(summary="Stand-up (2)"))
    services.reconcile_event_writes()
    assert str(_master(server, user, url)["CONFERENCE"]) == JOIN_URL
    [single] = read_managed(client)
    assert not single["recurring"] and single["meeting_url"] == JOIN_URL

    client.upsert_event(calendar.public_id, standup(conferencing={"profile_id": "none"}))
    services.reconcile_event_writes()
    assert "CONFERENCE" not in _master(server, user, url)
    assert "meeting_url" not in read_managed(client)[0]


def test_external_series_one_instance_moved_deleted_and_declined(sdk):
    client, server, user, url, calendar = sdk
    me = calendar.profile.account.email
    people = f"ORGANIZER:mailto:boss@example.com\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{me}"
    server.put_event(
        url,
        "review",
        vcalendar(
            vevent(
                "review", MONDAY, summary="Review", extra=f"RRULE:FREQ=DAILY;COUNT=4\r\n{people}"
            )
        ),
    )
    services.sync_calendar(calendar_id=calendar.pk)
    uids = first, second, third, _fourth = writable_daily_instances(client)

    moved = write_one_instance_each(client, calendar, (first, second, third))
    assert len(services.reconcile_event_writes().done) == 3
    assert_instance_writes_make_no_second_call(calendar)

    [text] = server_resources(server, user, url).values()
    components = icalendar.Calendar.from_ical(text).walk("VEVENT")
    master = next(c for c in components if c.get("RECURRENCE-ID") is None)
    assert [d.dt for d in master["EXDATE"].dts] == [MONDAY + timedelta(days=2)]
    overrides = {c.decoded("RECURRENCE-ID"): c for c in components if c.get("RECURRENCE-ID")}
    assert set(overrides) == {MONDAY, MONDAY + timedelta(days=1)}
    assert overrides[MONDAY]["ATTENDEE"].params["PARTSTAT"] == "DECLINED"
    assert str(overrides[MONDAY + timedelta(days=1)]["SUMMARY"]) == "Review (later)"

    # Read back: the same ids, one instance moved, one gone, one declined; the series intact.
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.result.changed == 0, outcome
    assert_read_back_after_instance_writes(client, uids, moved)
