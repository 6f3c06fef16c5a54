"""Google and Microsoft through the real processes when things break.

- A worker is killed (SIGKILL) while its write is at the provider: the provider applied it,
  the worker never heard. django-q replaces the worker, the write's lease lapses, the sweep
  claims it again, and the provider's idempotency (Google: our event id, answered 409; Graph:
  `transactionId`) makes the retry land nothing new. The event is there once, and later
  writes of it (a move, a delete) still reach the one resource.
- Push stops (the sandbox drops every notification): the poll of a push-enabled calendar
  still brings the change, at SYNC_PUSH_POLL_INTERVAL_SECONDS.
- The access token and the sync state expire together and the first list call is throttled:
  one refresh, a backoff, a resync; every event once.
- The user revokes our access: the profile is disconnected and the integrator gets
  `profile_disconnected` exactly once.

Google on SQLite, Microsoft on PostgreSQL (skipped without DATABASE_URL): each part of the
seam under each database, at the cost of two worlds rather than four.
"""

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from sync.sandbox.google import GoogleSandbox
from sync.sandbox.google.push import DROPPED
from sync.sandbox.microsoft import MicrosoftSandbox
from tests.sync.sandbox_world import (
    Receiver,
    at,
    google_service,
    graph_meeting,
    integrator_client,
    microsoft_service,
    running_world,
    timed,
    wait_for,
)

ADA = "ada@example.com"
CLIENT = ("calsync-faults", "calsync-faults-secret")
LEASE_SECONDS = 10
ENV = {
    "EVENT_WRITE_LEASE_SECONDS": str(LEASE_SECONDS),
    "SYNC_PUSH_POLL_INTERVAL_SECONDS": "30",
}
WRITES_QUERY = """
import json
from calendars.models import ManagedEventWrite
print(json.dumps(list(ManagedEventWrite.objects.order_by("pk").values_list("status", flat=True))))
"""


@dataclass(frozen=True)
class Provider:
    sandbox: Callable
    make_service: Callable
    backend: str
    provider_name: str
    calendar: str | None  # the sandbox's name for Ada's default calendar
    insert_path: str
    list_path: str  # the incremental sync's call
    title: str  # the provider's key for the summary
    body: Callable[[str, datetime], dict]
    push_subscriptions: Callable
    expire_sync_state: Callable
    token_path: str


GOOGLE = Provider(
    GoogleSandbox,
    google_service,
    "google-oauth2",
    "google",
    "primary",
    r"/calendars/[^/]+/events$",
    r"/calendars/[^/]+/events$",
    "summary",
    timed,
    lambda sandbox: sandbox.channels(),
    lambda sandbox: sandbox.expire_sync_tokens(),
    r"^/token$",
)
MICROSOFT = Provider(
    MicrosoftSandbox,
    microsoft_service,
    "microsoft-graph",
    "office365",
    None,
    r"/events$",
    r"/calendarView/delta$",
    "subject",
    graph_meeting,
    lambda sandbox: sandbox.subscriptions(),
    lambda sandbox: sandbox.expire_delta_tokens(),
    r"/oauth2/v2.0/token$",
)


@pytest.fixture(
    params=[(GOOGLE, "sqlite"), (MICROSOFT, "postgresql")], ids=["google-sqlite", "ms-pg"]
)
def world(request, tmp_path):
    provider, database = request.param
    with running_world(
        database, tmp_path, provider.sandbox(), provider.make_service, ADA, CLIENT, ENV
    ) as (sandbox, service):
        yield provider, sandbox, service


