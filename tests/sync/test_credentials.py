"""Fresh OAuth credentials: refreshed shortly before expiry, one refresh at a time per profile
(all waiters use the new token), a rotated refresh token stored encrypted, a transient failure
retried and never a disconnect, invalid_grant disconnects once, and a provider's 401 forces one
refresh before it counts. The token endpoint is a real HTTP server on 127.0.0.1; the provider is
a test double registered like any adapter."""

import json
import threading
import time

import pytest
from django.db import connection
from werkzeug import Response

from accounts.models import Profile
from calendars.models import Calendar
from sync import services
from sync.connect import connect_oauth_profile
from sync.models import ProfileSyncState, SyncActivity
from sync.providers import base, registry
from sync.services import credentials, engine
from tests.factories import make_account, make_profile

pytestmark = pytest.mark.django_db(transaction=True)

DISCONNECTS: list[str] = []


def record_disconnect(profile) -> None:
    """settings.PROFILE_DISCONNECTED_HOOKS entry: what integrators would be told."""
    DISCONNECTS.append(profile.public_id)


class TokenEndpoint:
    """Counts refreshes; answers like Google's token endpoint (after `delay` seconds)."""

    def __init__(self, httpserver, *, status=200, body=None, delay=0.0):
        self.calls = 0
        self.lock = threading.Lock()
        self.status, self.body, self.delay = status, body, delay
        httpserver.expect_request("/token", method="POST").respond_with_handler(self.handle)

    def handle(self, request):
        with self.lock:
            self.calls += 1
            n = self.calls
        time.sleep(self.delay)
        body = self.body or {
            "access_token": f"access-{n}",
            "refresh_token": f"refresh-{n}",
            "expires_in": 3599,
            "token_type": "Bearer",
        }
        return Response(json.dumps(body), status=self.status, content_type="application/json")


@pytest.fixture(autouse=True)
def oauth_settings(settings, httpserver):
    settings.GOOGLE_TOKEN_URL = httpserver.url_for("/token")
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = "our-client-id"
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = "our-client-secret"
    settings.PROFILE_DISCONNECTED_HOOKS = ["tests.sync.test_credentials.record_disconnect"]
    DISCONNECTS.clear()


def google_profile(*, expires_in: float = 30, access_token: str = "access-0") -> Profile:
    return make_profile(
        account=make_account(),
        provider=Profile.Provider.GOOGLE,
        provider_service="google",
        provider_account_id=f"google-{time.monotonic_ns()}",
        credentials={
            "access_token": access_token,
            "refresh_token": "refresh-0",
            "expires_at": time.time() + expires_in,
        },
    )


def token_refreshes(profile) -> list[tuple[str, str]]:
    return list(
        SyncActivity.objects.filter(profile=profile, kind=SyncActivity.Kind.TOKEN_REFRESH)
        .order_by("pk")
        .values_list("outcome", "detail")
    )


def test_fresh_credentials_keeps_a_token_that_is_not_expiring(httpserver):
    endpoint = TokenEndpoint(httpserver)
    profile = google_profile(expires_in=3000)
    assert credentials.fresh_credentials(profile)["access_token"] == "access-0"
    assert endpoint.calls == 0


def test_fresh_credentials_refreshes_before_expiry_and_stores_the_rotated_token(httpserver):
    endpoint = TokenEndpoint(httpserver)
    profile = google_profile(expires_in=30)
    fresh = credentials.fresh_credentials(profile)
    assert fresh["access_token"] == "access-1" and fresh["refresh_token"] == "refresh-1"
    assert endpoint.calls == 1
    assert token_refreshes(profile) == [("refreshed", "")]  # for the console's timeline
    stored = Profile.objects.get(pk=profile.pk).credentials
    assert stored["refresh_token"] == "refresh-1" and stored["expires_at"] > time.time() + 3000
    with connection.cursor() as cursor:  # encrypted at rest, like every credential
        cursor.execute("SELECT credentials FROM accounts_profile WHERE id = %s", [profile.pk])
        assert "refresh-1" not in str(cursor.fetchone()[0])


