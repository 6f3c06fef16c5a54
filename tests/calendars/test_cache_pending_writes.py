"""apply_provider_events leaves events with a pending managed-event write alone; finished
writes are purged after their retention."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calendars.models import Event, ManagedEventWrite
from calendars.services import apply_provider_events
from calendars.types import EventIdentity
from tests.factories import make_calendar, make_event_data

pytestmark = pytest.mark.django_db


def _cached(calendar, *keys):
    apply_provider_events(
        calendar=calendar, upserts=[make_event_data(key=k, summary="Ours") for k in keys]
    )
    return [Event.objects.get(calendar=calendar, provider_key=k) for k in keys]


def _pending(event):
    return ManagedEventWrite.objects.create(
        account=event.account, calendar=event.calendar, event=event, operation="upsert"
    )


def test_apply_provider_events_keeps_events_with_pending_writes():
    calendar = make_calendar()
    protected, deleted_one, free = _cached(calendar, "p", "d", "f")
    _pending(protected)
    _pending(deleted_one)

    result = apply_provider_events(
        calendar=calendar,
        upserts=[
            make_event_data(key="p", summary="Provider's"),
            make_event_data(key="f", summary="Provider's"),
        ],
        deletions=[EventIdentity("d")],
    )

    assert (result.updated, result.deleted, result.unchanged) == (1, 0, 1)
    for event in (protected, deleted_one, free):
        event.refresh_from_db()
    assert protected.summary == "Ours" and not deleted_one.is_deleted
    assert free.summary == "Provider's"


def test_apply_provider_events_applies_once_the_write_is_done_or_unprotected():
    calendar = make_calendar()
    [event] = _cached(calendar, "p")
    write = _pending(event)
    apply_provider_events(
        calendar=calendar,
        upserts=[make_event_data(key="p", summary="Server edit")],
        protect_pending_writes=False,
    )
    event.refresh_from_db()
    assert event.summary == "Server edit"
    write.status = ManagedEventWrite.Status.DONE
    write.save()
    apply_provider_events(calendar=calendar, deletions=[EventIdentity("p")])
    event.refresh_from_db()
    assert event.is_deleted


def test_apply_provider_events_checks_pending_writes_in_one_query():
    calendar = make_calendar()
    events = _cached(calendar, *[f"k{i}" for i in range(30)])
    for event in events[:10]:
        _pending(event)
    upserts = [make_event_data(key=f"k{i}", summary="Provider's") for i in range(30)]
    with CaptureQueriesContext(connection) as queries:
        apply_provider_events(calendar=calendar, upserts=upserts)
    write_queries = [q for q in queries if "calendars_managedeventwrite" in q["sql"]]
    assert len(write_queries) == 1
