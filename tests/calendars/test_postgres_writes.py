"""Concurrent writes of one account need real row locks: PostgreSQL only."""

import threading
from datetime import UTC, datetime

import pytest
from django.db import connections

from calendars.models import ChangeLogEntry, Event, ManagedEventWrite
from calendars.services import upsert_managed_event
from calendars.types import ManagedEventContent
from tests.calendars.helpers import make_world

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def in_threads(count: int, target) -> list:
    """Run `target()` in `count` threads started together; return results or exceptions."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i):
        try:
            barrier.wait()
            results[i] = target()
        except Exception as exc:  # reported by the test, not lost in the thread
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_upsert_managed_event_concurrent_identical_upserts_make_one_event(settings):
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    world = make_world(email=None, calendar_name=None)
    account, calendar, application = world.account, world.calendar, world.application
    content = ManagedEventContent(
        summary="Board meeting", start=T0, end=T0.replace(hour=10), tzid="Europe/London"
    )

    results = in_threads(
        20,
        lambda: upsert_managed_event(
            application=application, calendar=calendar, event_id="booking-1", content=content
        ),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert Event.objects.filter(event_id="booking-1").count() == 1
    # The first records the write; the 19 others repeat it and record nothing.
    assert ManagedEventWrite.objects.count() == 1
    assert sum(r is not None for r in results) == 1
    assert ChangeLogEntry.objects.filter(account=account).count() == 1


def test_upsert_managed_event_concurrent_distinct_upserts_serialize(settings):
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    world = make_world(email=None, calendar_name=None)
    account, calendar, application = world.account, world.calendar, world.application
    counter = iter(range(100))
    lock = threading.Lock()

    def write():
        with lock:
            n = next(counter)
        content = ManagedEventContent(summary=f"v{n}", start=T0, end=T0.replace(hour=10))
        return upsert_managed_event(
            application=application, calendar=calendar, event_id="booking-1", content=content
        )

    results = in_threads(20, write)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert Event.objects.count() == 1
    assert ManagedEventWrite.objects.count() == 20
    sequences = list(
        ChangeLogEntry.objects.filter(account=account)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )
    assert sequences == list(range(1, 21))
    # Last write wins: the cached event holds the content of the newest write.
    newest = ManagedEventWrite.objects.order_by("-id").first()
    assert Event.objects.get().summary == newest.desired["summary"]
