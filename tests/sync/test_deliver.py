"""The delivery process (`manage.py deliver`): real processes against PostgreSQL, a real HTTP
receiver on 127.0.0.1 and a real Radicale; and the same loop in-process on SQLite."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from calendars.services import apply_provider_events, upsert_managed_event
from calendars.types import ManagedEventContent
from calendars.wakeups import OUTBOX_CHANNEL, OUTBOX_NOTIFICATIONS, OUTBOX_WRITES
from notifications.models import Notification
from notifications.services import heartbeat_age
from sync.models import CalendarSyncState
from sync.services import polling
from sync.services.delivery import DeliveryProcess
from tests.factories import (
    make_account,
    make_application,
    make_calendar,
    make_event_data,
    make_profile,
)
from tests.notifications.conftest import Receiver, Reply, make_integrator, open_channel
from tests.sync.writes_helpers import connect, server_resources

ROOT = Path(__file__).resolve().parents[2]
# Generous bounds for work that takes milliseconds when the machine is idle.
ARRIVAL_SECONDS = 30


def wait_for(predicate, seconds: float = ARRIVAL_SECONDS, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        time.sleep(0.05)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def allow_loopback(settings):
    settings.PUSH_CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


class DeliverProcess:
    """`manage.py deliver` in a child process, against the test database."""

    def __init__(self, **env):
        db = connection.settings_dict
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "deliver", "--write-threads", "2"],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
                "PUSH_CALLBACK_ALLOWED_NETWORKS": "127.0.0.1/32",
                "LOG_LEVEL": "WARNING",
                **env,
            },
            stdout=subprocess.PIPE,
            text=True,
        )
        started = self.process.stdout.readline()
        assert started.startswith("delivering as deliver@"), started

    def stop(self) -> str:
        """SIGTERM; returns the summary it printed (after a clean exit)."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, out
        return out


@pytest.fixture
def delivering():
    started: list[DeliverProcess] = []

    def start(**env) -> DeliverProcess:
        started.append(DeliverProcess(**env))
        return started[-1]

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(10)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_loopback")
def test_deliver_two_processes_send_each_notification_exactly_once(receiver, delivering):
    first, second = delivering(), delivering()
    receiver.script = lambda received: Reply(delay=0.02)  # both processes get a share
    app = make_integrator()
    calendars = []
    for i in range(40):
        account = make_account()
        calendars.append(make_calendar(profile=make_profile(account=account)))
        open_channel(account, app, receiver.url(f"/{i}"))
    wait_for(lambda: len(receiver.of_type("verification")) == 40, what="verifications")
    for calendar in calendars:
        apply_provider_events(calendar=calendar, upserts=[make_event_data()])

    wait_for(lambda: len(receiver.of_type("change")) == 40, what="changes")
    time.sleep(1)  # a duplicate would arrive now
    summaries = [first.stop(), second.stop()]

    ids = [r.delivery_id for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 80
    assert Notification.objects.filter(status=Notification.Status.DELIVERED).count() == 80
    delivered = [int(s.split(" delivered")[0].rsplit(" ", 1)[1]) for s in summaries]
    assert sum(delivered) == 80, summaries


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_loopback")
def test_deliver_survives_the_database_dropping_its_connections(receiver, delivering):
    process = delivering()
    account = make_account()
    calendar = make_calendar(profile=make_profile(account=account))
    open_channel(account, make_integrator(), receiver.url())
    # Recorded, not only sent: a result lost with the connection would hold the channel for
    # its lease (at-least-once: it is sent again after PUSH_LEASE_SECONDS).
    wait_for(
        lambda: Notification.objects.filter(status=Notification.Status.DELIVERED).exists(),
        what="the verification recorded",
    )

    # What a database restart does to every client: its backends are gone.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    apply_provider_events(calendar=calendar, upserts=[make_event_data()])

    wait_for(lambda: receiver.of_type("change"), what="the change after the reconnect")
    assert "delivered" in process.stop()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_loopback")
def test_deliver_retries_at_the_next_attempt_time_without_a_new_commit(receiver, delivering):
    answers = iter([Reply(status=500)])
    receiver.script = lambda received: next(answers, Reply())
    delivering()
    open_channel(make_account(), make_integrator(), receiver.url())

    wait_for(lambda: len(receiver.requests) == 2, what="the retry (due ~5 s after the 500)")
    first, second = receiver.requests
    assert first.delivery_id == second.delivery_id
    assert second.at - first.at >= 3.5  # RETRY_DELAYS[0] - 20% jitter


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_deliver_reconciles_a_managed_write_woken_by_its_commit(radicale_server, delivering):
    user, url, calendar = connect(radicale_server)
    delivering(CONNECT_ALLOWED_ORIGINS=radicale_server.base_url)
    start = timezone.now().replace(microsecond=0) + timedelta(days=1)

    upsert_managed_event(
        application=make_application(name="Bookings"),
        calendar=calendar,
        event_id="booking-1",
        content=ManagedEventContent(summary="Booked", start=start, end=start + timedelta(hours=1)),
    )

    wait_for(lambda: len(server_resources(radicale_server, user, url)) == 1, what="the write")


def retried_while_locked(statement):
    """`statement()`, again while shared-cache SQLite answers "table is locked" (another
    thread of the process under test holds it)."""
    for _attempt in range(100):
        try:
            return statement()
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.05)
    return statement()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_loopback")
