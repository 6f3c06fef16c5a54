"""Concurrent reconcilers on PostgreSQL (real row locks and SKIP LOCKED) against Radicale."""

import threading

import pytest
from django.db import connections
from django.utils import timezone

from calendars.models import ManagedEventWrite
from sync import services
from tests.sync.helpers import soon
from tests.sync.writes_helpers import connect, desired, server_resources, write

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

Status = ManagedEventWrite.Status


def in_threads(count: int, target) -> list:
    """Run `target(i)` in `count` threads started together; return their results."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def run(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return results


def _drain() -> None:
    """The sweep, run until nothing is left (deferred writes wait a few seconds)."""
    for _ in range(50):
        later = timezone.now() + timezone.timedelta(minutes=1)
        if not ManagedEventWrite.objects.filter(status=Status.PENDING).exists():
            return
        services.reconcile_event_writes(now=later)


def test_concurrent_reconcilers_on_pending_writes_of_one_event_make_one_resource(
    radicale_server,
):
    user, url, calendar = connect(radicale_server)
    first = write(calendar, desired(soon(2), summary="v0"))
    pending = [first] + [
        write(calendar, desired(soon(2), summary=f"v{i}"), event=first.event) for i in range(1, 20)
    ]

    in_threads(8, lambda i: services.reconcile_event_writes(limit=3))
    _drain()

    statuses = dict(ManagedEventWrite.objects.filter(event=first.event).values_list("pk", "status"))
    assert set(statuses.values()) <= {Status.DONE, Status.SUPERSEDED}
    assert statuses[pending[-1].pk] == Status.DONE
    [ical] = server_resources(radicale_server, user, url).values()
    assert "SUMMARY:v19" in ical


def test_writes_arriving_while_reconcilers_run_end_with_the_newest_at_the_server(
    radicale_server,
):
    user, url, calendar = connect(radicale_server)
    first = write(calendar, desired(soon(2), summary="start"))
    event = first.event

    def request_then_reconcile(i):
        w = write(calendar, desired(soon(2), summary=f"t{i}"), event=event)
        return services.reconcile_event_writes(write_ids=[w.pk, first.pk])

    in_threads(20, request_then_reconcile)
    _drain()

    writes_ = ManagedEventWrite.objects.filter(event=event).order_by("pk")
    assert set(writes_.values_list("status", flat=True)) <= {Status.DONE, Status.SUPERSEDED}
    newest = writes_.last()
    assert newest.status == Status.DONE
    [ical] = server_resources(radicale_server, user, url).values()
    assert f"SUMMARY:{newest.desired['summary']}" in ical
