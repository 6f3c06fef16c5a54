"""GET /v1/changes: the change log as a feed (docs/api.md, The change feed)."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from django.utils import timezone

from accounts.services import disconnect_profile
from calendars.models import ChangeLogEntry
from calendars.services import apply_provider_events, purge_change_log, upsert_managed_event
from calendars.types import EventIdentity, ManagedEventContent
from calendars.wakeups import wakeups
from sync.providers import base
from sync.services.engine import store_connected_profile
from tests.calendars.helpers import add_event, api_get, make_world
from tests.factories import make_access_token, make_application, make_calendar, make_event_data

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(db, settings):
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    return make_world(email=None)


def changes(client, world, **params):
    return api_get(client, "/v1/changes", world.token, params)


def head_cursor(client, world) -> str:
    response = changes(client, world, cursor="now")
    assert response.status_code == 200, response.content
    assert response.json()["changes"] == []
    return response.json()["next_cursor"]


def test_changes_entries_in_order_with_current_state_and_origin(client, world):
    cursor = head_cursor(client, world)
    event = add_event(world.calendar, start=T0, summary="Planning")
    apply_provider_events(
        calendar=world.calendar, upserts=[make_event_data(key=event.provider_key, start=T0)]
    )
    upsert_managed_event(
        application=world.application,
        calendar=world.calendar,
        event_id="booking-1",
        content=ManagedEventContent(summary="Booked", start=T0, end=T0 + timedelta(hours=1)),
    )

    body = changes(client, world, cursor=cursor).json()

    kinds = [(c["kind"], c.get("event", {}).get("summary")) for c in body["changes"]]
    # Each entry shows the event as it is now, not as it was then.
    assert kinds == [
        ("event_created", "Meeting"),
        ("event_updated", "Meeting"),
        ("event_created", "Booked"),
    ]
    sequences = [c["sequence"] for c in body["changes"]]
    assert sequences == sorted(sequences) and len(set(sequences)) == 3
    first, _, managed = body["changes"]
    assert first["origin"] == {"type": "provider", "provider_name": "caldav"}
    assert first["calendar_id"] == world.calendar.public_id
    assert first["profile_id"] == world.profile.public_id
    assert first["event_uid"] == event.event_uid
    assert managed["origin"] == {"type": "application", "is_caller": True}
    assert managed["event"]["event_id"] == "booking-1"
    assert body["has_more"] is False
    assert body["sync_status"][world.calendar.public_id]["state"] == "lagging"
    # Reading on from next_cursor: nothing new.
    assert changes(client, world, cursor=body["next_cursor"]).json()["changes"] == []


def test_changes_deleted_event_is_a_tombstone(client, world):
    cursor = head_cursor(client, world)
    event = add_event(world.calendar, start=T0)
    apply_provider_events(
        calendar=world.calendar,
        deletions=[EventIdentity(event.provider_key, event.original_start)],
    )

    body = changes(client, world, cursor=cursor).json()

    assert [c["kind"] for c in body["changes"]] == ["event_created", "event_deleted"]
    tombstone = {
        "calendar_id": world.calendar.public_id,
        "event_uid": event.event_uid,
        "deleted": True,
    }
    assert [c["event"] for c in body["changes"]] == [tombstone, tombstone]


def test_changes_limit_pages_and_filters(client, world):
    other = make_calendar(profile=world.profile, name="Other")
    cursor = head_cursor(client, world)
    for n in range(5):
        add_event(world.calendar if n % 2 == 0 else other, start=T0 + timedelta(hours=n))

    seen, page_cursor = [], cursor
    while True:
        body = changes(client, world, cursor=page_cursor, limit="2").json()
        seen += [c["sequence"] for c in body["changes"]]
        page_cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    only_work = changes(
        client, world, **{"cursor": cursor, "calendar_ids[]": [world.calendar.public_id]}
    ).json()

    assert len(seen) == 5 and seen == sorted(seen)
    assert [c["calendar_id"] for c in only_work["changes"]] == [world.calendar.public_id] * 3
    assert changes(client, world, cursor=cursor, only_managed="true").json()["changes"] == []


def test_changes_profile_connected_and_disconnected(client, world):
    cursor = head_cursor(client, world)
    disconnect_profile(profile=world.profile, reason="revoked")
    store_connected_profile(
        account=world.account,
        provider_key="caldav",
        credentials={"username": "ada", "password": "x"},
        provider_account=base.ProviderAccount(world.profile.provider_account_id, "ada"),
        provider_calendars=None,
    )
    # A second connect of a connected profile only refreshes credentials: no entry.
    store_connected_profile(
        account=world.account,
        provider_key="caldav",
        credentials={"username": "ada", "password": "y"},
        provider_account=base.ProviderAccount(world.profile.provider_account_id, "ada"),
        provider_calendars=None,
    )

    body = changes(client, world, cursor=cursor).json()

    assert [(c["kind"], c["profile_id"]) for c in body["changes"]] == [
        ("profile_disconnected", world.profile.public_id),
        ("profile_connected", world.profile.public_id),
    ]


def test_changes_bad_input_is_cronofy_errors(client, world):
    cursor = head_cursor(client, world)
    stranger = make_world(email=None)
    foreign = head_cursor(client, stranger)
    other_app_token = make_access_token(account=world.account, application=make_application())

    def status(token=world.token, **params):
        return api_get(client, "/v1/changes", token, params).status_code

    assert status(token=None, cursor=cursor) == 401
    assert status(token=make_access_token(account=world.account, scope="list_calendars")) == 403
    assert status() == 422  # no cursor
    assert status(cursor=cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")) == 422
    assert status(cursor=foreign) == 422  # another account's
    assert status(token=other_app_token, cursor=cursor) == 422  # another application's
    assert status(cursor="chg_%%%") == 422
    assert status(cursor=cursor, limit="0") == 422
    assert status(cursor=cursor, limit="1001") == 422
    assert status(cursor=cursor, limit="²") == 422
    assert status(cursor=cursor, limit="9" * 5000) == 422
    assert status(cursor=cursor, wait="31") == 422
    assert status(cursor=cursor, only_managed="maybe") == 422
    assert status(**{"cursor": cursor, "calendar_ids[]": [stranger.calendar.public_id]}) == 404
    body = changes(client, world, cursor=cursor[:-2] + "zz").json()
    assert body["errors"]["cursor"][0]["key"] == "errors.invalid_cursor"


def test_changes_cursor_older_than_retention_is_410(client, world, settings):
    settings.CHANGE_LOG_RETENTION_DAYS = 30
    cursor = head_cursor(client, world)
    add_event(world.calendar, start=T0)
    add_event(world.calendar, start=T0)
    kept_cursor = changes(client, world, cursor=cursor, limit="1").json()["next_cursor"]
    ChangeLogEntry.objects.filter(account=world.account).update(
        changed_at=timezone.now() - timedelta(days=31)
    )
    newest = ChangeLogEntry.objects.filter(account=world.account).order_by("-sequence").first()
    ChangeLogEntry.objects.filter(pk=newest.pk).update(changed_at=timezone.now())

    assert purge_change_log() == 1
    expired = changes(client, world, cursor=cursor)
    kept = changes(client, world, cursor=kept_cursor)

    assert expired.status_code == 410
    assert expired.json()["error"] == "cursor_expired"
    assert "cursor=now" in expired.json()["description"]
    assert [c["sequence"] for c in kept.json()["changes"]] == [newest.sequence]
    # The head is always valid, even when everything before it was purged.
    assert changes(client, world, cursor="now").status_code == 200


def test_purge_keeps_each_log_a_contiguous_tail(world, settings):
    # Entries are stamped when recorded but numbered at the account lock, so stamps can run
    # out of sequence order at the cut-off: a cut by time alone would keep the first entry
    # and delete the second, a hole that a cursor before the first would skip silently.
    settings.CHANGE_LOG_RETENTION_DAYS = 30
    for _ in range(3):
        add_event(world.calendar, start=T0)
    first, second, third = ChangeLogEntry.objects.filter(account=world.account).order_by("sequence")
    cutoff = timezone.now() - timedelta(days=30)
    ChangeLogEntry.objects.filter(pk=first.pk).update(changed_at=cutoff + timedelta(minutes=1))
    ChangeLogEntry.objects.filter(pk=second.pk).update(changed_at=cutoff - timedelta(minutes=1))

    assert purge_change_log() == 2
    assert list(
        ChangeLogEntry.objects.filter(account=world.account).values_list("sequence", flat=True)
    ) == [third.sequence]


def test_changes_sync_status_on_event_reads(client, world):
    add_event(world.calendar, start=timezone.now() + timedelta(hours=1))

    body = api_get(client, "/v1/events", world.token, {"tzid": "Etc/UTC"}).json()

    assert body["sync_status"] == {
        world.calendar.public_id: {
            "state": "lagging",
            "source": "poll",
            "last_synced_at": None,
            "lag_seconds": None,
        }
    }


@pytest.mark.django_db(transaction=True)
def test_changes_long_poll_wakes_on_commit(client, settings):
    """A waiting read returns the change committed while it waits (no timing asserted here:
    tests/calendars/test_changes_postgres.py bounds the latency on PostgreSQL)."""
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    world = make_world(email=None)
    cursor = head_cursor(client, world)
    result: dict = {}

    def long_poll():
        try:
            # SQLite's in-memory test database locks whole tables: a read that meets the
            # write answers 503 (a file database in WAL mode never does); read again then.
            for _ in range(5):
                response = changes(client, world, cursor=cursor, wait="20")
                if response.status_code != 503:
                    result["body"] = response.json()
                    return
        finally:
            connections.close_all()

    reader = threading.Thread(target=long_poll)
    reader.start()
    try:
        deadline = time.monotonic() + 10
        while wakeups.waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        add_event(world.calendar, start=T0, summary="Late")
    finally:
        reader.join(30)
        wakeups.stop()

    assert [c["kind"] for c in result["body"]["changes"]] == ["event_created"]
    assert wakeups.waiting == 0


def test_changes_wait_is_capped_by_settings(client, world, settings):
    settings.CHANGES_MAX_WAIT_SECONDS = 0
    cursor = head_cursor(client, world)

    body = changes(client, world, cursor=cursor, wait="30").json()

    assert body["changes"] == [] and body["has_more"] is False
