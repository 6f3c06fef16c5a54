"""History outside the sync window: the daily purge (calendars.services.purge_event_history)
and what a later sync does with purged events (docs/operations.md, "Event history")."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from calendars import tasks
from calendars.models import ChangeLogEntry, Event, ManagedEventWrite
from calendars.schedules import SCHEDULES
from calendars.services import (
    apply_provider_events,
    history_horizon,
    purge_change_log,
    purge_event_history,
)
from calendars.types import EventIdentity
from tests.calendars.helpers import add_all_day_event, add_event, make_world
from tests.factories import make_event_data

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
# SYNC_WINDOW_PAST_DAYS 42 + EVENT_HISTORY_RETENTION_DAYS 30 before today.
HORIZON = datetime(2026, 9, 22, tzinfo=UTC)
LONG_AGO = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)  # when the history below was cached


@pytest.fixture
def world(db, settings):
    settings.SYNC_WINDOW_PAST_DAYS = 42
    settings.EVENT_HISTORY_RETENTION_DAYS = 30
    settings.CHANGE_LOG_RETENTION_DAYS = 30
    return make_world(email=None, calendar_name=None)


def cached_long_ago(calendar, *, start: datetime, minutes: int = 60, **fields) -> Event:
    """An event cached back when it was inside the window, its change-log entries since
    purged by their own retention."""
    with time_machine.travel(LONG_AGO, tick=False):
        event = add_event(calendar, start=start, minutes=minutes, **fields)
    return event


def purge_at_now() -> int:
    with time_machine.travel(NOW, tick=False):
        purge_change_log()
        return purge_event_history()


def remaining(world) -> set[int]:
    return set(Event.objects.filter(account=world.account).values_list("pk", flat=True))


def test_history_horizon_is_the_windows_start_less_the_retention(world):
    assert history_horizon(NOW) == HORIZON


def test_purge_deletes_events_that_ended_by_the_horizon_and_keeps_the_rest(world):
    old = cached_long_ago(world.calendar, start=HORIZON - timedelta(days=100))
    at_horizon = cached_long_ago(world.calendar, start=HORIZON - timedelta(hours=1), minutes=60)
    after = cached_long_ago(world.calendar, start=HORIZON - timedelta(minutes=59), minutes=60)
    spanning = cached_long_ago(
        world.calendar, start=HORIZON - timedelta(days=20), minutes=60 * 24 * 30
    )
    with time_machine.travel(LONG_AGO, tick=False):
        all_day = add_all_day_event(world.calendar, first=date(2026, 9, 20), days=2)
        tombstone = add_event(world.calendar, start=HORIZON - timedelta(days=3))
        apply_provider_events(
            calendar=world.calendar, deletions=[EventIdentity(tombstone.provider_key)]
        )
    in_window = add_event(world.calendar, start=NOW - timedelta(days=1))

    assert purge_at_now() == 4
    assert remaining(world) == {after.pk, spanning.pk, in_window.pk}
    assert not Event.objects.filter(pk__in=[old.pk, at_horizon.pk, all_day.pk]).exists()


def test_purge_is_not_a_change_the_change_feed_or_a_later_sync_reports(world):
    old = cached_long_ago(world.calendar, start=HORIZON - timedelta(days=10))
    data = make_event_data(key=old.provider_key, start=old.start, minutes=60)
    with time_machine.travel(NOW, tick=False):
        purge_change_log()
        head = world.account.__class__.objects.get(pk=world.account.pk).last_change_seq
        entries = ChangeLogEntry.objects.filter(account=world.account).count()

        assert purge_event_history() == 1
        # A later sync re-reading the event's resource neither brings it back nor tells
        # anyone it was created (or deleted) again.
        result = apply_provider_events(calendar=world.calendar, upserts=[data])
        deletion = apply_provider_events(
            calendar=world.calendar, deletions=[EventIdentity(old.provider_key)]
        )

    assert (result.created, result.unchanged, deletion.deleted) == (0, 1, 0)
    assert not Event.objects.filter(provider_key=old.provider_key).exists()
    account = world.account.__class__.objects.get(pk=world.account.pk)
    assert account.last_change_seq == head
    assert ChangeLogEntry.objects.filter(account=world.account).count() == entries


def test_purge_keeps_what_something_still_needs(world):
    pending = cached_long_ago(world.calendar, start=HORIZON - timedelta(days=10))
    failed = cached_long_ago(world.calendar, start=HORIZON - timedelta(days=11))
    done = cached_long_ago(world.calendar, start=HORIZON - timedelta(days=12))
    master = cached_long_ago(world.calendar, start=HORIZON - timedelta(days=200))
    Event.objects.filter(pk=master.pk).update(
        is_recurring=True, original_start=None, event_id="series-1", application=world.application
    )
    for event, status in (
        (pending, ManagedEventWrite.Status.PENDING),
        (failed, ManagedEventWrite.Status.FAILED),
        (done, ManagedEventWrite.Status.DONE),
    ):
        ManagedEventWrite.objects.create(
            account=world.account,
            calendar=world.calendar,
            event=event,
            operation=ManagedEventWrite.Operation.UPSERT,
            status=status,
        )
    # Changed recently: the change log still names it, so it waits for that entry's purge.
    named = cached_long_ago(world.calendar, start=HORIZON - timedelta(days=13))
    with time_machine.travel(NOW - timedelta(days=1), tick=False):
        apply_provider_events(
            calendar=world.calendar,
            upserts=[make_event_data(key=named.provider_key, start=named.start, summary="New")],
        )

    assert purge_at_now() == 1
    assert remaining(world) == {pending.pk, failed.pk, master.pk, named.pk}
    assert not ManagedEventWrite.objects.filter(event_id=done.pk).exists()
    with time_machine.travel(NOW + timedelta(days=31), tick=False):
        purge_change_log()
        assert purge_event_history() == 1
    assert remaining(world) == {pending.pk, failed.pk, master.pk}


def test_purge_retention_of_zero_keeps_the_whole_sync_window(world, settings):
    settings.EVENT_HISTORY_RETENTION_DAYS = 0
    window_start = datetime(2026, 10, 22, tzinfo=UTC)
    before = cached_long_ago(world.calendar, start=window_start - timedelta(hours=2))
    inside = cached_long_ago(world.calendar, start=window_start - timedelta(minutes=30))
    assert purge_at_now() == 1
    assert remaining(world) == {inside.pk}
    assert not Event.objects.filter(pk=before.pk).exists()


def test_purge_event_history_is_a_daily_schedule_of_its_task(world):
    entry = next(s for s in SCHEDULES if s["name"] == "calendars.purge_event_history")
    assert (entry["func"], entry["schedule_type"]) == ("calendars.tasks.purge_event_history", "D")
    cached_long_ago(world.calendar, start=HORIZON - timedelta(days=10))
    with time_machine.travel(NOW, tick=False):
        purge_change_log()
        assert tasks.purge_event_history() == 1
