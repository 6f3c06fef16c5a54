"""Google end to end through our services, against the provider sandbox over real HTTP: the
calendar list, full and incremental sync (pages, series with a moved and a cancelled
instance, 410), token refresh and revocation, rate limits, and writes through the reconciler."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Profile
from calendars.models import Calendar, Event, ManagedEventWrite
from sync import services
from sync.models import CalendarSyncState
from sync.providers import base
from sync.providers.google.adapter import event_id_for
from sync.sandbox.google import GoogleSandbox
from sync.services import engine, push
from tests.sync.sandbox_world import (
    at,
    connect_google,
    create_calendar_through_the_api,
    invitation,
    timed,
    use_google_sandbox,
)
from tests.sync.writes_helpers import desired, write

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_ID, CLIENT_SECRET = "calsync-test", "calsync-test-secret"
ADA = "ada@example.com"


@pytest.fixture
def google(settings, monkeypatch):
    sandbox = GoogleSandbox().start()
    use_google_sandbox(settings, sandbox, (CLIENT_ID, CLIENT_SECRET))
    sandbox.add_user(ADA, name="Ada")
    # Tasks are triggers only; the tests run the services themselves.
    monkeypatch.setattr(engine, "enqueue_calendar_discovery", lambda profile_id: None)
    monkeypatch.setattr(engine, "enqueue_sync", lambda calendar_id: None)
    yield sandbox
    sandbox.stop()


def connect(sandbox: GoogleSandbox) -> Profile:
    return connect_google(sandbox, ADA, CLIENT_ID)


def primary(profile: Profile) -> Calendar:
    return Calendar.objects.get(profile=profile, provider_calendar_id=ADA)


def live(calendar: Calendar):
    return Event.objects.filter(calendar=calendar, is_deleted=False)


def test_google_calendar_list_roles_hidden_and_removed(google):
    google.add_calendar(ADA, "team@group.calendar.google.com", summary="Team", access_role="writer")
    google.add_calendar(
        ADA,
        "holidays@group.v.calendar.google.com",
        summary="Holidays",
        access_role="reader",
        hidden=True,
    )
    google.add_calendar(ADA, "busy@example.com", summary="Bob", access_role="freeBusyReader")
    profile = connect(google)

    calendars = {c.provider_calendar_id: c for c in Calendar.objects.filter(profile=profile)}
    assert set(calendars) == {
        ADA,
        "team@group.calendar.google.com",
        "holidays@group.v.calendar.google.com",
        "busy@example.com",
    }
    assert calendars[ADA].is_primary and not calendars[ADA].is_readonly
    assert calendars["holidays@group.v.calendar.google.com"].is_readonly
    assert calendars["busy@example.com"].is_readonly
    assert not calendars["team@group.calendar.google.com"].is_readonly

    google.remove_calendar(ADA, "team@group.calendar.google.com")
    services.refresh_profile_calendars(profile=profile)
    assert Calendar.objects.get(provider_calendar_id="team@group.calendar.google.com").is_deleted


def test_google_full_sync_pages_and_series_each_instance_once(google):
    for n in range(2600):  # more than one page of 2,500
        google.put_event(ADA, "primary", timed(f"Event {n}", at(1 + n % 60, 8 + n % 9)))
    series = google.put_event(
        ADA,
        "primary",
        {
            **timed("Standup", at(-14, 9), minutes=15),
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=10"],
        },
    )
    moved_from, cancelled_at = at(-7, 9), at(7, 9)
    google.put_event(
        ADA,
        "primary",
        {
            **timed("Standup (moved)", at(-6, 11), minutes=15),
            "recurringEventId": series["id"],
            "originalStartTime": timed("", moved_from)["start"],
        },
    )
    google.delete_event(ADA, "primary", f"{series['id']}_{cancelled_at:%Y%m%dT%H%M%SZ}")
    profile = connect(google)
    calendar = primary(profile)

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "synced" and outcome.full, outcome
    lists = google.requests("GET", r"/calendars/.*/events$")
    assert len(lists) == 2 and "pageToken" in lists[1].query  # two pages
    instances = live(calendar).filter(provider_key=series["id"])
    assert instances.count() == 9  # ten weeks, one cancelled
    assert live(calendar).count() == 2600 + 9
    moved = instances.get(original_start=moved_from)
    assert moved.summary == "Standup (moved)" and moved.start == at(-6, 11)
    assert not instances.filter(original_start=cancelled_at).exists()
    assert services.sync_calendar(calendar_id=calendar.pk).status == "unchanged"


def test_google_incremental_sync_with_the_sync_token(google):
    keep = google.put_event(ADA, "primary", timed("Keep", at(1)))
    change = google.put_event(ADA, "primary", timed("Change", at(2)))
    gone = google.put_event(ADA, "primary", timed("Gone", at(3)))
    series = google.put_event(
        ADA, "primary", {**timed("Weekly", at(1, 9)), "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"]}
    )
    profile = connect(google)
    calendar = primary(profile)
    services.sync_calendar(calendar_id=calendar.pk)

    google.put_event(ADA, "primary", {"id": change["id"], "summary": "Changed"})
    google.delete_event(ADA, "primary", gone["id"])
    google.delete_event(ADA, "primary", f"{series['id']}_{at(8, 9):%Y%m%dT%H%M%SZ}")
    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "synced" and not outcome.full
    assert live(calendar).get(provider_key=change["id"]).summary == "Changed"
    assert not live(calendar).filter(provider_key=gone["id"]).exists()
    weekly = live(calendar).filter(provider_key=series["id"])
    assert weekly.count() == 3 and not weekly.filter(original_start=at(8, 9)).exists()
    assert live(calendar).filter(provider_key=keep["id"]).count() == 1
    synced = google.requests("GET", r"/calendars/.*/events$")[-1]
    assert "syncToken" in synced.query and synced.query["singleEvents"] == "false"


def test_google_expired_sync_token_resyncs_without_loss_or_duplicates(google):
    first = google.put_event(ADA, "primary", timed("One", at(1)))
    google.put_event(ADA, "primary", timed("Two", at(2)))
    calendar = primary(connect(google))
    services.sync_calendar(calendar_id=calendar.pk)
    google.delete_event(ADA, "primary", first["id"])
    google.expire_sync_tokens()

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "synced" and outcome.full
    assert (outcome.result.deleted, outcome.result.created) == (1, 0)
    assert list(live(calendar).values_list("summary", flat=True)) == ["Two"]


def test_google_expired_access_token_is_refreshed_silently(google):
    google.put_event(ADA, "primary", timed("One", at(1)))
    profile = connect(google)
    calendar = primary(profile)
    google.expire_access_tokens()  # revoked early, or our clock is off: we still think it is valid

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "synced", outcome
    assert len(google.requests("POST", r"^/token$")) == 1
    assert Profile.objects.get(pk=profile.pk).is_connected


def test_google_revoked_grant_disconnects_the_profile_once(google, settings):
    calendar = primary(connect(google))
    google.revoke(ADA)

    outcome = services.sync_calendar(calendar_id=calendar.pk)
    again = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "failed" and "AuthExpired" in outcome.error
    assert again.status == "skipped"
    profile = Profile.objects.get(pk=calendar.profile_id)
    assert not profile.is_connected
    assert len(google.requests("POST", r"^/token$")) == 1  # one refresh, refused


@pytest.mark.parametrize(
    "status, reason",
    [(429, "rateLimitExceeded"), (403, "userRateLimitExceeded"), (403, "rateLimitExceeded")],
)
def test_google_rate_limits_back_off_for_at_least_retry_after(google, status, reason):
    calendar = primary(connect(google))
    google.fail_next("GET", r"/events$", status, reason=reason, retry_after=900)
    before = timezone.now()

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "failed" and "RateLimited" in outcome.error
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert state.next_poll_at >= before + timedelta(seconds=900)
    assert Profile.objects.get(pk=calendar.profile_id).is_connected


def test_google_write_create_update_delete_through_the_reconciler(google):
    calendar = primary(connect(google))
    services.sync_calendar(calendar_id=calendar.pk)
    created = write(calendar, desired(at(3), summary="Booked"))

    assert services.reconcile_event_writes().done == [created.pk]
    google_id = event_id_for(created.event.ical_uid)
    stored = google.event(ADA, google_id)
    assert stored["summary"] == "Booked" and stored["start"]["timeZone"] == "Europe/Berlin"
    assert stored["reminders"] == {
        "useDefault": False,
        "overrides": [{"method": "popup", "minutes": 15}],
    }
    inserts = google.requests("POST", r"/calendars/.*/events$")
    assert len(inserts) == 1 and inserts[0].query["sendUpdates"] == "all"
    event = Event.objects.get(pk=created.event_id)
    assert (event.provider_key, event.provider_resource) == (google_id, google_id)

    # The next sync sees our event as the one we cached, not as a second one.
    services.sync_calendar(calendar_id=calendar.pk)
    assert live(calendar).count() == 1

    updated = write(calendar, desired(at(4), summary="Moved"), event=event)
    assert services.reconcile_event_writes().done == [updated.pk]
    assert google.event(ADA, google_id)["summary"] == "Moved"
    patches = google.requests("PATCH", google_id)
    assert len(patches) == 1

    event.refresh_from_db()
    deleted = write(calendar, {}, event=event, operation=ManagedEventWrite.Operation.DELETE)
    assert services.reconcile_event_writes().done == [deleted.pk]
    assert google.event(ADA, google_id)["status"] == "cancelled"


def test_google_create_that_reached_google_before_a_crash_is_not_duplicated(google):
    calendar = primary(connect(google))
    pending = write(calendar, desired(at(3), summary="Booked"))
    # A worker inserted the event and died before recording it: Google holds it, we do not.
    rendered = services.provider_for(calendar.profile).render_event(
        desired=pending.desired,
        current="",
        context=base.WriteContext(uid=pending.event.ical_uid),
    )
    services.provider_for(calendar.profile).create_event(
        ADA, rendered.payload, idempotency_key=pending.event.ical_uid
    )

    assert services.reconcile_event_writes().done == [pending.pk]

    assert [e["summary"] for e in google.events(ADA) if e["status"] != "cancelled"] == ["Booked"]
    services.sync_calendar(calendar_id=calendar.pk)
    assert live(calendar).count() == 1


def test_google_participation_answers_an_invitation(google):
    invited = google.put_event(ADA, "primary", invitation("Review", at(2), ADA))
    calendar = primary(connect(google))
    services.sync_calendar(calendar_id=calendar.pk)
    event = live(calendar).get(provider_key=invited["id"])
    assert event.participation_status == "needs_action"

    # The organizer's answer changes at Google after our last read: ours must not undo it.
    google.put_event(
        ADA,
        "primary",
        {
            "id": invited["id"],
            "attendees": [
                {**invited["attendees"][0], "responseStatus": "tentative"},
                invited["attendees"][1],
            ],
        },
    )

    answer = write(
        calendar,
        {"participation_status": "declined"},
        event=event,
        operation=ManagedEventWrite.Operation.PARTICIPATION,
    )
    assert services.reconcile_event_writes().done == [answer.pk]

    attendees = google.event(ADA, invited["id"])["attendees"]
    assert [a["responseStatus"] for a in attendees] == ["tentative", "declined"]


def test_google_write_quota_pauses_every_write_of_the_profile(google):
    calendar = primary(connect(google))
    first = write(calendar, desired(at(3), summary="One"))
    second = write(calendar, desired(at(4), summary="Two"))
    google.fail_next("POST", r"/events$", 403, reason="quotaExceeded")
    before = timezone.now()

    result = services.reconcile_event_writes(write_ids=[first.pk])

    assert result.retrying == [first.pk]
    for pending in (first, second):
        pending.refresh_from_db()
        assert pending.status == "pending"
        assert pending.next_attempt_at >= before + timedelta(hours=3)
    assert second.attempts == 0  # paused, not failed
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"  # reads go on

    # A write queued after the pause waits too, without asking Google.
    inserts = len(google.requests("POST", r"/events$"))
    third = write(calendar, desired(at(5), summary="Three"))
    assert services.reconcile_event_writes(write_ids=[third.pk]).retrying == [third.pk]
    third.refresh_from_db()
    assert third.next_attempt_at >= before + timedelta(hours=3) and third.attempts == 0
    assert len(google.requests("POST", r"/events$")) == inserts


def test_google_push_subscribes_and_a_gone_calendar_is_rediscovered(google, settings, monkeypatch):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"  # nothing listens: deliveries just fail
    calendar = primary(connect(google))
    report = push.maintain_subscriptions()
    assert report.subscribed == 1
    [channel] = google.channels()
    assert channel["address"] == "http://127.0.0.1:9/push/google/"

    google.add_calendar(ADA, "team@group.calendar.google.com", summary="Team")
    services.refresh_profile_calendars(profile=calendar.profile)
    discoveries = []
    monkeypatch.setattr(engine, "enqueue_calendar_discovery", discoveries.append)
    google.fail_next("POST", r"/watch$", 404, reason="notFound")
    assert push.maintain_subscriptions().failed == 1
    assert discoveries == [calendar.profile_id]


def test_google_a_calendar_refusing_push_is_asked_again_only_after_a_backoff(google, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"
    calendar = primary(connect(google))
    google.fail_next("POST", r"/watch$", 403, reason="pushNotSupportedForRequestedResource")
    start = timezone.now()

    assert push.maintain_subscriptions(now=start).failed == 1
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert state.push_failures == 1
    assert start + timedelta(minutes=12) <= state.push_retry_at <= start + timedelta(minutes=18)
    later = push.maintain_subscriptions(now=start + timedelta(minutes=10))
    assert (later.failed, later.subscribed) == (0, 0)  # not asked again yet
    assert len(google.requests("POST", r"/watch$")) == 1

    assert push.maintain_subscriptions(now=start + timedelta(minutes=20)).subscribed == 1
    state.refresh_from_db()
    assert (state.push_failures, state.push_retry_at) == (0, None)


def test_google_get_event_of_a_series_keeps_its_moved_and_cancelled_instances(google):
    series = google.put_event(
        ADA, "primary", {**timed("Daily", at(1, 9)), "recurrence": ["RRULE:FREQ=DAILY;COUNT=10"]}
    )
    google.delete_event(ADA, "primary", f"{series['id']}_{at(3, 9):%Y%m%dT%H%M%SZ}")
    calendar = primary(connect(google))
    provider = services.provider_for(calendar.profile)

    fresh = provider.get_event(series["id"], calendar_id=ADA)
    # Caching what get_event returns (a write's conflict path does) must not bring back the
    # cancelled instance, which no later incremental sync would mention again.
    events = provider.normalize(
        fresh, window=services.current_window(), context=base.ReadContext()
    ).events
    assert len(events) == 9 and at(3, 9) not in {e.original_start for e in events}


def test_google_confirmed_create_caches_googles_answer_and_the_next_sync_is_quiet(google):
    calendar = primary(connect(google))
    services.sync_calendar(calendar_id=calendar.pk)
    created = write(calendar, desired(at(3), summary="Booked"))
    assert services.reconcile_event_writes().done == [created.pk]
    event = Event.objects.get(pk=created.event_id)
    google_id = event_id_for(created.event.event_uid)
    assert event.ical_uid == google.event(ADA, google_id)["iCalUID"]  # Google's, at once

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.result.changed == 0, outcome  # no echo of our own write to integrators


def test_google_create_calendar_through_the_api_then_sync_it(google):
    calendar = create_calendar_through_the_api(connect(google), "Bookings")

    google.put_event(calendar.provider_calendar_id, timed("In the new one", at(1)))
    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert (calendar.name, calendar.is_readonly) == ("Bookings", False)
    assert outcome.status == "synced"
    assert list(live(calendar).values_list("summary", flat=True)) == ["In the new one"]
    assert google.requests("POST", r"^/calendar/v3/calendars$")[0].status == 200
