"""Concurrency and crash tests that need real row locks (SKIP LOCKED) and a second process."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, connections

from calendars.models import Event
from calendars.services import apply_provider_events
from notifications import services
from notifications.models import DeliveryAttempt, Notification
from notifications.transport import PostResult
from tests.factories import make_account, make_calendar, make_event_data, make_profile
from tests.notifications.conftest import Reply, deliver_all, make_integrator, open_channel

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("allow_loopback"),
]

ROOT = Path(__file__).resolve().parents[2]


def in_threads(count: int, target) -> list:
    """Run `target()` in `count` threads started together; return their results."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i):
        try:
            barrier.wait()
            results[i] = target()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_two_dispatchers_send_each_notification_exactly_once(receiver):
    app = make_integrator()
    account = make_account()
    for i in range(150):
        open_channel(account if i < 100 else make_account(), app, receiver.url(f"/{i}"))

    stats = in_threads(2, lambda: services.run_dispatcher(concurrency=16))

    # A dispatcher stops when everything due is locked by the other; the pump picks up any rest.
    leftover = deliver_all().delivered
    assert sum(s.delivered for s in stats) + leftover == 150
    assert all(s.delivered > 0 for s in stats)  # both did work, neither twice
    ids = [r.delivery_id for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 150
    assert DeliveryAttempt.objects.count() == 150


def test_two_relays_create_one_change_notification_per_channel(receiver):
    account = make_account()
    calendar = make_calendar(profile=make_profile(account=account))
    channels = [open_channel(account, make_integrator(), receiver.url(f"/{i}")) for i in range(20)]
    for i in range(30):
        apply_provider_events(calendar=calendar, upserts=[make_event_data(key=f"k{i}")])

    in_threads(2, services.relay_changes)

    for channel in channels:
        assert Notification.objects.filter(channel=channel, type="change").count() == 1


def test_same_attempt_recorded_twice_concurrently_transitions_once(receiver):
    open_channel(make_account(), make_integrator(), receiver.url())
    [claim] = services.claim_due(limit=1)

    outcomes = in_threads(
        2, lambda: services.record_results([(claim, PostResult(status_code=200))])
    )

    assert sorted(o[0] for o in outcomes) == ["delivered", "stale"]
    assert DeliveryAttempt.objects.count() == 1
    assert Notification.objects.get().status == Notification.Status.DELIVERED


def test_receiver_sees_the_change_when_the_notification_arrives(receiver):
    account = make_account()
    calendar = make_calendar(profile=make_profile(account=account))
    open_channel(account, make_integrator(), receiver.url())
    deliver_all()
    seen = []

    def script(received):
        if received.json["notification"]["type"] == "change":
            # The receiver calls back at once (as GET /v1/events?last_modified= would).
            since = received.json["notification"]["changes_since"]
            seen.append(Event.objects.filter(account=account, updated_at__gte=since).count())
            connections.close_all()
        return Reply()

    receiver.script = script
    apply_provider_events(calendar=calendar, upserts=[make_event_data()])
    services.run_dispatcher(relay=True)

    assert seen == [1]


def test_dispatcher_process_killed_after_sending_redelivers_with_the_same_id(receiver):
    open_channel(make_account(), make_integrator(), receiver.url())
    notification = Notification.objects.get()
    worker: dict = {}
    first_sent = threading.Event()

    def script(received):
        if not first_sent.is_set():
            first_sent.set()
            os.kill(worker["process"].pid, signal.SIGKILL)  # after sending, before recording
        return Reply()

    receiver.script = script
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "PUSH_CALLBACK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "PUSH_LEASE_SECONDS": "2",
        "PUSH_ENQUEUE_ON_COMMIT": "false",
    }
    code = (
        "import django; django.setup(); from notifications import services; services.dispatch_due()"
    )
    worker["process"] = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    assert worker["process"].wait(60) == -signal.SIGKILL

    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (Notification.Status.SENDING, 1)
    assert not DeliveryAttempt.objects.exists()
    assert deliver_all().claimed == 0  # still leased
    time.sleep(2.2)
    assert deliver_all().delivered == 1

    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (Notification.Status.DELIVERED, 2)
    first, second = receiver.requests
    assert first.delivery_id == second.delivery_id == notification.delivery_id
