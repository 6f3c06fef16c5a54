"""Recurring managed events and Teams meetings at Microsoft 365, through Cronofy's Python SDK,
the reconciler (in-process) and the Graph sandbox over real HTTP: one series master with a
patternedRecurrence, its occurrences read back under the series' event_id, each write one
call."""

import pytest

from calendars.models import Calendar, Event
from sync import services
from sync.sandbox.microsoft import MicrosoftSandbox
from sync.services import engine
from tests.sync.sandbox_world import connect_microsoft, graph_invitation, use_microsoft_sandbox
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

CLIENT_ID, CLIENT_SECRET = "calsync-test", "calsync-test-secret"
ADA = "ada@example.com"
TEAMS = {"profile_id": "default"}


@pytest.fixture
def graph(live_server, transactional_db, settings, monkeypatch):
    sandbox = MicrosoftSandbox().start()
    use_microsoft_sandbox(settings, sandbox, (CLIENT_ID, CLIENT_SECRET))
    sandbox.add_user(ADA, name="Ada")
    syncs: list[int] = []
    monkeypatch.setattr(engine, "enqueue_calendar_discovery", lambda profile_id: None)
    monkeypatch.setattr(engine, "enqueue_sync", syncs.append)
    monkeypatch.setattr(engine, "enqueue_push_maintenance", lambda: None)
    profile = connect_microsoft(sandbox, ADA, CLIENT_ID)
    calendar = Calendar.objects.get(profile=profile, is_primary=True)
    services.sync_calendar(calendar_id=calendar.pk)
    syncs.clear()
    yield sandbox, calendar, sdk_for(calendar, live_server.url), syncs
    sandbox.stop()


def _writes(sandbox) -> list:
    return [r for r in sandbox.requests_log if r.method in ("POST", "PATCH", "DELETE")]


def _reconcile_then_sync(calendar, syncs) -> None:
    assert services.reconcile_event_writes().done
    for calendar_id in dict.fromkeys(syncs):  # what the reconciler queued, run here
        services.sync_calendar(calendar_id=calendar_id)
    syncs.clear()


def test_microsoft_recurring_series_with_teams_created_changed_and_deleted(graph):
    sandbox, calendar, client, syncs = graph
    client.upsert_event(calendar.public_id, standup(recurrence=weekly(count=4), conferencing=TEAMS))
    _reconcile_then_sync(calendar, syncs)
    [create] = _writes(sandbox)
    master = Event.objects.get(event_id="standup", original_start=None)
    held = sandbox.event(ADA, master.provider_resource)
    assert held["type"] == "seriesMaster" and master.provider_key == held["id"]
    assert held["recurrence"]["pattern"]["daysOfWeek"] == ["monday", "wednesday"]
    assert held["recurrence"]["range"]["numberOfOccurrences"] == 4
    assert held["recurrence"]["range"]["startDate"] == MONDAY.date().isoformat()
    teams = held["onlineMeeting"]["joinUrl"]
    assert_a_rerun_makes_no_call(calendar)

    instances = read_managed(client)
    assert [e["start"] for e in instances] == starts(0, 2, 7, 9)
    assert {(e["event_id"], e["meeting_url"]) for e in instances} == {("standup", teams)}
    assert all(e["recurring"] for e in instances)
    uids = [e["event_uid"] for e in instances]

    # Repeating the series is no call; the rule change is one PATCH.
    client.upsert_event(calendar.public_id, standup(recurrence=weekly(count=4), conferencing=TEAMS))
    client.upsert_event(calendar.public_id, standup(recurrence=weekly(count=2), conferencing=TEAMS))
    _reconcile_then_sync(calendar, syncs)
    [_create, patch] = _writes(sandbox)
    assert patch.method == "PATCH"
    held = sandbox.event(ADA, master.provider_resource)
    assert held["recurrence"]["range"]["numberOfOccurrences"] == 2
    assert held["onlineMeeting"]["joinUrl"] == teams
    assert [e["event_uid"] for e in read_managed(client)] == uids[:2]

    client.delete_event(calendar.public_id, "standup")
    assert read_managed(client) == []
    services.reconcile_event_writes()
    assert sandbox.event(ADA, master.provider_resource) is None
    assert len(_writes(sandbox)) == 3


def test_microsoft_refuses_an_explicit_join_url_it_cannot_store(graph):
    _sandbox, calendar, client, _syncs = graph
    explicit = {"profile_id": "explicit", "join_url": "https://meet.example.com/x"}
    with pytest.raises(Exception) as refused:
        client.upsert_event(calendar.public_id, standup(conferencing=explicit))
    assert "conferencing" in str(refused.value.response.json()["errors"])


def _external_review(sandbox) -> dict:
    """A daily series of four that someone else organizes, Ada invited and not answered."""
    return sandbox.put_event(
        ADA,
        None,
        {
            **graph_invitation("Review", MONDAY, ADA),
            "end": {"dateTime": MONDAY.strftime("%Y-%m-%dT10:%M:%S"), "timeZone": "UTC"},
            "recurrence": {
                "pattern": {"type": "daily", "interval": 1},
                "range": {
                    "type": "numbered",
                    "startDate": MONDAY.date().isoformat(),
                    "numberOfOccurrences": 4,
                },
            },
        },
    )


def test_microsoft_external_series_one_instance_moved_deleted_and_declined(graph):
    sandbox, calendar, client, syncs = graph
    series = _external_review(sandbox)
    services.sync_calendar(calendar_id=calendar.pk)
    uids = first, second, third, fourth = writable_daily_instances(client)
    occurrence = {
        row.event_uid: row.provider_resource
        for row in Event.objects.filter(calendar=calendar, original_start__isnull=False)
    }
    sandbox.clear_requests_log()

    moved = write_one_instance_each(client, calendar, (first, second, third))
    _reconcile_then_sync(calendar, syncs)
    # One call per write, each to that occurrence's own id; the series master is not written.
    assert [(r.method, r.path) for r in _writes(sandbox)] == [
        ("PATCH", f"/v1.0/me/events/{occurrence[second]}"),
        ("DELETE", f"/v1.0/me/events/{occurrence[third]}"),
        ("POST", f"/v1.0/me/events/{occurrence[first]}/decline"),
    ]
    assert_instance_writes_make_no_second_call(calendar)
    assert services.reconcile_event_writes().claimed == 0

    later = sandbox.event(ADA, occurrence[second])
    assert (later["type"], later["subject"]) == ("exception", "Review (later)")
    assert sandbox.event(ADA, occurrence[third]) is None
    assert sandbox.event(ADA, occurrence[first])["responseStatus"]["response"] == "declined"
    assert sandbox.event(ADA, series["id"])["recurrence"]["range"]["numberOfOccurrences"] == 4

    # Read back: the same ids, one instance moved, one gone, one declined; the rest intact.
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.result.changed == 0, outcome
    after = assert_read_back_after_instance_writes(client, uids, moved)
    assert after[fourth]["summary"] == "Review"
