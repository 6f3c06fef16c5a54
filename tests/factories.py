"""Hand-written `make_*` factories: explicit defaults, override what the test is about."""

import itertools
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, set_token_value
from oauthlib.common import generate_token

from accounts.models import Account, Profile
from calendars.models import Calendar
from calendars.types import EventData

_counter = itertools.count(1)


def make_account(*, email: str | None = None, **fields) -> Account:
    n = next(_counter)
    email = email or f"user{n}@example.com"
    user = get_user_model().objects.create_user(username=f"user{n}", email=email)
    return Account.objects.create(
        user=user, email=email, name=fields.pop("name", f"User {n}"), **fields
    )


def make_profile(*, account: Account | None = None, **fields) -> Profile:
    account = account or make_account()
    n = next(_counter)
    defaults = {
        "provider": Profile.Provider.CALDAV,
        "provider_service": "caldav",
        "provider_account_id": f"https://dav.example.com/principals/user{n}/",
        "profile_name": account.email,
        "credentials": {"username": f"user{n}", "password": "s3cret"},
    }
    return Profile.objects.create(account=account, **{**defaults, **fields})


def make_calendar(*, profile: Profile | None = None, **fields) -> Calendar:
    profile = profile or make_profile()
    n = next(_counter)
    defaults = {"provider_calendar_id": f"/calendars/cal{n}/", "name": f"Calendar {n}"}
    return Calendar.objects.create(profile=profile, **{**defaults, **fields})


def make_application(*, name: str = "Integrator", **fields) -> Application:
    defaults = {
        "client_type": Application.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
        "redirect_uris": "https://integrator.example.com/callback",
        "client_secret": "integrator-secret",
    }
    return Application.objects.create(name=name, **{**defaults, **fields})


def make_event_data(
    *, key: str | None = None, start: datetime | None = None, minutes: int = 30, **fields
) -> EventData:
    start = start or datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    return EventData(
        provider_key=key or f"uid-{next(_counter)}@example.com",
        start=start,
        end=start + timedelta(minutes=minutes),
        summary=fields.pop("summary", "Meeting"),
        **fields,
    )


def make_access_token(
    *,
    account: Account,
    application: Application | None = None,
    scope: str = "read_write",
    expires_in: int = 3600,
) -> str:
    """Issue an access token directly (as our OAuth provider would) and return its raw value."""
    raw = generate_token()
    token = AccessToken(
        user=account.user,
        application=application or make_application(),
        scope=scope,
        expires=timezone.now() + timedelta(seconds=expires_in),
    )
    set_token_value(token, raw)
    token.save()
    return raw
