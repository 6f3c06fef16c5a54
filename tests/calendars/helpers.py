"""Helpers for the API tests: authenticated GETs and cached events written through services."""

from datetime import UTC, date, datetime, time, timedelta

from calendars.models import Event
from calendars.services import apply_provider_events
from tests.factories import make_event_data


def auth(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def api_get(client, path: str, token: str | None = None, params=None):
    headers = auth(token) if token else {}
    return client.get(path, params or {}, **headers)


def add_event(calendar, *, start: datetime, minutes: int = 30, **fields) -> Event:
    """A timed event cached through calendars.services (change log included)."""
    data = make_event_data(start=start, minutes=minutes, **fields)
    apply_provider_events(calendar=calendar, upserts=[data])
    return Event.objects.get(calendar=calendar, provider_key=data.provider_key)


def add_all_day_event(calendar, *, first: date, days: int = 1, **fields) -> Event:
    """An all-day event: dates with exclusive end, and the same dates at 00:00 UTC."""
    last = first + timedelta(days=days)
    data = make_event_data(
        start=datetime.combine(first, time.min, tzinfo=UTC),
        minutes=days * 24 * 60,
        is_all_day=True,
        start_date=first,
        end_date=last,
        **fields,
    )
    apply_provider_events(calendar=calendar, upserts=[data])
    return Event.objects.get(calendar=calendar, provider_key=data.provider_key)


def make_managed(event: Event, application, event_id: str) -> Event:
    Event.objects.filter(pk=event.pk).update(application=application, event_id=event_id)
    event.refresh_from_db()
    return event