def test_deliver_on_sqlite_rereads_and_stops_cleanly(receiver):
    if connection.vendor != "sqlite":
        pytest.skip("the re-read path is SQLite's; PostgreSQL is woken by NOTIFY")
    # The test database is in-memory SQLite with a shared cache, whose table locks fail at
    # once where a file database would wait: this thread's statements are retried.
    process = DeliveryProcess(write_threads=1)
    runner = threading.Thread(target=process.run)
    runner.start()
    try:
        account = retried_while_locked(make_account)
        integrator = retried_while_locked(make_integrator)
        retried_while_locked(lambda: open_channel(account, integrator, receiver.url()))
        wait_for(lambda: receiver.of_type("verification"), what="verification")
        wait_for(lambda: retried_while_locked(heartbeat_age) is not None, what="a heartbeat")
        assert retried_while_locked(heartbeat_age) < ARRIVAL_SECONDS
    finally:
        process.stop()
        runner.join(ARRIVAL_SECONDS)
    assert not runner.is_alive()
    assert process.report.notifications == {"delivered": 1}
    assert heartbeat_age() is None  # a clean stop removes the heartbeat


@pytest.mark.django_db(transaction=True)
def test_deliver_hands_a_poll_to_the_workers_as_it_falls_due(monkeypatch):
    """Not a minute late at the next tick: the delivery process claims it within a second or
    two of its next_poll_at."""
    queued = []
    monkeypatch.setattr(polling, "enqueue_poll", lambda ids, claim: queued.append(ids))
    calendar = make_calendar(profile=make_profile())
    due_at = timezone.now() + timedelta(seconds=2)
    CalendarSyncState.objects.create(calendar=calendar, next_poll_at=due_at)
    process = DeliveryProcess(write_threads=0)
    runner = threading.Thread(target=process.run)
    runner.start()
    try:
        wait_for(lambda: queued, seconds=10, what="the poll handed out")
        handed_out_at = timezone.now()
    finally:
        process.stop()
        runner.join(ARRIVAL_SECONDS)
    assert queued == [[calendar.pk]]
    assert handed_out_at <= due_at + timedelta(seconds=5)  # the tick would be up to 60 s late


class Rollback(Exception):
    pass


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_loopback")
def test_outbox_rows_wake_the_delivery_process_at_commit_only(receiver):
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as listening:
        listening.execute(f"LISTEN {OUTBOX_CHANNEL}")
        account = make_account()
        calendar = make_calendar(profile=make_profile(account=account))
        start = timezone.now().replace(microsecond=0) + timedelta(days=1)

        def book(event_id: str):
            upsert_managed_event(
                application=make_application(name="Bookings"),
                calendar=calendar,
                event_id=event_id,
                content=ManagedEventContent(
                    summary="Booked", start=start, end=start + timedelta(hours=1)
                ),
            )

        with pytest.raises(Rollback), transaction.atomic():
            open_channel(account, make_integrator(), receiver.url())
            book("rolled-back")
            raise Rollback
        assert [n.payload for n in listening.notifies(timeout=0.5)] == []

        open_channel(account, make_integrator(), receiver.url())
        book("booking-1")
        payloads = [n.payload for n in listening.notifies(timeout=2, stop_after=2)]
    assert sorted(payloads) == [OUTBOX_NOTIFICATIONS, OUTBOX_WRITES]
