"""Microsoft end to end through our services, against the provider sandbox over real HTTP:
calendars, calendarView delta (pages, occurrences, @removed, 410, the moving window), token
refresh and revocation, throttling, writes with transactionId and change keys, and
subscriptions with their validation handshake and lifecycle notifications."""

import json
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import time_machine
from django.utils import timezone

from accounts.models import Profile
from calendars.models import Calendar, Event, ManagedEventWrite
from sync import services
from sync.connect import connect_oauth_profile
from sync.models import CalendarSyncState, ProviderSubscription
from sync.providers import base
from sync.sandbox.microsoft import MicrosoftSandbox
from sync.services import engine, push
from tests.sync.sandbox_world import (
    create_calendar_through_the_api,
    graph_invitation,
    graph_meeting,
    use_microsoft_sandbox,
)
from tests.sync.writes_helpers import desired, write

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_ID, CLIENT_SECRET = "calsync-test", "calsync-test-secret"
ADA = "ada@contoso.com"
SCOPES = ["offline_access", "Calendars.ReadWrite", "User.Read"]


@pytest.fixture
def graph(settings, monkeypatch):
    sandbox = MicrosoftSandbox().start()
    use_microsoft_sandbox(settings, sandbox, (CLIENT_ID, CLIENT_SECRET))
    sandbox.add_user(ADA, name="Ada")
    monkeypatch.setattr(engine, "enqueue_calendar_discovery", lambda profile_id: None)
    monkeypatch.setattr(engine, "enqueue_sync", lambda calendar_id: None)
    monkeypatch.setattr(engine, "enqueue_push_maintenance", lambda: None)
    yield sandbox
    sandbox.stop()


def connect(sandbox: MicrosoftSandbox) -> Profile:
    access, refresh = sandbox.issue_tokens(ADA, CLIENT_ID, SCOPES)
    profile = connect_oauth_profile(
        account=None,
        provider_key=Profile.Provider.MICROSOFT,
        credentials={
            "access_token": access,
            "refresh_token": refresh,
            "expires_at": time.time() + 3599,
        },
        provider_account=base.ProviderAccount(f"id-{ADA}", ADA, "office365"),
    )
    services.discover_calendars(profile_id=profile.pk)
    return profile


def default_calendar(profile: Profile) -> Calendar:
    return Calendar.objects.get(profile=profile, is_primary=True)


