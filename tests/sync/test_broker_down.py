"""With the task broker down (django-q's Redis broker pointed at a closed port), a request
that committed still answers as it would, the rows it wrote stay due for the periodic
sweeps, and the failed enqueue is logged and counted, never a 500."""

import json

import pytest
from django.utils import timezone
from django_q.conf import Conf

from accounts.queueing import enqueue_failures
from calendars.models import ManagedEventWrite
from notifications.models import Notification
from sync.models import CalendarSyncState
from sync.services import engine
from tests.calendars.helpers import make_world


@pytest.fixture
def broker_down(monkeypatch):
    """A real Redis broker on a port where nothing listens: every enqueue raises."""
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:1/0")


@pytest.fixture
def world(db, settings):
    settings.API_RATE_LIMIT_PER_SECOND = settings.API_RATE_LIMIT_PER_MINUTE = 0
    settings.MANAGED_EVENT_WRITE_TRIGGER = "sync.services.enqueue_managed_event_writes"
    settings.PUSH_ENQUEUE_ON_COMMIT = True
    settings.PUSH_CALLBACK_ALLOWED_NETWORKS = "127.0.0.1/32"
    return make_world()


def failures(what: str) -> int:
    return enqueue_failures().get(what, 0)


def test_an_upsert_commits_and_stays_due_when_the_broker_is_down(
    client, world, broker_down, django_capture_on_commit_callbacks, caplog
):
    before = failures("managed event writes")
    body = {
        "event_id": "booking-1",
        "summary": "Booked",
        "start": "2026-11-23T09:00:00Z",
        "end": "2026-11-23T09:30:00Z",
        "tzid": "Etc/UTC",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/v1/calendars/{world.calendar.public_id}/events",
            json.dumps(body),
            content_type="application/json",
            **world.headers,
        )
    assert response.status_code == 202
    write = ManagedEventWrite.objects.pending().get()
    assert write.next_attempt_at <= timezone.now()  # the reconciler's sweep claims it
    assert failures("managed event writes") == before + 1
    assert "could not enqueue managed event writes" in caplog.text


def test_a_channel_commits_its_verification_when_the_broker_is_down(
    client, world, broker_down, django_capture_on_commit_callbacks
):
    before = failures("push dispatch")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/v1/channels",
            json.dumps({"callback_url": "http://127.0.0.1:9/callback"}),
            content_type="application/json",
            **world.headers,
        )
    assert response.status_code == 200
    assert Notification.objects.filter(status=Notification.Status.PENDING).exists()
    assert failures("push dispatch") == before + 1


def test_sync_now_commits_and_stays_due_when_the_broker_is_down(
    world, broker_down, django_capture_on_commit_callbacks
):
    """Before, the after-commit enqueue raised the broker's ConnectionError into the admin."""
    CalendarSyncState.objects.create(calendar=world.calendar, next_poll_at=None)
    before = failures("calendar sync")
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.request_sync(calendar_ids=[world.calendar.pk]) == 1
    state = CalendarSyncState.objects.get(calendar=world.calendar)
    assert state.next_poll_at <= timezone.now()  # the poll sweep claims it
    assert failures("calendar sync") == before + 1