@pytest.mark.postgres
def test_fresh_credentials_concurrent_refresh_calls_the_endpoint_once(httpserver):
    endpoint = TokenEndpoint(httpserver, delay=0.5)
    profile = google_profile(expires_in=10)
    seen, errors = [], []

    def worker():
        try:
            seen.append(credentials.fresh_credentials(profile)["access_token"])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert endpoint.calls == 1
    assert seen == ["access-1"] * 6


def test_fresh_credentials_invalid_grant_disconnects_once(httpserver):
    TokenEndpoint(httpserver, status=400, body={"error": "invalid_grant"})
    profile = google_profile(expires_in=10)
    for _ in range(2):
        with pytest.raises(base.AuthExpired):
            credentials.fresh_credentials(profile)
    profile.refresh_from_db()
    assert profile.status == Profile.Status.DISCONNECTED
    assert "invalid_grant" in profile.disconnected_reason
    assert [profile.public_id] == DISCONNECTS
    [(outcome, error)] = token_refreshes(profile)  # the second call no longer asks
    assert outcome == "refused" and "invalid_grant" in error


def test_fresh_credentials_token_endpoint_500_is_retried_and_never_disconnects(
    httpserver, monkeypatch
):
    monkeypatch.setattr(credentials, "TRANSIENT_RETRY_DELAYS", (0.01, 0.01))
    endpoint = TokenEndpoint(httpserver, status=500, body={"error": "server_error"})
    profile = google_profile(expires_in=10)
    with pytest.raises(base.TemporaryError):
        credentials.fresh_credentials(profile)
    assert endpoint.calls == 3
    profile.refresh_from_db()
    assert profile.is_connected and DISCONNECTS == []
    assert profile.credentials["access_token"] == "access-0"  # nothing lost either


class DoubleProvider(base.Provider):
    """A test double of an OAuth provider: one calendar, which accepts only `valid_token`."""

    key = "google"
    valid_token = "access-1"
    fetches: list[str] = []

    def __init__(self, creds: base.OAuthCredentials, **options):
        self.creds = creds

    def _check(self):
        DoubleProvider.fetches.append(self.creds.access_token)
        if self.creds.access_token != self.valid_token:
            raise base.AuthExpired("401 Unauthorized")

    def describe_account(self):
        return base.ProviderAccount(provider_account_id="double", profile_name="ada@example.com")

    def list_calendars(self):
        self._check()
        return [base.ProviderCalendar(provider_calendar_id="primary", name="Primary")]

    def fetch_changes(self, calendar_id, cursor, **known):
        self._check()
        return base.ChangeSet(cursor="cursor-1", is_full=cursor is None)


def test_sync_provider_401_forces_one_refresh_then_succeeds(httpserver, monkeypatch):
    endpoint = TokenEndpoint(httpserver)
    monkeypatch.setitem(registry.PROVIDERS, "google", DoubleProvider)
    DoubleProvider.fetches = []
    profile = google_profile(expires_in=3000)  # not expiring: only the 401 triggers it
    calendar = Calendar.objects.create(profile=profile, provider_calendar_id="primary", name="P")

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "synced", outcome
    assert endpoint.calls == 1
    assert DoubleProvider.fetches[:2] == ["access-0", "access-1"]
    assert Profile.objects.get(pk=profile.pk).is_connected


def test_sync_provider_401_after_a_refresh_counts_as_expired(httpserver, monkeypatch):
    TokenEndpoint(httpserver)
    monkeypatch.setitem(registry.PROVIDERS, "google", DoubleProvider)
    monkeypatch.setattr(DoubleProvider, "valid_token", "never")
    profile = google_profile(expires_in=3000)
    calendar = Calendar.objects.create(profile=profile, provider_calendar_id="primary", name="P")

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "failed" and "AuthExpired" in outcome.error
    assert Profile.objects.get(pk=profile.pk).status == Profile.Status.DISCONNECTED
    assert [profile.public_id] == DISCONNECTS


