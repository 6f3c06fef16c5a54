"""Helpers for the API tests: one shared test world, authenticated GETs, the pycronofy client
pointed at a live server, and cached events written through services."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pycronofy
from oauth2_provider.models import Application

from accounts.models import Account, Profile
from calendars.models import Calendar, Event
from calendars.services import apply_provider_events
from tests.factories import (
    make_access_token,
    make_account,
    make_application,
    make_calendar,
    make_event_data,
    make_profile,
)


@dataclass(frozen=True)
class World:
    """An account with one profile and one calendar, and an integrator holding its token."""

    account: Account
    application: Application
    profile: Profile
    calendar: Calendar
    token: str

    @property
    def headers(self) -> dict:
        return auth(self.token)


def make_world(
    *,
    email: str | None = "ada@example.com",
    scope: str = "read_write",
    calendar_name: str | None = "Work",
    profile_name: str | None = None,
) -> World:
    """`None` leaves a value to the factory's default (a unique email, "Calendar <n>", and a
    profile named after the account's email)."""
    account = make_account(email=email)
    application = make_application()
    profile_fields = {} if profile_name is None else {"profile_name": profile_name}
    profile = make_profile(account=account, **profile_fields)
    calendar_fields = {} if calendar_name is None else {"name": calendar_name}
    calendar = make_calendar(profile=profile, **calendar_fields)
    token = make_access_token(account=account, application=application, scope=scope)
    return World(account, application, profile, calendar, token)


def sdk_client(world: World, base_url: str) -> pycronofy.Client:
    """Cronofy's Python SDK, sending both API and app (OAuth) requests to `base_url`."""
    client = pycronofy.Client(
        client_id=world.application.client_id,
        # The application stores only a hash of its secret: this is make_application's raw one.
        client_secret="integrator-secret",
        access_token=world.token,
    )
    client.request_handler.base_url = base_url
    client.app_base_url = base_url
    return client


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