def at(days: float, hour: int = 10) -> datetime:
    day = (timezone.now() + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def live(calendar: Calendar):
    return Event.objects.filter(calendar=calendar, is_deleted=False)


def put(sandbox, body: dict) -> dict:
    return sandbox.put_event(ADA, None, body)


def test_microsoft_calendar_list_default_and_read_only(graph):
    graph.add_calendar(ADA, name="Team", can_edit=False, owner_email="boss@contoso.com")
    profile = connect(graph)
    calendars = {c.name: c for c in Calendar.objects.filter(profile=profile)}
    assert calendars["Team"].is_readonly
    primary = default_calendar(profile)
    assert primary.is_primary and not primary.is_readonly


def test_microsoft_delta_sync_pages_occurrences_and_removals(graph):
    for n in range(1200):  # more than one page of 500
        put(graph, graph_meeting(f"Event {n}", at(1 + n % 60, 8 + n % 9)))
    berlin = put(
        graph,
        {
            **graph_meeting("Berlin", at(2, 8)),
            "start": {
                "dateTime": at(2, 9).strftime("%Y-%m-%dT%H:%M:%S"),
                "timeZone": "W. Europe Standard Time",
            },
            "end": {
                "dateTime": at(2, 10).strftime("%Y-%m-%dT%H:%M:%S"),
                "timeZone": "W. Europe Standard Time",
            },
        },
    )
    series = put(
        graph,
        {
            **graph_meeting("Standup", at(-14, 9), 15),
            "recurrence": {
                "pattern": {"type": "daily", "interval": 7},
                "range": {
                    "type": "numbered",
                    "startDate": at(-14).strftime("%Y-%m-%d"),
                    "numberOfOccurrences": 10,
                },
            },
        },
    )
    occurrences = [
        e
        for e in graph.calendar_view(ADA, at(-30), at(60))
        if e.get("seriesMasterId") == series["id"]
    ]
    assert len(occurrences) == 10
    moved, cancelled = occurrences[2], occurrences[4]
    graph.put_event(ADA, None, {"id": moved["id"], "subject": "Standup (moved)"})
    graph.delete_event(ADA, None, cancelled["id"])
    calendar = default_calendar(connect(graph))

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "synced" and outcome.full, outcome
    assert len(graph.requests("GET", r"calendarView/delta")) >= 3  # pages
    standups = live(calendar).filter(provider_key=series["id"])
    assert standups.count() == 9  # ten weekly, one cancelled
    assert standups.filter(summary="Standup (moved)").count() == 1
    assert live(calendar).count() == 1200 + 1 + 9
    assert live(calendar).get(provider_resource=berlin["id"]).tzid == "Europe/Berlin"

    change = next(e for e in graph.events(ADA) if e.get("subject") == "Event 7")
    graph.put_event(ADA, None, {"id": change["id"], "subject": "Changed"})
    gone = next(e for e in graph.events(ADA) if e.get("subject") == "Event 8")
    graph.delete_event(ADA, None, gone["id"])
    later = services.sync_calendar(calendar_id=calendar.pk)

    assert later.status == "synced" and not later.full
    assert (later.result.updated, later.result.deleted) == (1, 1)
    assert live(calendar).filter(summary="Changed").count() == 1
    assert services.sync_calendar(calendar_id=calendar.pk).status == "unchanged"


def test_microsoft_partial_delta_items_are_read_in_full(graph):
    one = put(graph, graph_meeting("One", at(1)))
    two = put(graph, graph_meeting("Two", at(2)))
    calendar = default_calendar(connect(graph))
    services.sync_calendar(calendar_id=calendar.pk)
    graph.delta_partial_updates = True  # changed items come as an id and an etag
    graph.put_event(ADA, None, {"id": one["id"], "subject": "One (renamed)"})
    graph.put_event(ADA, None, {"id": two["id"], "subject": "Two (renamed)"})
    gone = re.escape(quote(two["id"], safe=""))  # deleted between the delta and our read
    graph.fail_next("GET", rf"/events/{gone}$", 404, code="ErrorItemNotFound")

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "synced", outcome
    assert list(live(calendar).values_list("summary", flat=True)) == ["One (renamed)"]
    assert len(graph.requests("GET", r"/events/[^/]+$")) == 2  # one read each


def test_microsoft_expired_delta_token_resyncs_without_loss(graph):
    put(graph, graph_meeting("One", at(1)))
    two = put(graph, graph_meeting("Two", at(2)))
    calendar = default_calendar(connect(graph))
    services.sync_calendar(calendar_id=calendar.pk)
    graph.delete_event(ADA, None, two["id"])
    graph.expire_delta_tokens()

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "synced" and outcome.full
    assert (outcome.result.deleted, outcome.result.created) == (1, 0)
    assert list(live(calendar).values_list("summary", flat=True)) == ["One"]


def test_microsoft_a_new_day_starts_a_new_delta_round(graph):
    put(graph, graph_meeting("One", at(1)))
    calendar = default_calendar(connect(graph))
    services.sync_calendar(calendar_id=calendar.pk)
    with time_machine.travel(timezone.now() + timedelta(days=1), tick=True):
        outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.status == "synced" and outcome.full  # the window is frozen in the link
    assert outcome.result.changed == 0
    cursor = json.loads(CalendarSyncState.objects.get(calendar=calendar).cursor)
    assert cursor["window_start"] == services.current_window(
        timezone.now() + timedelta(days=1)
    ).start.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_microsoft_expired_token_refreshed_and_revoked_grant_disconnects(graph):
    put(graph, graph_meeting("One", at(1)))
    profile = connect(graph)
    calendar = default_calendar(profile)
    graph.expire_access_tokens()
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    assert Profile.objects.get(pk=profile.pk).is_connected

    graph.revoke(ADA)
    graph.expire_access_tokens()
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.status == "failed" and "AuthExpired" in outcome.error
    assert not Profile.objects.get(pk=profile.pk).is_connected


def test_microsoft_throttling_honours_retry_after(graph):
    calendar = default_calendar(connect(graph))
    graph.fail_next("GET", r"calendarView/delta", 429, code="TooManyRequests", retry_after=600)
    before = timezone.now()
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.status == "failed" and "RateLimited" in outcome.error
    assert CalendarSyncState.objects.get(calendar=calendar).next_poll_at >= before + timedelta(
        seconds=600
    )


def test_microsoft_writes_create_once_update_answer_delete(graph):
    calendar = default_calendar(connect(graph))
    services.sync_calendar(calendar_id=calendar.pk)
    created = write(calendar, desired(at(3), summary="Booked"))
    # A POST that reached Graph before a crash: the retry carries the same transactionId.
    provider = services.provider_for(calendar.profile)
    rendered = provider.render_event(
        desired=created.desired, current="", context=base.WriteContext(uid=created.event.ical_uid)
    )
    provider.create_event(
        calendar.provider_calendar_id, rendered.payload, idempotency_key=created.event.event_uid
    )

    assert services.reconcile_event_writes().done == [created.pk]
    booked = [e for e in graph.events(ADA) if e.get("subject") == "Booked"]
    assert len(booked) == 1 and booked[0]["transactionId"] == created.event.event_uid
    assert booked[0]["originalStartTimeZone"] == "W. Europe Standard Time"  # the asked zone
    services.sync_calendar(calendar_id=calendar.pk)
    assert live(calendar).count() == 1  # the synced event is the one we cached
    assert live(calendar).get().tzid == "Europe/Berlin"

    event = Event.objects.get(pk=created.event_id)
    updated = write(calendar, desired(at(4), summary="Moved"), event=event)
    assert services.reconcile_event_writes().done == [updated.pk]
    assert graph.event(ADA, booked[0]["id"])["subject"] == "Moved"
    assert len(graph.requests("PATCH", booked[0]["id"].rstrip("="))) == 1

    event.refresh_from_db()
    deleted = write(calendar, {}, event=event, operation=ManagedEventWrite.Operation.DELETE)
    assert services.reconcile_event_writes().done == [deleted.pk]
    assert graph.event(ADA, booked[0]["id"]) is None


def test_microsoft_delete_of_a_create_that_crashed_unrecorded_removes_it(graph):
    calendar = default_calendar(connect(graph))
    created = write(calendar, desired(at(3), summary="Booked"))
    provider = services.provider_for(calendar.profile)
    rendered = provider.render_event(
        desired=created.desired, current="", context=base.WriteContext(uid=created.event.ical_uid)
    )
    provider.create_event(  # reached Graph; its answer never recorded
        calendar.provider_calendar_id, rendered.payload, idempotency_key=created.event.event_uid
    )
    graph.put_event(ADA, None, graph_meeting("Someone else's", at(3)))
    deleted = write(calendar, {}, event=created.event, operation=ManagedEventWrite.Operation.DELETE)

    assert deleted.pk in services.reconcile_event_writes().done
    created.refresh_from_db()
    assert created.status == "superseded"  # the create never runs after its delete
    assert [e["subject"] for e in graph.events(ADA)] == ["Someone else's"]


def test_microsoft_participation_posts_the_answer(graph):
    invite = put(
        graph,
        graph_invitation("Review", at(2), ADA),
    )
    calendar = default_calendar(connect(graph))
    services.sync_calendar(calendar_id=calendar.pk)
    event = live(calendar).get(provider_resource=invite["id"])
    assert event.participation_status == "needs_action"

    answer = write(
        calendar,
        {"participation_status": "accepted"},
        event=event,
        operation=ManagedEventWrite.Operation.PARTICIPATION,
    )
    assert services.reconcile_event_writes().done == [answer.pk]
    assert len(graph.requests("POST", invite["id"].rstrip("=") + ".*/accept$")) == 1
    assert graph.event(ADA, invite["id"])["responseStatus"]["response"] == "accepted"


def test_microsoft_subscription_handshake_notification_and_lifecycle(
    graph, live_server, settings, monkeypatch
):
    settings.PUBLIC_BASE_URL = live_server.url
    calendar = default_calendar(connect(graph))
    queued = []
    monkeypatch.setattr(engine, "enqueue_sync", queued.append)

    report = push.maintain_subscriptions()  # Graph validates our receiver before answering

    assert report.subscribed == 1, report
    [subscription] = graph.subscriptions()
    assert subscription["notificationUrl"] == f"{live_server.url}/push/microsoft/"
    row = ProviderSubscription.objects.get(calendar=calendar)
    assert row.channel_id == subscription["id"]  # Graph assigns the id

    put(graph, graph_meeting("Pushed", at(2)))
    graph.wait_for_deliveries(1, timeout=5)
    assert queued == [calendar.pk]

    # reauthorizationRequired: renewed in place by a PATCH (which reauthorizes it).
    graph.send_lifecycle(subscription["id"], "reauthorizationRequired")
    graph.wait_for_deliveries(2, timeout=5)
    assert queued == [calendar.pk]  # the standing push request covers it: no second sync
    before = ProviderSubscription.objects.get(pk=row.pk).expires_at
    assert before < row.expires_at and before > timezone.now()  # due, still alive
    assert push.maintain_subscriptions().renewed == 1
    assert [r.path for r in graph.requests("PATCH", "/subscriptions/")] == [
        f"/v1.0/subscriptions/{row.channel_id}"
    ]
    renewed = ProviderSubscription.objects.get(pk=row.pk)
    assert renewed.channel_id == row.channel_id and renewed.expires_at > before

    # subscriptionRemoved: replaced by a new subscription.
    graph.send_lifecycle(subscription["id"], "subscriptionRemoved")
    deadline = time.monotonic() + 5
    while ProviderSubscription.objects.get(pk=row.pk).is_healthy(timezone.now()):
        assert time.monotonic() < deadline, "the lifecycle notification was not handled"
        time.sleep(0.1)
    assert push.maintain_subscriptions().renewed == 1  # replaced
    assert ProviderSubscription.objects.get(calendar=calendar).channel_id != row.channel_id


def test_microsoft_subscription_is_renewed_in_place_before_expiry(graph, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    calendar = default_calendar(connect(graph))
    push.maintain_subscriptions()
    row = ProviderSubscription.objects.get(calendar=calendar)
    soon = timezone.now() + timedelta(hours=1)
    ProviderSubscription.objects.filter(pk=row.pk).update(expires_at=soon)

    assert push.maintain_subscriptions().renewed == 1

    renewed = ProviderSubscription.objects.get(calendar=calendar)
    assert renewed.channel_id == row.channel_id  # Graph extends it: PATCH, same id
    assert renewed.expires_at > timezone.now() + timedelta(days=2)
    assert len(graph.requests("PATCH", r"/subscriptions/")) == 1


def weekly(graph, subject: str, first: datetime, count: int) -> list[dict]:
    """A weekly series at Graph; its occurrences as calendarView lists them."""
    series = put(
        graph,
        {
            **graph_meeting(subject, first, 15),
            "recurrence": {
                "pattern": {"type": "daily", "interval": 7},
                "range": {
                    "type": "numbered",
                    "startDate": first.strftime("%Y-%m-%d"),
                    "numberOfOccurrences": count,
                },
            },
        },
    )
    return [
        e
        for e in graph.calendar_view(ADA, first - timedelta(days=1), first + timedelta(weeks=count))
        if e.get("seriesMasterId") == series["id"]
    ]


def test_microsoft_editing_one_occurrence_keeps_the_others(graph):
    occurrences = weekly(graph, "Standup", at(1, 9), 5)
    calendar = default_calendar(connect(graph))
    services.sync_calendar(calendar_id=calendar.pk)
    graph.put_event(ADA, None, {"id": occurrences[1]["id"], "subject": "Standup (moved)"})

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert (outcome.result.updated, outcome.result.deleted) == (1, 0), outcome
    assert live(calendar).count() == 5


def test_microsoft_cancelling_one_occurrence_removes_only_it(graph):
    occurrences = weekly(graph, "Standup", at(1, 9), 5)
    calendar = default_calendar(connect(graph))
    services.sync_calendar(calendar_id=calendar.pk)
    graph.delete_event(ADA, None, occurrences[2]["id"])

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.result.deleted == 1, outcome
    assert not live(calendar).filter(provider_resource=occurrences[2]["id"]).exists()
    assert live(calendar).count() == 4


def test_microsoft_new_day_keeps_what_aged_out_of_the_window(graph, settings):
    settings.SYNC_WINDOW_PAST_DAYS = 2
    put(graph, graph_meeting("Yesterday", at(-1)))
    put(graph, graph_meeting("Later", at(3)))
    calendar = default_calendar(connect(graph))
    services.sync_calendar(calendar_id=calendar.pk)
    assert live(calendar).count() == 2

    with time_machine.travel(timezone.now() + timedelta(days=3), tick=True):
        outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.full and outcome.result.deleted == 0, outcome  # history, not deleted
    assert live(calendar).count() == 2


def test_microsoft_same_upsert_again_sends_nothing_and_a_change_sends_only_it(graph):
    calendar = default_calendar(connect(graph))
    created = write(calendar, desired(at(3), summary="Booked"))
    assert services.reconcile_event_writes().done == [created.pk]
    event = Event.objects.get(pk=created.event_id)

    again = write(calendar, desired(at(3), summary="Booked"), event=event)
    assert services.reconcile_event_writes().done == [again.pk]
    assert graph.requests("PATCH", r"/events/") == []  # Graph already holds it

    event.refresh_from_db()
    renamed = write(calendar, desired(at(3), summary="Renamed"), event=event)
    assert services.reconcile_event_writes().done == [renamed.pk]
    [patch] = graph.requests("PATCH", r"/events/")
    assert graph.event(ADA, event.provider_resource)["subject"] == "Renamed"
    assert patch.status == 200


def test_microsoft_upsert_folded_into_an_answer_sends_both(graph):
    invite = put(
        graph,
        graph_invitation("Review", at(2), ADA),
    )
    calendar = default_calendar(connect(graph))
    services.sync_calendar(calendar_id=calendar.pk)
    event = live(calendar).get(provider_resource=invite["id"])
    write(
        calendar,
        {"participation_status": "accepted"},
        event=event,
        operation=ManagedEventWrite.Operation.PARTICIPATION,
    )
    write(calendar, desired(at(2), summary="Review", reminders=[45]), event=event)

    services.reconcile_event_writes()  # the newest absorbs the answer: one write of both

    statuses = sorted(ManagedEventWrite.objects.values_list("status", flat=True))
    assert statuses == ["done", "superseded"], statuses
    held = graph.event(ADA, invite["id"])
    assert held["responseStatus"]["response"] == "accepted"
    assert held["reminderMinutesBeforeStart"] == 45


def test_microsoft_create_calendar_through_the_api_then_sync_it(graph):
    calendar = create_calendar_through_the_api(connect(graph), "Bookings")

    graph.put_event(ADA, calendar.provider_calendar_id, graph_meeting("In the new one", at(1)))
    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert (calendar.name, calendar.is_readonly) == ("Bookings", False)
    assert outcome.status == "synced"
    assert list(live(calendar).values_list("summary", flat=True)) == ["In the new one"]
    assert graph.requests("POST", r"/me/calendars$")[0].status == 201