def test_oauth_connect_discovers_calendars_and_queues_their_sync(httpserver, monkeypatch):
    TokenEndpoint(httpserver)
    monkeypatch.setitem(registry.PROVIDERS, "google", DoubleProvider)
    discoveries, syncs = [], []
    monkeypatch.setattr(engine, "enqueue_calendar_discovery", discoveries.append)
    monkeypatch.setattr(engine, "enqueue_sync", syncs.append)
    profile = connect_oauth_profile(
        account=None,
        provider_key=Profile.Provider.GOOGLE,
        credentials={"access_token": "expired", "refresh_token": "r", "expires_at": 0},
        provider_account=base.ProviderAccount("google-ada", "ada@example.com"),
    )
    assert discoveries == [profile.pk]  # queued after commit; no network in the request

    [calendar] = services.discover_calendars(profile_id=profile.pk)

    assert calendar.provider_calendar_id == "primary" and syncs == [calendar.pk]
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"


def test_tick_retries_discovery_of_profiles_without_calendars(monkeypatch):
    monkeypatch.setitem(registry.PROVIDERS, "google", DoubleProvider)
    discoveries = []
    monkeypatch.setattr(engine, "enqueue_calendar_discovery", discoveries.append)
    profile = google_profile(expires_in=3000)
    ProfileSyncState.objects.create(profile=profile, calendars_refreshed_at=None)
    with_calendar = google_profile(expires_in=3000)
    ProfileSyncState.objects.create(profile=with_calendar)
    Calendar.objects.create(profile=with_calendar, provider_calendar_id="primary", name="P")

    services.enqueue_due_syncs(enqueue=lambda ids, claim: None)
    services.enqueue_due_syncs(enqueue=lambda ids, claim: None)  # claimed: not again this interval

    assert discoveries == [profile.pk]


def _relink_meanwhile(profile, relinked: dict, status: int, body: dict):
    """A token endpoint during whose answer the end-user relinks (new tokens are stored)."""

    def handler(request):
        stored = Profile.objects.get(pk=profile.pk)
        stored.credentials = relinked
        stored.save()
        return Response(json.dumps(body), status=status, content_type="application/json")

    return handler


@pytest.mark.parametrize(
    "status, body",
    [
        (200, {"access_token": "late", "refresh_token": "late-r", "expires_in": 3600}),
        (400, {"error": "invalid_grant"}),  # the old grant died: not a reason to disconnect
    ],
)
def test_fresh_credentials_relink_during_a_refresh_wins(httpserver, status, body):
    profile = google_profile(expires_in=10)
    relinked = {
        "access_token": "relinked",
        "refresh_token": "new-r",
        "expires_at": time.time() + 3000,
    }
    httpserver.expect_oneshot_request("/token").respond_with_handler(
        _relink_meanwhile(profile, relinked, status, body)
    )
    assert credentials.fresh_credentials(profile)["access_token"] == "relinked"
    stored = Profile.objects.get(pk=profile.pk)
    assert stored.credentials["refresh_token"] == "new-r"
    assert stored.is_connected and DISCONNECTS == []


def test_sync_dead_grant_asks_the_token_endpoint_once(httpserver, monkeypatch):
    endpoint = TokenEndpoint(httpserver, status=400, body={"error": "invalid_grant"})
    monkeypatch.setitem(registry.PROVIDERS, "google", DoubleProvider)
    profile = google_profile(expires_in=10)
    calendar = Calendar.objects.create(profile=profile, provider_calendar_id="primary", name="P")

    assert services.sync_calendar(calendar_id=calendar.pk).status == "failed"
    assert services.sync_calendar(calendar_id=calendar.pk).status == "skipped"  # disconnected

    assert endpoint.calls == 1 and [profile.public_id] == DISCONNECTS
