"""Google end to end with the real processes: `manage.py serve` (web server + worker) on its own
database, the provider sandbox standing in for Google over real HTTP, a browser on the hosted
pages, and an integrator using pycronofy with a push channel to its own receiver.

Connect → calendars listed → first sync of 2,600 events over two pages plus a series with a
moved and a cancelled instance (each instance once) → a change at Google is pushed to us,
synced, and reaches the integrator's channel → upsert / participation / delete through the API
reach Google exactly once. Runs on SQLite, and on PostgreSQL when DATABASE_URL points there.
"""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from sync.sandbox.google import GoogleSandbox
from tests.sync.sandbox_world import (
    EVENT_COUNT_QUERY,
    Receiver,
    at,
    google_service,
    integrator_client,
    invitation,
    running_world,
    timed,
    wait_for,
)

ADA = "ada@example.com"
CLIENT_ID, CLIENT_SECRET = "calsync-e2e", "calsync-e2e-secret"
SINGLES = 2600


def seed(sandbox: GoogleSandbox) -> dict:
    for n in range(SINGLES):
        sandbox.put_event(ADA, "primary", timed(f"Seeded {n}", at(1 + n % 90, 6 + n % 12)))
    series = sandbox.put_event(
        ADA,
        "primary",
        {**timed("Standup", at(-21, 9), 15), "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=10"]},
    )
    sandbox.put_event(
        ADA,
        "primary",
        {
            **timed("Standup (moved)", at(-13, 11), 15),
            "recurringEventId": series["id"],
            "originalStartTime": timed("", at(-14, 9))["start"],
        },
    )
    sandbox.delete_event(ADA, "primary", f"{series['id']}_{at(7, 9):%Y%m%dT%H%M%SZ}")
    return series


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    client = (CLIENT_ID, CLIENT_SECRET)
    with running_world(
        request.param, tmp_path, GoogleSandbox(), google_service, ADA, client
    ) as both:
        yield both


def test_google_end_to_end_through_the_real_service(world):
    sandbox, service = world
    series = seed(sandbox)
    client = integrator_client(service, backend="google-oauth2", provider_name="google")

    # Calendars listed and the first sync done by the worker: each instance exactly once.
    calendars = wait_for("calendars", client.list_calendars, timeout=60)
    [primary] = [c for c in calendars if c["calendar_primary"]]
    expected = SINGLES + 9  # ten weekly instances, one cancelled
    wait_for(
        "the first sync",
        lambda: service.shell_json(EVENT_COUNT_QUERY % ADA) == expected,
        timeout=240,
        every=1,
    )
    pages = sandbox.requests("GET", r"/calendars/.*/events$")
    assert len({tuple(sorted(p.query.items())) for p in pages}) >= 2  # pageToken loop
    standups = [
        e
        for e in client.read_events(
            calendar_ids=(primary["calendar_id"],),
            from_date=(datetime.now(UTC) - timedelta(days=30)).date(),
            to_date=(datetime.now(UTC) + timedelta(days=60)).date(),
        )
        if e["summary"].startswith("Standup")
    ]
    assert len(standups) == 9 and sum(e["summary"] == "Standup (moved)" for e in standups) == 1
    assert {e["event_uid"] for e in standups}  # cached under the series
    assert series["recurrence"]

    # Push: subscribed at discovery; a change at Google reaches the integrator's channel.
    receiver = Receiver()
    client.create_notification_channel(receiver.url, calendar_ids=(primary["calendar_id"],))
    wait_for("a push channel at Google", lambda: sandbox.channels(), timeout=60)
    changed_at = time.monotonic()
    sandbox.put_event(ADA, "primary", timed("Pushed", at(2, 15)))
    [arrived, *_] = wait_for(
        "the change notification", lambda: receiver.changes_after(changed_at), 30
    )
    latency = arrived - changed_at
    print(
        json.dumps(
            {"backend": service.database_url.split(":")[0], "push_to_callback_s": round(latency, 3)}
        )
    )
    assert latency < 5, latency

    # Writes through the API reach Google exactly once.
    start = at(3, 14).replace(tzinfo=None)
    client.upsert_event(
        primary["calendar_id"],
        {
            "event_id": "booking-1",
            "summary": "Booked",
            "start": start.replace(tzinfo=UTC),
            "end": (start + timedelta(minutes=45)).replace(tzinfo=UTC),
            "tzid": "Europe/Berlin",
        },
    )

    def booked():
        return [e for e in sandbox.events(ADA) if e.get("summary") == "Booked"]

    [created] = wait_for("the upsert at Google", booked, timeout=60)
    assert created["status"] == "confirmed"
    busy = list(
        client.read_free_busy(
            calendar_ids=(primary["calendar_id"],),
            from_date=datetime.now(UTC).date(),
            to_date=(datetime.now(UTC) + timedelta(days=5)).date(),
        )
    )
    assert any(b["start"].startswith(start.strftime("%Y-%m-%dT%H:%M")) for b in busy), busy[:5]

    invited = sandbox.put_event(ADA, "primary", invitation("Review", at(4, 10), ADA))

    def review():
        window = {
            "from_date": datetime.now(UTC).date(),
            "to_date": (datetime.now(UTC) + timedelta(days=6)).date(),
        }
        found = [e for e in client.read_events(**window) if e["summary"] == "Review"]
        return found[0] if found else None

    event = wait_for("the invitation in the cache", review, timeout=60)
    client.change_participation_status(primary["calendar_id"], event["event_uid"], "accepted")
    wait_for(
        "the answer at Google",
        lambda: (
            [a["responseStatus"] for a in sandbox.event(ADA, invited["id"])["attendees"]]
            == ["accepted", "accepted"]
        ),
        timeout=60,
    )

    client.delete_event(primary["calendar_id"], "booking-1")
    wait_for(
        "the delete at Google",
        lambda: all(e["status"] == "cancelled" for e in booked()),
        timeout=60,
    )
    inserts = sandbox.requests("POST", r"/calendars/.*/events$")
    assert len([r for r in inserts if r.status == 200]) == 1  # one insert, never a twin
    assert len(booked()) == 1
