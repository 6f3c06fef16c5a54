"""Hostile request input (a NUL byte, a lone surrogate, JSON nested 100,000 deep, a body over
DATA_UPLOAD_MAX_MEMORY_SIZE) is refused before it reaches the database or a parser: a JSON 4xx
in the shape of the endpoint's family, never a 500 or Django's HTML 400.

The NUL cases matter on PostgreSQL (its text type refuses NUL; SQLite stores it), so each test
asserts the answer itself, not just the absence of an exception."""

import json

import pytest

from accounts.inputs import first_unstorable_path, json_depth_exceeds
from tests.calendars.helpers import make_world

NUL = "\x00"
DEEP_JSON = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def world(db, settings):
    settings.API_RATE_LIMIT_PER_SECOND = settings.API_RATE_LIMIT_PER_MINUTE = 0
    return make_world()


def assert_api_422(response, field: str = "base"):
    assert response.status_code == 422, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    entry = response.json()["errors"][field][0]
    assert entry["key"] == "errors.invalid_characters"


def assert_oauth_400(response):
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"] == "invalid_request"


# --- NUL in the query string and the path of /v1 ---------------------------------------------


@pytest.mark.parametrize("path", ["/v1/events", "/v1/free_busy"])
def test_nul_in_calendar_ids_is_422(client, world, path):
    params = {"tzid": "Etc/UTC", "calendar_ids[]": [f"cal_{NUL}x"]}
    response = client.get(path, params, **world.headers)
    assert_api_422(response, "calendar_ids[]")


def assert_json_404(response):
    assert response.status_code == 404, response.content[:300]
    assert response.json() == {"error": "not_found"}


def test_nul_in_a_channel_id_is_404(client, world):
    assert_json_404(client.delete("/v1/channels/chn_%00x", **world.headers))


def test_nul_in_a_profile_id_is_404(client, world):
    assert_json_404(client.post("/v1/profiles/pro_%00x/revoke", **world.headers))


def test_lone_surrogate_in_a_json_body_is_422(client, world):
    body = '{"callback_url": "https://integrator.example.com/\\ud800"}'
    response = client.post("/v1/channels", body, content_type="application/json", **world.headers)
    assert_api_422(response)
    assert "callback_url" in response.json()["errors"]["base"][0]["description"]


def test_nul_in_a_json_key_is_422(client, world):
    body = json.dumps({"callback_url\x00": "https://integrator.example.com/"})
    response = client.post("/v1/channels", body, content_type="application/json", **world.headers)
    assert_api_422(response)


def test_nul_in_the_session_cookie_is_refused(client, world):
    client.cookies["sessionid"] = f"abcdefgh{NUL}"
    response = client.get("/oauth/authorize", {"client_id": world.application.client_id})
    assert_oauth_400(response)


# --- /oauth ----------------------------------------------------------------------------------


def test_nul_in_client_id_at_authorize_is_400(client, world):
    response = client.get(
        "/oauth/authorize",
        {
            "response_type": "code",
            "client_id": f"x{NUL}",
            "redirect_uri": "https://integrator.example.com/callback",
            "scope": "read_events",
        },
    )
    assert_oauth_400(response)


@pytest.mark.parametrize("field", ["client_id", "code"])
@pytest.mark.parametrize("encoding", ["form", "json"])
def test_nul_at_token_is_400(client, world, field, encoding):
    body = {
        "grant_type": "authorization_code",
        "client_id": world.application.client_id,
        "client_secret": "integrator-secret",
        "code": "abc",
        "redirect_uri": "https://integrator.example.com/callback",
    }
    body[field] += NUL
    if encoding == "json":
        response = client.post("/oauth/token", json.dumps(body), content_type="application/json")
    else:
        response = client.post("/oauth/token", body)
    assert_oauth_400(response)


@pytest.mark.parametrize("field", ["client_id", "token"])
def test_nul_at_revoke_is_400(client, world, field):
    body = {
        "client_id": world.application.client_id,
        "client_secret": "integrator-secret",
        "token": "abc",
    }
    body[field] += NUL
    response = client.post("/oauth/token/revoke", body)
    assert_oauth_400(response)


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/token/revoke"])
def test_deep_json_at_oauth_is_400(client, world, path):
    response = client.post(path, DEEP_JSON, content_type="application/json")
    assert_oauth_400(response)


# --- hosted pages ----------------------------------------------------------------------------


def test_nul_in_the_relink_path_is_404(client, world):
    client.force_login(world.account.user)
    response = client.get("/connect/relink/pro_%00x/")
    assert response.status_code == 404


# --- bodies over the limit -------------------------------------------------------------------


@pytest.fixture
def small_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    return "x" * 2000


def test_oversized_json_body_on_v1_is_a_json_413(client, world, small_limit):
    body = json.dumps({"callback_url": small_limit})
    response = client.post("/v1/channels", body, content_type="application/json", **world.headers)
    assert response.status_code == 413
    assert response.json()["errors"]["base"][0]["key"] == "errors.too_large"


def test_oversized_form_body_at_token_is_a_json_413(client, world, small_limit):
    response = client.post(
        "/oauth/token", {"grant_type": "authorization_code", "code": small_limit}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"


def test_oversized_body_to_a_batch_is_a_json_413(client, world, small_limit):
    body = json.dumps(
        {"batch": [{"method": "GET", "relative_url": "/v1/calendars", "x": small_limit}]}
    )
    response = client.post("/v1/batch", body, content_type="application/json", **world.headers)
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")


# --- the helpers -----------------------------------------------------------------------------


def test_json_depth_exceeds_counts_brackets_outside_strings_only():
    assert json_depth_exceeds("[" * 33 + "]" * 33)
    assert not json_depth_exceeds("[" * 32 + "]" * 32)
    # Brackets inside strings, escaped quotes and an unterminated string do not count.
    assert not json_depth_exceeds(json.dumps({"a": '[[[[\\"' * 40}))
    assert not json_depth_exceeds('"' + '\\"[' * 100_000)


def test_first_unstorable_path_names_the_field():
    assert first_unstorable_path({"a": [{"b": "x\x00"}]}) == "a.b"
    assert first_unstorable_path({"a\ud800": "x"}) == "base"
    # A backslash followed by the text "u0000" is ordinary text.
    assert first_unstorable_path(json.loads(json.dumps({"a": "\\u0000"}))) is None
