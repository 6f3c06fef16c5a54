"""End to end through Django's test client: authorize -> connect -> consent -> code -> token ->
refresh -> revoke, with CalDAV against the real Radicale server and Google stubbed at HTTP."""

import json
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import responses

from accounts.models import Account, Profile
from calendars.models import Calendar, ChangeLogEntry
from tests.oauth_flow import (
    api_status,
    authorize_params,
    exchange_code,
    make_integrator,
    redirect_params,
    refresh,
    revoke,
)

pytestmark = [pytest.mark.urls("tests.probe_urls"), pytest.mark.django_db]

FEED = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nX-WR-CALNAME:Team feed\r\n"
    "BEGIN:VEVENT\r\nUID:1@test\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:20261123T090000Z\r\n"
    "DTEND:20261123T100000Z\r\nSUMMARY:Standup\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def start_authorize(client, integrator, **overrides):
    """The integrator sends the browser to /oauth/authorize the way pycronofy builds it."""
    overrides = {"provider_name": "", "avoid_linking": "False", **overrides}
    params = authorize_params(integrator, **overrides)
    response = client.get("/oauth/authorize", params, follow=True)
    return response


def connect_caldav(client, radicale_server, *, password="alice-pw"):
    return client.post(
        "/connect/caldav/",
        {"server_url": radicale_server.base_url + "/", "username": "alice", "password": password},
    )


def allow(client, consent_page):
    form = consent_page.context["form"]
    data = {k: v for k, v in form.initial.items() if v is not None}
    data["allow"] = "on"
    query = consent_page.request["QUERY_STRING"]
    return client.post(f"/oauth/authorize?{query}", data)


def test_flow_caldav_connect_consent_token_refresh_revoke(client, radicale_server, caldav_calendar):
    integrator = make_integrator(name="Acme Scheduling")

    chooser = start_authorize(client, integrator)
    assert chooser.redirect_chain[-1][0] == "/connect/"
    assert b"Acme Scheduling" in chooser.content
    assert b"Apple iCloud" in chooser.content

    connected = connect_caldav(client, radicale_server)
    assert connected.status_code == 302
    consent = client.get(connected["Location"])
    assert consent.status_code == 200
    assert b"Acme Scheduling" in consent.content
    assert b"alice@127.0.0.1" in consent.content
    assert b"See the events in your calendars" in consent.content

    code = redirect_params(allow(client, consent))["code"]
    tokens = exchange_code(client, integrator, code)
    assert tokens.status_code == 200
    body = tokens.json()
    account = Account.objects.get()
    profile = Profile.objects.get()
    assert body["account_id"] == body["sub"] == account.public_id
    assert body["linking_profile"] == {
        "provider_name": "caldav",
        "provider_service": "caldav",
        "profile_id": profile.public_id,
        "profile_name": "alice@127.0.0.1",
    }
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert tokens["Cache-Control"] == "no-store"
    assert profile.credentials["password"] == "alice-pw"
    assert Calendar.objects.filter(profile=profile, provider_calendar_id=caldav_calendar).exists()
    assert ChangeLogEntry.objects.filter(kind="calendar_created", account=account).exists()

    refreshed = refresh(client, integrator, body["refresh_token"]).json()
    assert api_status(client, refreshed["access_token"]) == 200
    assert revoke(client, integrator, token=refreshed["access_token"]).status_code == 200
    assert api_status(client, refreshed["access_token"]) == 401


def test_flow_wrong_caldav_password_shows_reason_and_creates_nothing(client, radicale_server):
    integrator = make_integrator()
    start_authorize(client, integrator)
    response = connect_caldav(client, radicale_server, password="wrong")
    assert response.status_code == 400
    assert b"did not accept" in response.content
    assert not Account.objects.exists()
    assert not Profile.objects.exists()


def test_flow_unreachable_caldav_server_shows_the_generic_message(client):
    response = client.post(
        "/connect/caldav/",
        {"server_url": "http://127.0.0.1:9/", "username": "a", "password": "b"},
    )
    assert response.status_code == 400
    assert b"We could not connect this calendar" in response.content
    assert not Account.objects.exists()


def test_flow_deny_redirects_with_access_denied_and_state(client, radicale_server):
    integrator = make_integrator()
    start_authorize(client, integrator)
    consent = client.get(connect_caldav(client, radicale_server)["Location"])
    form = consent.context["form"]
    data = {k: v for k, v in form.initial.items() if v is not None}  # no "allow"
    response = client.post(f"/oauth/authorize?{consent.request['QUERY_STRING']}", data)
    params = redirect_params(response)
    assert params["error"] == "access_denied"
    assert params["state"] == "xyz-state"
    assert response["Location"].startswith(integrator.redirect_uri + "?")


def test_flow_second_provider_links_to_same_account_unless_avoid_linking(
    client, radicale_server, httpserver
):
    httpserver.expect_request("/team.ics").respond_with_data(FEED, content_type="text/calendar")
    feed_url = httpserver.url_for("/team.ics")
    integrator = make_integrator()
    start_authorize(client, integrator)
    client.get(connect_caldav(client, radicale_server)["Location"])

    chooser = start_authorize(client, integrator, provider_name="ics")
    assert chooser.redirect_chain[-1][0] == "/connect/"
    linked = client.post("/connect/ics/", {"feed_url": feed_url})
    assert linked.status_code == 302
    assert Account.objects.count() == 1
    assert Profile.objects.count() == 2
    consent = client.get(linked["Location"])
    assert b"Team feed" not in consent.content  # the profile name is the feed's host
    code = redirect_params(allow(client, consent))["code"]
    linking = exchange_code(client, integrator, code).json()["linking_profile"]
    assert linking["provider_name"] == "ics"

    start_authorize(client, integrator, avoid_linking="true")
    client.post("/connect/ics/", {"feed_url": feed_url})
    assert Account.objects.count() == 2