def test_crashes_broken_push_expiries_and_revocation_lose_and_duplicate_nothing(world):
    provider, sandbox, service = world
    client = integrator_client(
        service, backend=provider.backend, provider_name=provider.provider_name
    )
    [primary] = [
        c for c in wait_for("calendars", client.list_calendars, 60) if c["calendar_primary"]
    ]
    calendar_id = primary["calendar_id"]
    wait_for("a push subscription", lambda: provider.push_subscriptions(sandbox), 60)

    def at_provider(summary):  # Google keeps a deleted event, as cancelled
        return [
            e
            for e in sandbox.events(ADA)
            if e.get(provider.title) == summary and e.get("status") != "cancelled"
        ]

    start = at(3, 14)
    booking = {"event_id": "booking-1", "start": start, "end": start + timedelta(minutes=45)}

    # The insert takes effect at the provider; its answer is held while we kill the worker.
    sandbox.fail_next("POST", provider.insert_path, None, hold=30)
    client.upsert_event(calendar_id, {**booking, "summary": "Booked", "tzid": "Europe/Berlin"})
    [held] = wait_for("the insert at the provider", sandbox.held_requests, 60)
    kill_the_worker_holding(held.peer_port)
    wait_for("the write reconciled", lambda: service.shell_json(WRITES_QUERY) == ["done"], 150, 1)
    assert len(at_provider("Booked")) == 1
    wait_for("the held answer to go nowhere", lambda: not sandbox.held_requests(), 40)
    assert len(sandbox.requests("POST", provider.insert_path)) == 2  # the lost answer, a retry

    # Push is broken: the change still arrives, by the poll.
    sandbox.pause_push()
    sandbox.put_event(ADA, provider.calendar, provider.body("Polled", at(2, 9)))
    window = {
        "from_date": datetime.now(UTC).date(),
        "to_date": (datetime.now(UTC) + timedelta(days=5)).date(),
    }
    wait_for(
        "the change by polling",
        lambda: any(e["summary"] == "Polled" for e in client.read_events(**window)),
        150,
        2,
    )
    assert any(d.error == DROPPED[1] for d in sandbox.deliveries)  # push really was dropped

    # The write recorded after the crash still addresses the one resource.
    client.upsert_event(calendar_id, {**booking, "summary": "Booked (moved)", "tzid": "UTC"})
    wait_for("the move at the provider", lambda: at_provider("Booked (moved)"), 60)
    assert not at_provider("Booked")
    client.delete_event(calendar_id, "booking-1")
    wait_for("the delete at the provider", lambda: not at_provider("Booked (moved)"), 60)

    # Push back; the access token and the sync state expire at once, and the first list call
    # is throttled: refreshed, backed off, resynchronised, and nothing lost or twice.
    receiver = Receiver()
    client.create_notification_channel(receiver.url, calendar_ids=(calendar_id,))
    sandbox.pause_push(False)
    refreshes = len(sandbox.requests("POST", provider.token_path))
    sandbox.expire_access_tokens()
    provider.expire_sync_state(sandbox)
    sandbox.fail_next("GET", provider.list_path, 429, retry_after=2)
    sandbox.put_event(ADA, provider.calendar, provider.body("After expiry", at(2, 11)))

    def cached():
        return [e["summary"] for e in client.read_events(**window)]

    wait_for("the change after the expiries", lambda: "After expiry" in cached(), 150, 1)
    assert cached().count("After expiry") == cached().count("Polled") == 1
    assert "Booked (moved)" not in cached()
    assert len(sandbox.requests("POST", provider.token_path)) > refreshes
    assert 429 in [r.status for r in sandbox.requests("GET", provider.list_path)]

    # The user revokes our access: the profile is disconnected, the integrator told once.
    sandbox.revoke(ADA)
    sandbox.put_event(ADA, provider.calendar, provider.body("After revoke", at(2, 13)))

    def disconnections():
        return [
            body
            for _, body in receiver.received
            if body.get("notification", {}).get("type") == "profile_disconnected"
        ]

    wait_for("profile_disconnected", disconnections, 150, 1)
    sandbox.put_event(ADA, provider.calendar, provider.body("After that", at(2, 15)))
    time.sleep(5)  # a second sync of a disconnected profile must stay quiet
    assert len(disconnections()) == 1


def kill_the_worker_holding(port: int) -> None:
    """SIGKILL the process whose TCP connection from `port` waits on the provider: the
    delivery process, which makes the writes (serve starts it again), or a django-q worker
    (its cluster replaces it); never the web server or the cluster itself."""
    sockets = subprocess.run(
        ["ss", "-Htnp", "src", f"127.0.0.1:{port}"], capture_output=True, text=True, check=True
    ).stdout
    pid = int(re.search(r"pid=(\d+)", sockets).group(1))
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        command = cmdline.read()
    assert b"deliver" in command or b"qcluster" in command, "not made by a worker"
    os.kill(pid, signal.SIGKILL)
