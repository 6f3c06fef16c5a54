"""Recurring managed events and explicit conferencing, end to end on a real Radicale server:
Cronofy's Python SDK upserts (202), the reconciler writes one RRULE series to the server, and
the reads show its instances, with stable ids across the next sync and a rule change."""

from datetime import UTC, datetime, timedelta

import icalendar
import pycronofy
import pytest

from calendars.models import Event, ManagedEventWrite
from sync import services
from tests.factories import make_access_token, make_application
from tests.sync.writes_helpers import connect, server_resources

# A Monday two weeks ahead, inside the sync window.
_today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
START = _today + timedelta(days=14 - _today.weekday())
JOIN_URL = "https://meet.example.com/standup-42"


@pytest.fixture
def sdk(live_server, radicale_server, transactional_db, settings):
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""  # the test runs the reconciler in-process
    user, url, calendar = connect(radicale_server)
    services.sync_calendar(calendar_id=calendar.pk)
    application = make_application()
    client = pycronofy.Client(
        client_id=application.client_id,
        client_secret="integrator-secret",
        access_token=make_access_token(
            account=calendar.profile.account, application=application, scope="read_write"
        ),
    )
    client.request_handler.base_url = live_server.url
    return client, radicale_server, user, url, calendar


def _standup(**fields) -> dict:
    return {
        "event_id": "standup",
        "summary": "Stand-up",
        "start": START,
        "end": START + timedelta(minutes=15),
        "tzid": "Europe/Berlin",
        **fields,
    }


def _weekly(**rule) -> dict:
    return {"rules": [{"frequency": "weekly", "by_day": ["monday", "wednesday"], **rule}]}


def _read(client) -> list[dict]:
    events = client.read_events(
        from_date=START.date() - timedelta(days=1),
        to_date=START.date() + timedelta(days=60),
        tzid="Etc/UTC",
        only_managed=True,
    )
    return sorted(events, key=lambda e: e["start"])


def _master(server, user, url) -> icalendar.Event:
    [text] = server_resources(server, user, url).values()
    [master] = icalendar.Calendar.from_ical(text).walk("VEVENT")
    return master


def test_recurring_managed_event_created_changed_and_deleted_through_pycronofy(sdk):
    client, server, user, url, calendar = sdk

    client.upsert_event(calendar.public_id, _standup(recurrence=_weekly(count=4)))
    assert services.reconcile_event_writes().done
    master = _master(server, user, url)
    assert master["RRULE"].to_ical() == b"FREQ=WEEKLY;COUNT=4;BYDAY=MO,WE"
    assert master["SEQUENCE"] == 0

    instances = _read(client)
    assert [e["start"] for e in instances] == [
        (START + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in (0, 2, 7, 9)
    ]
    assert {e["event_id"] for e in instances} == {"standup"}
    assert all(e["recurring"] and e["options"]["update"] for e in instances)
    assert len({e["series_identifier"] for e in instances}) == 1
    uids = [e["event_uid"] for e in instances]
    assert len(set(uids)) == 4

    # The next sync finds exactly what we wrote: same instances, same ids, nothing changed.
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.result.changed == 0, outcome
    assert [e["event_uid"] for e in _read(client)] == uids

    # A repeat of the same upsert records nothing; the rule change is one more PUT.
    client.upsert_event(calendar.public_id, _standup(recurrence=_weekly(count=4)))
    client.upsert_event(calendar.public_id, _standup(recurrence=_weekly(count=2)))
    assert ManagedEventWrite.objects.count() == 2
    services.reconcile_event_writes()
    master = _master(server, user, url)
    assert master["RRULE"].to_ical() == b"FREQ=WEEKLY;COUNT=2;BYDAY=MO,WE"
    assert master["SEQUENCE"] == 1
    assert [e["event_uid"] for e in _read(client)] == uids[:2]

    client.delete_event(calendar.public_id, "standup")
    assert _read(client) == []  # at once, before the reconciler ran
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
        _standup(
            recurrence={"rules": [{"frequency": "daily", "count": 2}]}, conferencing=conferencing
        ),
    )
    services.reconcile_event_writes()
    conference = _master(server, user, url)["CONFERENCE"]
    assert str(conference) == JOIN_URL and conference.params["LABEL"] == "Example Meet"
    assert [e["meeting_url"] for e in _read(client)] == [JOIN_URL, JOIN_URL]

    # An upsert without conferencing leaves the link; "none" removes it.
    client.upsert_event(calendar.public_id, _standup(summary="Stand-up (2)"))
    services.reconcile_event_writes()
    assert str(_master(server, user, url)["CONFERENCE"]) == JOIN_URL
    [single] = _read(client)
    assert not single["recurring"] and single["meeting_url"] == JOIN_URL

    client.upsert_event(calendar.public_id, _standup(conferencing={"profile_id": "none"}))
    services.reconcile_event_writes()
    assert "CONFERENCE" not in _master(server, user, url)
    assert "meeting_url" not in _read(client)[0]