def test_flow_ics_feed_that_is_not_icalendar_is_refused(client, httpserver):
    httpserver.expect_request("/page").respond_with_data("<html>login</html>")
    response = client.post("/connect/ics/", {"feed_url": httpserver.url_for("/page")})
    assert response.status_code == 400
    assert not Profile.objects.exists()


def test_flow_relink_reconnects_disconnected_profile_without_new_account(
    client, radicale_server, caldav_calendar
):
    connect_caldav(client, radicale_server)
    profile = Profile.objects.get()
    Profile.objects.filter(pk=profile.pk).update(status="disconnected")
    client.logout()

    page = client.get(f"/connect/relink/{profile.public_id}/")
    assert page.status_code == 200
    assert b"alice" in page.content
    response = connect_caldav(client, radicale_server)

    assert response.status_code == 200
    profile.refresh_from_db()
    assert profile.status == "connected"
    assert Account.objects.count() == 1


def test_flow_relink_with_another_identity_is_refused(client, radicale_server):
    connect_caldav(client, radicale_server)
    profile = Profile.objects.get()
    client.logout()
    client.get(f"/connect/relink/{profile.public_id}/")
    response = client.post(
        f"/connect/relink/{profile.public_id}/",
        {"server_url": radicale_server.base_url + "/", "username": "bob", "password": "bob-pw"},
    )
    assert response.status_code == 400
    assert b"another calendar account" in response.content
    assert Profile.objects.count() == 1


GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # settings.GOOGLE_OAUTH2_URL
GOOGLE_USERINFO_URL = "https://www.googleapis.com/oauth2/v3/userinfo"


@responses.activate
def test_flow_google_connect_via_social_auth(client, settings):
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = "our-google-client"
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = "our-google-secret"
    responses.post(
        GOOGLE_TOKEN_URL,
        json={
            "access_token": "ya29.google-access",
            "refresh_token": "1//google-refresh",
            "expires_in": 3599,
            "scope": "openid email https://www.googleapis.com/auth/calendar",
            "token_type": "Bearer",
            "id_token": "not-used",
        },
    )
    responses.get(
        GOOGLE_USERINFO_URL,
        json={
            "sub": "109876543210",
            "email": "carol@gmail.com",
            "email_verified": True,
            "name": "Carol",
            "given_name": "Carol",
        },
    )
    integrator = make_integrator()
    chooser = start_authorize(client, integrator, provider_name="google")
    assert b"Google Calendar" in chooser.content
    assert client.get("/connect/oauth/login/google-oauth2/").status_code == 405  # POST only

    begin = client.post("/connect/oauth/login/google-oauth2/")
    assert begin.status_code == 302
    google = urlsplit(begin["Location"])
    google_params = {k: v[0] for k, v in parse_qs(google.query).items()}
    assert google.netloc == "accounts.google.com"
    assert google_params["access_type"] == "offline"
    assert "https://www.googleapis.com/auth/calendar" in google_params["scope"]

    complete = client.get(
        "/connect/oauth/complete/google-oauth2/?"
        + urlencode({"code": "google-code", "state": google_params["state"]}),
        follow=True,
    )
    assert complete.status_code == 200
    assert b"Calendar connected: <strong>carol@gmail.com" in complete.content
    profile = Profile.objects.get()
    assert profile.provider == "google"
    assert profile.provider_account_id == "109876543210"
    assert profile.credentials["refresh_token"] == "1//google-refresh"

    code = redirect_params(allow(client, complete))["code"]
    body = exchange_code(client, integrator, code).json()
    assert body["linking_profile"]["provider_name"] == "google"
    assert body["linking_profile"]["profile_id"] == profile.public_id
    assert body["sub"] == profile.account.public_id

    # The provider's tokens are stored encrypted only (the token request body proves the
    # stub was called by social-auth with our client credentials).
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM accounts_profile")
        (stored,) = cursor.fetchone()
    assert "google-refresh" not in stored and "ya29" not in stored
    token_call = responses.calls[0].request
    assert "google-code" in token_call.body
    json.dumps(body)  # the token response is plain JSON


@responses.activate
def test_flow_google_second_sign_in_uses_same_account(client, settings):
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = "our-google-client"
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = "our-google-secret"
    responses.post(GOOGLE_TOKEN_URL, json={"access_token": "a", "expires_in": 3599})
    responses.get(
        GOOGLE_USERINFO_URL,
        json={"sub": "42", "email": "dan@example.org", "email_verified": True, "hd": "example.org"},
    )

    def sign_in():
        begin = client.post("/connect/oauth/login/google-oauth2/")
        state = parse_qs(urlsplit(begin["Location"]).query)["state"][0]
        client.get(f"/connect/oauth/complete/google-oauth2/?code=c&state={state}")
        client.logout()

    sign_in()
    sign_in()
    assert Account.objects.count() == 1
    profile = Profile.objects.get()
    assert profile.provider_service == "gsuite"


def test_flow_relink_page_never_shows_an_ics_feed_url(client, httpserver):
    # Anybody who knows a profile id can open its relink page; the feed URL is the credential.
    httpserver.expect_request("/secret-token.ics").respond_with_data(
        FEED, content_type="text/calendar"
    )
    feed_url = httpserver.url_for("/secret-token.ics")
    assert client.post("/connect/ics/", {"feed_url": feed_url}).status_code < 400
    profile = Profile.objects.get()
    Profile.objects.filter(pk=profile.pk).update(status="disconnected")
    client.logout()

    page = client.get(f"/connect/relink/{profile.public_id}/")

    assert page.status_code == 200
    assert b"secret-token" not in page.content
