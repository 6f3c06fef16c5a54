"""Recurring managed events and conferencing through Cronofy's Python SDK: a client for a
connected calendar's account on the live test server, and the instances it reads back."""

from datetime import UTC, datetime, timedelta

import pycronofy

from calendars.models import Calendar, Event, ManagedEventWrite
from sync.providers.base import WriteContext
from sync.providers.registry import provider_class
from tests.factories import make_access_token, make_application

# A Monday two weeks ahead, inside the sync window.
_today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
MONDAY = _today + timedelta(days=14 - _today.weekday())


def sdk_for(calendar: Calendar, base_url: str) -> pycronofy.Client:
    application = make_application()
    client = pycronofy.Client(
        client_id=application.client_id,
        client_secret="integrator-secret",
        access_token=make_access_token(
            account=calendar.profile.account, application=application, scope="read_write"
        ),
    )
    client.request_handler.base_url = base_url
    return client


def standup(**fields) -> dict:
    return {
        "event_id": "standup",
        "summary": "Stand-up",
        "start": MONDAY,
        "end": MONDAY + timedelta(minutes=15),
        "tzid": "Europe/Berlin",
        **fields,
    }


def weekly(**rule) -> dict:
    return {"rules": [{"frequency": "weekly", "by_day": ["monday", "wednesday"], **rule}]}


def starts(*days: int) -> list[str]:
    return [(MONDAY + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in days]


def read_managed(client: pycronofy.Client) -> list[dict]:
    events = client.read_events(
        from_date=MONDAY.date() - timedelta(days=1),
        to_date=MONDAY.date() + timedelta(days=60),
        tzid="Etc/UTC",
        only_managed=True,
    )
    return sorted(events, key=lambda e: e["start"])


def assert_a_rerun_makes_no_call(calendar: Calendar) -> None:
    """The newest upsert, rendered again over what the provider answered, is no change: a
    retried or repeated write of the series reaches the provider no second time."""
    write = ManagedEventWrite.objects.filter(status="done", operation="upsert").latest("id")
    event = Event.objects.get(pk=write.event_id)
    adapter = provider_class(calendar.profile.provider)
    rendered = adapter.render_event(
        desired=write.desired,
        current=event.raw,
        context=WriteContext(
            uid=event.ical_uid or event.provider_key, instance_start=event.original_start
        ),
    )
    assert not rendered.changed
