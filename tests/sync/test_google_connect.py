"""Connecting Google through the hosted pages, against the provider sandbox: social-auth's
consent round trip over real HTTP, offline access, the identity from userinfo, the calendars
discovered and synced; a declined or partial consent gets a page and stores nothing."""

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from accounts.models import Profile
from calendars.models import Calendar, Event
from sync import services
from sync.pipeline import MissingCalendarAccess, require_calendar_access
from sync.sandbox.google import GoogleSandbox
from sync.services import engine
from tests.oauth_flow import exchange_code, make_integrator, redirect_params
from tests.sync.test_connect_flow import allow, start_authorize

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_ID, CLIENT_SECRET = "calsync-test", "calsync-test-secret"
CALLBACK = "http://testserver/connect/oauth/complete/google-oauth2/"
CAROL = "carol@example.com"


@pytest.fixture
def google(settings, monkeypatch):
    sandbox = GoogleSandbox(auto_approve_as=CAROL).start()
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = CLIENT_ID
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = CLIENT_SECRET
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_AUTHORIZATION_URL = f"{sandbox.url}/o/oauth2/auth"
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_ACCESS_TOKEN_URL = f"{sandbox.url}/token"
    settings.GOOGLE_APIS_URL = sandbox.url
    settings.GOOGLE_TOKEN_URL = f"{sandbox.url}/token"
    sandbox.add_client(CLIENT_ID, CLIENT_SECRET, [CALLBACK])
    sandbox.add_user(CAROL, name="Carol")
    sandbox.add_calendar(CAROL, "team@group.calendar.google.com", summary="Team")
    discoveries = []
    monkeypatch.setattr(engine, "enqueue_calendar_discovery", discoveries.append)
    monkeypatch.setattr(engine, "enqueue_sync", lambda calendar_id: None)
    sandbox.discoveries = discoveries
    yield sandbox
    sandbox.stop()


def consent_at_google(client) -> str:
    """POST the chooser's Google button, follow the browser to the sandbox's consent page
    (approved at once), and return where Google sends the browser back."""
    begin = client.post("/connect/oauth/login/google-oauth2/")
    assert begin.status_code == 302
    answer = requests.get(begin["Location"], allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:300]
    return answer.headers["Location"]


def test_google_connect_through_the_sandbox_discovers_and_syncs(client, google):
    google.put_event(
        CAROL,
        "primary",
        {
            "summary": "Lunch",
            "start": {"dateTime": "2026-12-20T12:00:00Z"},
            "end": {"dateTime": "2026-12-20T13:00:00Z"},
        },
    )
    integrator = make_integrator()
    start_authorize(client, integrator, provider_name="google")

    back = consent_at_google(client)
    assert back.startswith(CALLBACK)
    complete = client.get(urlsplit(back).path + "?" + urlsplit(back).query, follow=True)

    assert complete.status_code == 200
    profile = Profile.objects.get()
    assert profile.provider == "google" and profile.profile_name == CAROL
    assert profile.credentials["refresh_token"]  # offline access was asked and granted
    auth_request = google.requests("GET", r"/o/oauth2/auth")[0].query
    assert auth_request["access_type"] == "offline" and auth_request["prompt"] == "consent"
    assert sorted(auth_request["scope"].split()) == [
        "email",
        "https://www.googleapis.com/auth/calendar",
        "openid",
    ]  # only what we need
    assert google.discoveries == [profile.pk]

    [primary, team] = sorted(
        services.discover_calendars(profile_id=profile.pk), key=lambda c: not c.is_primary
    )
    assert primary.provider_calendar_id == CAROL and team.name == "Team"
    assert services.sync_calendar(calendar_id=primary.pk).status == "synced"
    assert Event.objects.get(calendar=primary).summary == "Lunch"

    code = redirect_params(allow(client, complete))["code"]
    body = exchange_code(client, integrator, code).json()
    assert body["linking_profile"]["profile_id"] == profile.public_id


def test_google_relink_keeps_the_profile(client, google):
    complete = client.get(consent_at_google(client).removeprefix("http://testserver"))
    assert complete.status_code == 302
    first = Profile.objects.get()
    client.logout()
    client.get(consent_at_google(client).removeprefix("http://testserver"))
    assert list(Profile.objects.values_list("pk", flat=True)) == [first.pk]
    assert Calendar.objects.filter(profile=first).count() == 0  # discovery runs in the worker


def test_google_consent_without_calendar_access_stores_nothing(client, google):
    google.set_granted_scopes(CAROL, ["openid", "email", "profile"])  # calendar unticked

    response = client.get(consent_at_google(client).removeprefix("http://testserver"))

    assert response.status_code == 400
    assert b"did not allow access to your calendars" in response.content
    assert not Profile.objects.exists()


def test_google_declined_consent_gets_a_page(client, google):
    begin = client.post("/connect/oauth/login/google-oauth2/")
    state = parse_qs(urlsplit(begin["Location"]).query)["state"][0]
    # What Google sends back when the user presses Cancel.
    response = client.get(
        "/connect/oauth/complete/google-oauth2/?"
        + urlencode({"error": "access_denied", "state": state})
    )
    assert response.status_code == 400
    assert b"You declined" in response.content
    assert not Profile.objects.exists()


@pytest.mark.parametrize(
    "backend, scope, allowed",
    [
        ("google-oauth2", "openid email https://www.googleapis.com/auth/calendar", True),
        ("google-oauth2", "openid email", False),
        ("microsoft-graph", "offline_access https://graph.microsoft.com/Calendars.ReadWrite", True),
        ("microsoft-graph", "Calendars.ReadWrite User.Read", True),
        ("microsoft-graph", "User.Read", False),
    ],
)
def test_require_calendar_access_reads_both_scope_notations(backend, scope, allowed):
    class Backend:
        name = backend

    try:
        require_calendar_access(Backend(), {"scope": scope})
        granted = True
    except MissingCalendarAccess:
        granted = False
    assert granted is allowed
