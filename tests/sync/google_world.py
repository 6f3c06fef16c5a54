"""A Google world for tests and benches: the provider sandbox, a profile connected to it, the
real service pointed at it, and Google-shaped event bodies."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from accounts.models import Profile
from sync import services
from sync.connect import connect_oauth_profile
from sync.providers import base
from sync.sandbox.google import GoogleSandbox
from tests.live_service import LiveService

SCOPES = ["openid", "email", "https://www.googleapis.com/auth/calendar"]


def connect_google(sandbox: GoogleSandbox, email: str, client_id: str) -> Profile:
    """A Google profile for `email` with tokens the sandbox issued (what the hosted connect
    stores), and its calendars discovered."""
    access, refresh = sandbox.issue_tokens(email, client_id, SCOPES)
    profile = connect_oauth_profile(
        account=None,
        provider_key=Profile.Provider.GOOGLE,
        credentials={
            "access_token": access,
            "refresh_token": refresh,
            "expires_at": time.time() + 3599,
        },
        provider_account=base.ProviderAccount(f"sub-{email}", email, "google"),
    )
    services.discover_calendars(profile_id=profile.pk)
    return profile


def google_service(
    sandbox: GoogleSandbox,
    *,
    database_url: str,
    workdir: Path,
    client: tuple[str, str],
    email: str,
) -> LiveService:
    """`manage.py serve` (not started) with every Google URL, our client and the push address
    pointed at the sandbox; the client and `email` registered there."""
    client_id, client_secret = client
    service = LiveService(database_url=database_url, workdir=workdir)
    service.env_overrides = {
        "API_RATE_LIMIT_PER_SECOND": "0",
        "API_RATE_LIMIT_PER_MINUTE": "0",
        "GOOGLE_CLIENT_ID": client_id,
        "GOOGLE_CLIENT_SECRET": client_secret,
        "GOOGLE_ACCOUNTS_URL": sandbox.url,
        "GOOGLE_OAUTH2_URL": sandbox.url,
        "GOOGLE_APIS_URL": sandbox.url,
        "PUBLIC_BASE_URL": service.url,  # where Google posts: the sandbox allows loopback http
        "PUSH_CALLBACK_ALLOWED_NETWORKS": "127.0.0.1/32",
    }
    sandbox.add_client(
        client_id, client_secret, [f"{service.url}/connect/oauth/complete/google-oauth2/"]
    )
    sandbox.add_user(email, name=email.split("@")[0].title())
    return service


def at(days: float, hour: int = 10) -> datetime:
    """`hour`:00 UTC, `days` from today."""
    day = (datetime.now(UTC) + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def timed(summary: str, start: datetime, minutes: int = 30, **fields) -> dict:
    """A Google event body with UTC times."""
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    end = start + timedelta(minutes=minutes)
    return {
        "summary": summary,
        "start": {"dateTime": start.strftime(stamp), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime(stamp), "timeZone": "UTC"},
        **fields,
    }


def invitation(summary: str, start: datetime, invitee: str) -> dict:
    """An event someone else organizes, with `invitee` not having answered yet."""
    return {
        **timed(summary, start),
        "organizer": {"email": "boss@example.com"},
        "attendees": [
            {"email": "boss@example.com", "organizer": True, "responseStatus": "accepted"},
            {"email": invitee, "responseStatus": "needsAction"},
        ],
    }
