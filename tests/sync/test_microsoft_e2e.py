"""Microsoft end to end with the real processes: `manage.py serve` (web server + worker) on its
own database, the Graph sandbox standing in for Microsoft over real HTTP, a browser on the
hosted pages, and an integrator using pycronofy with a push channel to its own receiver.

Connect → calendars → first delta sync of 2,600 events over several pages, a weekly series with
a moved and a cancelled occurrence and a Windows-zone event, each exactly once → a change at
Microsoft reaches us as a subscription notification (after Graph's validation handshake),
is synced and reaches the integrator's channel → upsert / participation / delete through the
API reach Microsoft exactly once. Runs on SQLite, and on PostgreSQL when DATABASE_URL points
there.
"""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from sync.sandbox.microsoft import MicrosoftSandbox
from tests.sync.sandbox_world import (
    Receiver,
    at,
    graph_invitation,
    graph_meeting,
    integrator_client,
    microsoft_service,
    running_world,
    wait_for,
)

ADA = "ada@contoso.com"
CLIENT_ID, CLIENT_SECRET = "calsync-e2e", "calsync-e2e-secret"
SINGLES = 2600
_STAMP = "%Y-%m-%dT%H:%M:%S"
COUNT_QUERY = """
import json
from calendars.models import Event
print(json.dumps(Event.objects.filter(
    calendar__public_id=%r, is_deleted=False, event_id__isnull=True).count()))
"""


def seed(sandbox: MicrosoftSandbox) -> str:
    for n in range(SINGLES):
        sandbox.put_event(ADA, None, graph_meeting(f"Seeded {n}", at(1 + n % 90, 6 + n % 12)))
    sandbox.put_event(
        ADA,
        None,
        {
            "subject": "Berlin",
            "start": {"dateTime": at(2, 9).strftime(_STAMP), "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": at(2, 10).strftime(_STAMP), "timeZone": "W. Europe Standard Time"},
        },
    )
    series = sandbox.put_event(
        ADA,
        None,
        {
            **graph_meeting("Standup", at(-21, 9), 15),
            "recurrence": {
                "pattern": {
                    "type": "weekly",
                    "interval": 1,
                    "daysOfWeek": [at(-21).strftime("%A").lower()],
                },
                "range": {
                    "type": "numbered",
                    "startDate": at(-21).strftime("%Y-%m-%d"),
                    "numberOfOccurrences": 10,
                },
            },
        },
    )
    occurrences = [
        e
        for e in sandbox.calendar_view(ADA, at(-30), at(90))
        if e.get("seriesMasterId") == series["id"]
    ]
    sandbox.put_event(ADA, None, {"id": occurrences[2]["id"], "subject": "Standup (moved)"})
    sandbox.delete_event(ADA, None, occurrences[4]["id"])
    return series["id"]


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    with running_world(
        request.param,
        tmp_path,
        MicrosoftSandbox(),
        microsoft_service,
        ADA,
        (CLIENT_ID, CLIENT_SECRET),
    ) as both:
        yield both


def test_microsoft_end_to_end_through_the_real_service(world):
    sandbox, service = world
    seed(sandbox)
    client = integrator_client(service, backend="microsoft-graph", provider_name="office365")

    calendars = wait_for("calendars", client.list_calendars, timeout=60)
    [primary] = [c for c in calendars if c["calendar_primary"]]
    expected = SINGLES + 1 + 9  # the Berlin meeting, ten weekly occurrences but one cancelled
    wait_for(
        "the first sync",
        lambda: service.shell_json(COUNT_QUERY % primary["calendar_id"]) == expected,
        timeout=240,
        every=1,
    )
    assert len(sandbox.requests("GET", r"calendarView/delta")) >= 3  # pages
    window = {
        "from_date": (datetime.now(UTC) - timedelta(days=30)).date(),
        "to_date": (datetime.now(UTC) + timedelta(days=60)).date(),
    }
    events = list(client.read_events(calendar_ids=(primary["calendar_id"],), **window))
    standups = [e for e in events if e["summary"].startswith("Standup")]
    assert len(standups) == 9 and sum(e["summary"] == "Standup (moved)" for e in standups) == 1

    # A subscription (Graph validated our receiver first); a change reaches the integrator.
    receiver = Receiver()
    client.create_notification_channel(receiver.url, calendar_ids=(primary["calendar_id"],))
    wait_for("a subscription at Microsoft", sandbox.subscriptions, timeout=60)
    changed_at = time.monotonic()
    sandbox.put_event(ADA, None, graph_meeting("Pushed", at(2, 15)))
    [arrived, *_] = wait_for(
        "the change notification", lambda: receiver.changes_after(changed_at), 30
    )
    latency = arrived - changed_at
    print(json.dumps({"backend": service.database_url.split(":")[0], "push_s": round(latency, 3)}))
    assert latency < 5, latency

    # Writes through the API reach Microsoft exactly once.
    start = at(3, 14)
    client.upsert_event(
        primary["calendar_id"],
        {
            "event_id": "booking-1",
            "summary": "Booked",
            "start": start,
            "end": start + timedelta(minutes=45),
            "tzid": "Europe/Berlin",
        },
    )

    def booked():
        return [e for e in sandbox.events(ADA) if e.get("subject") == "Booked"]

    [created] = wait_for("the upsert at Microsoft", booked, timeout=60)
    busy = list(
        client.read_free_busy(
            calendar_ids=(primary["calendar_id"],),
            from_date=datetime.now(UTC).date(),
            to_date=(datetime.now(UTC) + timedelta(days=5)).date(),
        )
    )
    assert any(b["start"].startswith(start.strftime("%Y-%m-%dT%H:%M")) for b in busy), busy[:5]

    invite = sandbox.put_event(
        ADA,
        None,
        graph_invitation("Review", at(4, 10), ADA),
    )

    def review():
        found = [e for e in client.read_events(**window) if e["summary"] == "Review"]
        return found[0] if found else None

    event = wait_for("the invitation in the cache", review, timeout=60)
    client.change_participation_status(primary["calendar_id"], event["event_uid"], "accepted")
    wait_for(
        "the answer at Microsoft",
        lambda: sandbox.event(ADA, invite["id"])["responseStatus"]["response"] == "accepted",
        timeout=60,
    )

    client.delete_event(primary["calendar_id"], "booking-1")
    wait_for("the delete at Microsoft", lambda: not booked(), timeout=60)
    creates = [r for r in sandbox.requests("POST", r"/events$") if r.status == 201]
    assert len(creates) >= 1 and created["transactionId"]
    assert len({r.path for r in creates}) == 1
