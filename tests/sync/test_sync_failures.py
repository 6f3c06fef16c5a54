"""A sync applies in short batches, records every failure where support staff look (whatever
raised it), backs off, logs it once, and a relink keeps the record; its counts add up."""

import io
import logging
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone

from calendars import services as calendar_services
from calendars.models import Event
from sync import services
from sync.models import CalendarSyncState
from sync.services import engine, resources
from tests.sync.helpers import soon, vcalendar, vevent
from tests.sync.writes_helpers import connect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def seven_events(radicale_server):
    user, url, calendar = connect(radicale_server)
    for n in range(7):
        radicale_server.put_event(url, f"e{n}", vcalendar(vevent(f"e{n}", soon(2 + n))))
    return calendar


def _sync_failures_logged(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == engine.__name__ and r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "error, level, has_traceback",
    [
        (RuntimeError("a bug"), logging.ERROR, True),
        (OperationalError("database is locked"), logging.WARNING, False),
    ],
)
def test_sync_any_failure_is_recorded_backed_off_and_logged_once(
    seven_events, caplog, error, level, has_traceback
):
    calendar = seven_events
    before = timezone.now()
    with mock.patch.object(calendar_services, "apply_provider_events", side_effect=error):
        outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "failed" and type(error).__name__ in outcome.error
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert state.consecutive_failures == 1
    assert state.last_error_class == type(error).__name__ and str(error) in state.last_error
    assert state.last_error_at >= before
    assert state.next_poll_at >= before + timedelta(seconds=0.8 * 300)
    assert state.locked_until is None  # the lease is released
    [record] = _sync_failures_logged(caplog)
    assert record.levelno == level and bool(record.exc_info) == has_traceback


def test_sync_applies_in_batches_and_an_interrupted_sync_resumes(seven_events, monkeypatch):
    calendar = seven_events
    monkeypatch.setattr(resources, "APPLY_BATCH_EVENTS", 3)
    apply = calendar_services.apply_provider_events
    calls = []

    def fail_second_batch(**kwargs):
        calls.append(len(kwargs["upserts"]))
        if len(calls) == 2:
            raise OperationalError("database is locked")
        return apply(**kwargs)

    with mock.patch.object(calendar_services, "apply_provider_events", fail_second_batch):
        assert services.sync_calendar(calendar_id=calendar.pk).status == "failed"
    assert calls == [3, 3]
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert state.cursor == "" and state.last_synced_at is None  # cursor saved with the last batch
    assert Event.objects.filter(calendar=calendar).count() == 3  # the first batch stands

    progress = []
    outcome = services.sync_calendar(
        calendar_id=calendar.pk, progress=lambda done, total: progress.append((done, total))
    )
    assert outcome.status == "synced"
    assert progress == [(3, 7), (6, 7), (7, 7)]
    assert (outcome.result.created, outcome.result.unchanged, outcome.fetched) == (4, 3, 7)
    state.refresh_from_db()
    assert state.cursor and state.consecutive_failures == 0
    assert Event.objects.filter(calendar=calendar, is_deleted=False).count() == 7


def test_sync_relink_keeps_the_failure_record_until_a_success(seven_events, radicale_server):
    calendar = seven_events
    with mock.patch.object(
        calendar_services, "apply_provider_events", side_effect=RuntimeError("a bug")
    ):
        services.sync_calendar(calendar_id=calendar.pk)
    profile = calendar.profile
    connect_again = {**profile.credentials}
    services.connect_profile(
        account=profile.account, provider_key="caldav", credentials_dict=connect_again
    )
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert state.last_error_class == "RuntimeError" and state.consecutive_failures == 1
    assert state.next_poll_at <= timezone.now()  # due again at once

    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    state.refresh_from_db()
    assert state.consecutive_failures == 0 and state.last_error == ""


def test_sync_calendar_command_full_resync_counts_add_up(seven_events):
    calendar = seven_events
    services.sync_calendar(calendar_id=calendar.pk)
    out = io.StringIO()
    call_command("sync_calendar", calendar.public_id, "--full", stdout=out)
    assert "synced (full): 0 created, 0 updated, 7 unchanged of 7 fetched; 0 deleted" in (
        out.getvalue()
    )


def test_sync_interrupted_batch_keeps_its_resources_known(
    seven_events, radicale_server, monkeypatch
):
    # A batch writes the resource map of its resources with their events: a resource created
    # by an interrupted sync and deleted at the provider before the retry is tombstoned.
    calendar = seven_events
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    url = calendar.provider_calendar_id
    for n in range(4):
        radicale_server.put_event(url, f"new{n}", vcalendar(vevent(f"new{n}", soon(20 + n))))
    monkeypatch.setattr(resources, "APPLY_BATCH_EVENTS", 2)
    apply = calendar_services.apply_provider_events
    calls = []

    def fail_second_batch(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("database is locked")
        return apply(**kwargs)

    with mock.patch.object(calendar_services, "apply_provider_events", fail_second_batch):
        assert services.sync_calendar(calendar_id=calendar.pk).status == "failed"
    applied = set(
        Event.objects.filter(calendar=calendar, provider_key__startswith="new").values_list(
            "provider_key", flat=True
        )
    )
    assert len(applied) == 2
    gone = sorted(applied)[0]
    radicale_server.delete_event(url, gone)

    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    live = set(
        Event.objects.filter(
            calendar=calendar, provider_key__startswith="new", is_deleted=False
        ).values_list("provider_key", flat=True)
    )
    assert live == {f"new{n}" for n in range(4)} - {gone}
