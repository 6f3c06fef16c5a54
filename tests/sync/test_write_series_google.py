"""Recurring managed events and conferencing at Google, through Cronofy's Python SDK, the
reconciler (in-process) and the Google sandbox over real HTTP: one series with its RFC 5545
rule, a Meet created through conferenceData.createRequest, each write one call."""

import pytest

from sync import services
from sync.providers.google.adapter import event_id_for
from sync.sandbox.google import GoogleSandbox
from sync.services import engine
from tests.sync.sandbox_world import connect_google, use_google_sandbox
from tests.sync.series_helpers import (
    assert_a_rerun_makes_no_call,
    assert_instance_writes_make_no_second_call,
    assert_read_back_after_instance_writes,
    read_external,
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
MEET = {"profile_id": "default"}


@pytest.fixture
def google(live_server, transactional_db, settings, monkeypatch):
    sandbox = GoogleSandbox().start()
    use_google_sandbox(settings, sandbox, (CLIENT_ID, CLIENT_SECRET))
    sandbox.add_user(ADA, name="Ada")
    monkeypatch.setattr(engine, "enqueue_calendar_discovery", lambda profile_id: None)
    monkeypatch.setattr(engine, "enqueue_sync", lambda calendar_id: None)
    profile = connect_google(sandbox, ADA, CLIENT_ID)
    calendar = profile.calendars.get(provider_calendar_id=ADA)
    services.sync_calendar(calendar_id=calendar.pk)
    yield sandbox, calendar, sdk_for(calendar, live_server.url)
    sandbox.stop()


def _writes(sandbox) -> list:
    return [r for r in sandbox.requests_log if r.method in ("POST", "PATCH", "PUT", "DELETE")]


def test_google_recurring_series_with_a_meet_created_changed_and_deleted(google):
    sandbox, calendar, client = google
    client.upsert_event(calendar.public_id, standup(recurrence=weekly(count=4), conferencing=MEET))
    assert services.reconcile_event_writes().done

    master = next(iter(calendar.events.filter(event_id="standup", original_start=None)))
    google_id = event_id_for(master.event_uid)
    held = sandbox.event(ADA, google_id)
    assert held["recurrence"] == ["RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4"]
    meet = held["hangoutLink"]
    assert meet.startswith("https://meet.google.com/")
    [insert] = _writes(sandbox)
    assert insert.query["conferenceDataVersion"] == "1"
    assert_a_rerun_makes_no_call(calendar)

    instances = read_managed(client)
    assert [e["start"] for e in instances] == starts(0, 2, 7, 9)
    assert {(e["event_id"], e["meeting_url"]) for e in instances} == {("standup", meet)}
    uids = [e["event_uid"] for e in instances]

    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.result.changed == 0, outcome
    assert [e["event_uid"] for e in read_managed(client)] == uids

    # The rule changes in one PATCH; the Meet stays as Google made it (not asked again).
    client.upsert_event(calendar.public_id, standup(recurrence=weekly(count=2), conferencing=MEET))
    services.reconcile_event_writes()
    [_insert, patch] = _writes(sandbox)
    assert patch.method == "PATCH"
    held = sandbox.event(ADA, google_id)
    assert held["recurrence"] == ["RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=2"]
    assert held["hangoutLink"] == meet
    assert [e["event_uid"] for e in read_managed(client)] == uids[:2]

    client.delete_event(calendar.public_id, "standup")
    services.reconcile_event_writes()
    assert sandbox.event(ADA, google_id)["status"] == "cancelled"
    assert read_managed(client) == []
    assert len(_writes(sandbox)) == 3


def test_google_explicit_conferencing_and_its_removal(google):
    sandbox, calendar, client = google
    url = "https://meet.example.com/abc"
    explicit = {"profile_id": "explicit", "provider_description": "Example", "join_url": url}
    client.upsert_event(calendar.public_id, standup(conferencing=explicit))
    services.reconcile_event_writes()
    [single] = read_managed(client)
    assert single["meeting_url"] == url and not single["recurring"]

    client.upsert_event(calendar.public_id, standup(conferencing={"profile_id": "none"}))
    services.reconcile_event_writes()
    assert "meeting_url" not in read_managed(client)[0]
    google_id = event_id_for(single["event_uid"])
    assert "conferenceData" not in sandbox.event(ADA, google_id)


def test_google_meet_pending_at_first_is_read_once_google_made_it(google):
    sandbox, calendar, client = google
    sandbox.conferences_pending = True
    client.upsert_event(calendar.public_id, standup(conferencing=MEET))
    services.reconcile_event_writes()
    [single] = read_managed(client)
    assert "meeting_url" not in single  # pending: no link yet, and none made up
    google_id = event_id_for(single["event_uid"])
    status = sandbox.event(ADA, google_id)["conferenceData"]["createRequest"]["status"]
    assert status == {"statusCode": "pending"}

    # A pending request is kept as it is: a later write changes only what it changes.
    client.upsert_event(calendar.public_id, standup(conferencing=MEET, summary="Stand-up!"))
    services.reconcile_event_writes()
    [_insert, patch] = _writes(sandbox)
    assert patch.method == "PATCH"
    assert sandbox.event(ADA, google_id)["conferenceData"]["createRequest"]["status"] == status

    assert sandbox.complete_conferences(ADA) == [google_id]
    services.sync_calendar(calendar_id=calendar.pk)
    meet = sandbox.event(ADA, google_id)["hangoutLink"]
    assert read_managed(client)[0]["meeting_url"] == meet

    # Asking for the default conference again keeps the link Google made, in the cache too.
    client.upsert_event(calendar.public_id, standup(conferencing=MEET, summary="Stand-up"))
    assert read_managed(client)[0]["meeting_url"] == meet


def _external_review(sandbox) -> dict:
    """A daily series of four that someone else organizes, Ada invited and not answered."""
    return sandbox.put_event(
        ADA,
        "primary",
        {
            "summary": "Review",
            "start": {"dateTime": starts(0)[0], "timeZone": "UTC"},
            "end": {"dateTime": starts(0)[0].replace("T09", "T10"), "timeZone": "UTC"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=4"],
            "organizer": {"email": "boss@example.com"},
            "attendees": [
                {"email": "boss@example.com", "organizer": True, "responseStatus": "accepted"},
                {"email": ADA, "responseStatus": "needsAction"},
            ],
        },
    )


def test_google_external_series_one_instance_moved_deleted_and_declined(google):
    sandbox, calendar, client = google
    series = _external_review(sandbox)
    services.sync_calendar(calendar_id=calendar.pk)
    uids = first, second, third, fourth = writable_daily_instances(client)
    sandbox.clear_requests_log()

    moved = write_one_instance_each(client, calendar, (first, second, third))
    assert len(services.reconcile_event_writes().done) == 3
    # One PATCH per write, each to that instance's own id; the series itself is not written.
    ids = [f"{series['id']}_{stamp.replace('-', '').replace(':', '')}" for stamp in starts(1, 2, 0)]
    assert [(r.method, r.path.rsplit("/", 1)[1]) for r in _writes(sandbox)] == [
        ("PATCH", instance_id) for instance_id in ids
    ]
    assert_instance_writes_make_no_second_call(calendar)
    assert services.reconcile_event_writes().claimed == 0

    later, gone, declined = (sandbox.event(ADA, instance_id) for instance_id in ids)
    assert later["recurringEventId"] == series["id"] and later["summary"] == "Review (later)"
    assert gone["status"] == "cancelled"
    assert {a["email"]: a["responseStatus"] for a in declined["attendees"]}[ADA] == "declined"
    assert sandbox.event(ADA, series["id"])["recurrence"] == series["recurrence"]

    # Read back: the same ids, one instance moved, one gone, one declined; the rest intact.
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.result.changed == 0, outcome
    after = assert_read_back_after_instance_writes(client, uids, moved)
    assert after[second]["summary"] == "Review (later)"
    assert after[fourth]["summary"] == "Review"


def test_google_instance_edited_at_google_meanwhile_is_answered_over_that_edit(google):
    sandbox, calendar, client = google
    series = _external_review(sandbox)
    second_id = f"{series['id']}_{starts(1)[0].replace('-', '').replace(':', '')}"
    sandbox.put_event(ADA, "primary", {"id": second_id, "summary": "Review (moved)"})
    services.sync_calendar(calendar_id=calendar.pk)  # the exception is cached, with its etag
    sandbox.put_event(ADA, "primary", {"id": second_id, "summary": "Review (moved again)"})
    second = next(e for e in read_external(client) if e["start"] == starts(1)[0])
    sandbox.clear_requests_log()

    client.change_participation_status(calendar.public_id, second["event_uid"], "declined")
    assert services.reconcile_event_writes().done
    # The first PATCH names the cached etag and fails; the series is read again and the answer
    # sent once more over Google's newer version, which it keeps.
    patches = [(r.path.rsplit("/", 1)[1], r.status) for r in _writes(sandbox)]
    assert patches == [(second_id, 412), (second_id, 200)]
    held = sandbox.event(ADA, second_id)
    assert held["summary"] == "Review (moved again)"
    assert {a["email"]: a["responseStatus"] for a in held["attendees"]}[ADA] == "declined"
    after = next(e for e in read_external(client) if e["event_uid"] == second["event_uid"])
    assert (after["summary"], after["participation_status"]) == ("Review (moved again)", "declined")
