"""/v1/account, /v1/userinfo, /v1/profiles, profile revocation, rate limits, OpenAPI."""

from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.utils import timezone

from accounts.models import Profile
from tests.calendars.helpers import api_get, auth
from tests.factories import (
    make_access_token,
    make_account,
    make_application,
    make_calendar,
    make_profile,
)


@pytest.fixture
def account(db):
    return make_account(email="ada@example.com", name="Ada", default_tzid="Europe/London")


def test_account_shape(client, account):
    token = make_access_token(account=account, scope="read_account list_calendars")
    response = api_get(client, "/v1/account", token)
    assert response.status_code == 200
    assert response.json() == {
        "account": {
            "account_id": account.public_id,
            "email": "ada@example.com",
            "name": "Ada",
            "scope": "read_account list_calendars",
            "default_tzid": "Europe/London",
        },
        "sub": account.public_id,
    }


def test_account_401_and_403(client, account):
    assert api_get(client, "/v1/account").status_code == 401
    expired = make_access_token(account=account, expires_in=-5)
    assert api_get(client, "/v1/account", expired).status_code == 401
    token = make_access_token(account=account, scope="read_events")
    assert api_get(client, "/v1/account", token).status_code == 403


def test_userinfo_lists_profiles_with_calendars(client, account):
    profile = make_profile(account=account, profile_name="ada@work.example.com")
    make_calendar(profile=profile, name="Work")
    make_calendar(profile=profile, name="Home")
    make_calendar(name="Not hers")
    token = make_access_token(account=account, scope="read_events")

    response = api_get(client, "/v1/userinfo", token)

    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == account.public_id and body["zoneinfo"] == "Europe/London"
    assert body["cronofy.type"] == "account"
    data = body["cronofy.data"]
    assert data["authorization"] == {"scope": "read_events", "status": "active"}
    (only,) = data["profiles"]
    assert only["profile_id"] == profile.public_id and only["profile_connected"] is True
    assert [c["calendar_name"] for c in only["profile_calendars"]] == ["Home", "Work"]
    assert "profile_id" not in only["profile_calendars"][0]
    assert api_get(client, "/v1/userinfo").status_code == 401


def test_userinfo_queries_do_not_grow_with_profiles(client, account, django_assert_max_num_queries):
    for _ in range(5):
        profile = make_profile(account=account)
        make_calendar(profile=profile)
        make_calendar(profile=profile)
    token = make_access_token(account=account)
    with django_assert_max_num_queries(3):
        assert api_get(client, "/v1/userinfo", token).status_code == 200


def test_profiles_list(client, account):
    google = make_profile(
        account=account, provider=Profile.Provider.GOOGLE, provider_service="gsuite"
    )
    make_profile()  # someone else's
    token = make_access_token(account=account, scope="list_calendars")
    body = api_get(client, "/v1/profiles", token).json()
    assert body == {
        "profiles": [
            {
                "provider_name": "google",
                "provider_service": "gsuite",
                "profile_id": google.public_id,
                "profile_name": google.profile_name,
                "profile_connected": True,
                "profile_initial_sync_required": True,
            }
        ]
    }
    assert api_get(client, "/v1/profiles").status_code == 401


def test_disconnected_profile_has_relink_url(client, account, settings):
    settings.PUBLIC_BASE_URL = "https://cal.example.org"
    profile = make_profile(account=account, status=Profile.Status.DISCONNECTED)
    token = make_access_token(account=account)
    listed = api_get(client, "/v1/profiles", token).json()["profiles"][0]
    assert listed["profile_connected"] is False
    assert (
        listed["profile_relink_url"]
        == f"https://cal.example.org/connect/relink/{profile.public_id}/"
    )


def test_revoke_profile_disconnects_it(client, account):
    profile = make_profile(account=account)
    token = make_access_token(account=account)

    response = client.post(f"/v1/profiles/{profile.public_id}/revoke", **auth(token))

    assert response.status_code == 202
    assert response.content == b""
    profile.refresh_from_db()
    assert profile.status == Profile.Status.DISCONNECTED
    assert profile.disconnected_reason == "revoked by application"
    assert timezone.now() - profile.disconnected_at < timedelta(minutes=1)
    listed = api_get(client, "/v1/profiles", token).json()["profiles"][0]
    assert listed["profile_connected"] is False


def test_revoke_profile_of_another_account_is_404(client, account):
    token = make_access_token(account=account)
    foreign = make_profile()
    assert client.post(f"/v1/profiles/{foreign.public_id}/revoke", **auth(token)).status_code == 404
    assert client.post("/v1/profiles/pro_nope/revoke", **auth(token)).status_code == 404
    assert client.post(f"/v1/profiles/{foreign.public_id}/revoke").status_code == 401
    foreign.refresh_from_db()
    assert foreign.status == Profile.Status.CONNECTED


@time_machine.travel("2026-11-23 09:00:00.250", tick=False)
def test_rate_limit_per_second_is_429_with_retry_after(client, account, settings):
    cache.clear()
    settings.API_RATE_LIMIT_PER_SECOND = 3
    settings.API_RATE_LIMIT_PER_MINUTE = 100
    app = make_application()
    token = make_access_token(account=account, application=app)
    same_app_other_user = make_access_token(account=make_account(), application=app)
    other_app = make_access_token(account=account)

    assert [api_get(client, "/v1/profiles", token).status_code for _ in range(3)] == [200] * 3
    limited = api_get(client, "/v1/profiles", same_app_other_user)

    assert limited.status_code == 429
    assert limited["Retry-After"] == "1"
    assert limited.json() == {"error": "too_many_requests"}
    assert api_get(client, "/v1/profiles", other_app).status_code == 200
    with time_machine.travel("2026-11-23 09:00:01.100", tick=False):
        assert api_get(client, "/v1/profiles", token).status_code == 200


@time_machine.travel("2026-11-23 09:00:20", tick=False)
def test_rate_limit_per_minute(client, account, settings):
    cache.clear()
    settings.API_RATE_LIMIT_PER_SECOND = 0
    settings.API_RATE_LIMIT_PER_MINUTE = 2
    token = make_access_token(account=account)
    codes = [api_get(client, "/v1/profiles", token).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert api_get(client, "/v1/profiles", token)["Retry-After"] == "40"


def test_openapi_document_describes_the_api(client, db):
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for expected in (
        "/v1/account",
        "/v1/userinfo",
        "/v1/profiles",
        "/v1/profiles/{profile_id}/revoke",
        "/v1/calendars",
        "/v1/events",
        "/v1/events/pages/{token}",
        "/v1/free_busy",
        "/v1/free_busy/pages/{token}",
        "/v1/channels",
        "/v1/channels/{channel_id}",
    ):
        assert expected in paths
    events = paths["/v1/events"]["get"]
    names = {p["name"] for p in events["parameters"]}
    assert {"tzid", "from", "to", "last_modified", "only_managed", "calendar_ids[]"} <= names
    assert schema["components"]["securitySchemes"]["accessToken"]["scheme"] == "bearer"
    assert client.get("/v1/docs").status_code == 200
