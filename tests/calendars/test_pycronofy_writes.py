"""Acceptance: Cronofy's official Python SDK writes events to a live server.

See docs/api.md, "Writing events" and "Batch".
"""

from datetime import UTC, date, datetime

import pytest
from django_q.models import OrmQ
from pycronofy.batch import BatchBuilder
from pycronofy.exceptions import PyCronofyPartialSuccessError

from calendars.models import ChangeLogEntry, Event, ManagedEventWrite
from tests.calendars.helpers import add_event, make_world, sdk_client
from tests.factories import make_calendar

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def sdk(live_server, transactional_db, settings):
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""  # no task queue in tests
    world = make_world(profile_name="ada@example.com")
    client = sdk_client(world, live_server.url)
    return client, world.account, world.application, world.calendar


def event(event_id: str, **fields) -> dict:
    return {
        "event_id": event_id,
        "summary": "Board meeting",
        "description": "Budget",
        "start": T0,
        "end": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        "tzid": "Europe/London",
        "location": {"description": "Room 1"},
        **fields,
    }


def test_pycronofy_upsert_event_then_read_it_back(sdk):
    client, _, application, calendar = sdk
    client.upsert_event(calendar.public_id, event("bk-1"))
    client.upsert_event(
        calendar.public_id, event("bk-2", start=date(2026, 11, 24), end=date(2026, 11, 25))
    )

    stored = Event.objects.get(event_id="bk-1")
    assert stored.application == application and stored.start == T0
    assert Event.objects.get(event_id="bk-2").is_all_day
    assert ManagedEventWrite.objects.filter(operation="upsert").count() == 2

    events = list(
        client.read_events(
            from_date=date(2026, 11, 20),
            to_date=date(2026, 11, 30),
            tzid="Etc/UTC",
            only_managed=True,
        )
    )
    assert sorted(e["event_id"] for e in events) == ["bk-1", "bk-2"]
    assert all(e["options"]["update"] and e["options"]["delete"] for e in events)


def test_pycronofy_delete_event_and_delete_external_event(sdk):
    client, _, _, calendar = sdk
    client.upsert_event(calendar.public_id, event("bk-1"))
    external = add_event(calendar, start=T0)

    client.delete_event(calendar.public_id, "bk-1")
    client.delete_event(calendar.public_id, "never-existed")  # idempotent: 202
    client.delete_external_event(calendar.public_id, external.event_uid)

    assert set(Event.objects.filter(is_deleted=True).values_list("event_uid", flat=True)) == {
        Event.objects.get(event_id="bk-1").event_uid,
        external.event_uid,
    }
    ops = list(ManagedEventWrite.objects.order_by("id").values_list("operation", flat=True))
    assert ops == ["upsert", "delete", "delete"]


def test_pycronofy_delete_all_events_by_query(sdk):
    client, account, _, calendar = sdk
    second = make_calendar(profile=calendar.profile, name="Home")
    client.upsert_event(calendar.public_id, event("a"))
    client.upsert_event(second.public_id, event("b"))
    client.upsert_event(second.public_id, event("c"))
    external = add_event(calendar, start=T0)

    client.delete_all_events(calendar_ids=(second.public_id,))
    assert set(Event.objects.filter(is_deleted=True).values_list("event_id", flat=True)) == {
        "b",
        "c",
    }
    client.delete_all_events()
    assert set(Event.objects.filter(is_deleted=True).values_list("event_id", flat=True)) == {
        "a",
        "b",
        "c",
    }
    external.refresh_from_db()
    assert not external.is_deleted
    assert ManagedEventWrite.objects.filter(operation="delete").count() == 3
    assert ChangeLogEntry.objects.filter(account=account, kind="event_deleted").count() == 3


def test_pycronofy_change_participation_status(sdk):
    client, _, _, calendar = sdk
    invitation = add_event(
        calendar,
        start=T0,
        attendees=[{"email": "ada@example.com", "status": "needs_action"}],
        organizer={"email": "boss@example.com"},
    )
    client.change_participation_status(calendar.public_id, invitation.event_uid, "tentative")
    invitation.refresh_from_db()
    assert invitation.participation_status == "tentative"
    write = ManagedEventWrite.objects.get()
    assert write.desired == {"participation_status": "tentative"}


def test_pycronofy_batch(sdk):
    client, _, _, calendar = sdk
    external = add_event(calendar, start=T0)
    builder = (
        BatchBuilder()
        .upsert_event(calendar.public_id, event("bk-1"))
        .upsert_event(calendar.public_id, event("bk-2"))
        .delete_event(calendar.public_id, "bk-2")
        .delete_external_event(calendar.public_id, external.event_uid)
    )
    result = client.batch(builder)
    assert [entry.status() for entry in result.entries] == [202, 202, 202, 202]
    assert not result.has_errors()
    ops = list(ManagedEventWrite.objects.order_by("id").values_list("operation", flat=True))
    assert ops == ["upsert", "upsert", "delete", "delete"]

    bad = BatchBuilder().upsert_event(calendar.public_id, event("bk-3", summary=""))
    bad.delete_event(calendar.public_id, "bk-1")
    with pytest.raises(PyCronofyPartialSuccessError) as caught:
        client.batch(bad)
    statuses = [entry.status() for entry in caught.value.batch_response.entries]
    assert statuses == [422, 202]


def test_pycronofy_upsert_with_the_default_trigger_enqueues(sdk, settings):
    client, _, _, calendar = sdk
    settings.MANAGED_EVENT_WRITE_TRIGGER = "sync.services.enqueue_managed_event_writes"
    client.upsert_event(calendar.public_id, event("bk-1"))
    assert ManagedEventWrite.objects.get().status == "pending"
    assert OrmQ.objects.count() == 1  # the trigger only; nothing runs it in tests
