"""The OAuth provider's security properties (docs/api.md, "OAuth security"), O1-O12 below."""

import datetime as dt
import math
import os
import string
import subprocess
import sys
import threading

import pytest
import time_machine
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken
from oauthlib.common import generate_token

from accounts.models import IssuedCode
from accounts.oauth_services import generate_client_secret, purge_expired_authorizations
from tests.factories import make_application, make_profile
from tests.oauth_flow import (
    api_status,
    authorize_params,
    exchange_code,
    make_connected_user,
    make_integrator,
    obtain_code,
    pkce_pair,
    redirect_params,
    refresh,
    revoke,
    token_request,
)

pytestmark = pytest.mark.urls("tests.probe_urls")


def issue_tokens(client, integrator, **authorize_overrides) -> dict:
    code = obtain_code(client, integrator, **authorize_overrides)
    response = exchange_code(client, integrator, code)
    assert response.status_code == 200, response.content
    return response.json()


# --- O1 code single use + replay revokes ---
@pytest.mark.django_db
def test_code_replay_is_refused_and_revokes_tokens_issued_from_it(client):
    integrator = make_integrator()
    make_connected_user(client)
    code = obtain_code(client, integrator)
    first = exchange_code(client, integrator, code).json()
    assert api_status(client, first["access_token"]) == 200

    replay = exchange_code(client, integrator, code)

    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert api_status(client, first["access_token"]) == 401
    assert refresh(client, integrator, first["refresh_token"]).json()["error"] == "invalid_grant"


# --- O2 code expiry ---
@pytest.mark.django_db
@pytest.mark.parametrize(("after", "status"), [(59, 200), (61, 400)])
def test_code_expires_after_sixty_seconds(client, after, status):
    integrator = make_integrator()
    make_connected_user(client)
    start = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        code = obtain_code(client, integrator)
        clock.shift(after)
        response = exchange_code(client, integrator, code)
    assert response.status_code == status
    if status == 400:
        assert response.json()["error"] == "invalid_grant"


# --- O3 concurrent redemption ---
@pytest.mark.postgres
def test_code_concurrent_redemption_yields_one_token(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    integrator = make_integrator()
    browser = Client()
    make_connected_user(browser)
    code = obtain_code(browser, integrator)
    threads_count = 6
    barrier = threading.Barrier(threads_count)
    statuses: list[int] = []

    def redeem():
        try:
            barrier.wait()
            statuses.append(exchange_code(Client(), integrator, code).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] + [400] * (threads_count - 1)
    families = set(RefreshToken.objects.values_list("token_family", flat=True))
    assert len(families) == 1
    # The losers were replays: the single family they saw was revoked, never duplicated.
    assert RefreshToken.objects.filter(revoked__isnull=True).count() <= 1


# --- O4 PKCE ---
@pytest.mark.django_db
def test_pkce_missing_challenge_for_public_client_is_refused_at_authorize(client):
    integrator = make_integrator(client_type="public")
    make_connected_user(client)
    response = client.get("/oauth/authorize", authorize_params(integrator))
    assert redirect_params(response)["error"] == "invalid_request"


@pytest.mark.django_db
def test_pkce_plain_method_is_refused_at_authorize(client):
    integrator = make_integrator(client_type="public")
    make_connected_user(client)
    verifier = "a" * 50
    response = client.get(
        "/oauth/authorize",
        authorize_params(integrator, code_challenge=verifier, code_challenge_method="plain"),
    )
    assert redirect_params(response)["error"] == "invalid_request"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bad_verifier",
    [
        pytest.param("wrong" * 10, id="mismatch"),
        pytest.param("short", id="too-short"),
        pytest.param("x" * 129, id="too-long"),
        pytest.param("bad!char" * 6, id="charset"),
        pytest.param(None, id="missing"),
    ],
)
def test_pkce_bad_verifier_is_invalid_grant_and_burns_the_code(client, bad_verifier):
    integrator = make_integrator(client_type="public")
    make_connected_user(client)
    verifier, challenge = pkce_pair()
    code = obtain_code(client, integrator, code_challenge=challenge, code_challenge_method="S256")

    bad = exchange_code(client, integrator, code, client_secret=None, code_verifier=bad_verifier)
    retry = exchange_code(client, integrator, code, client_secret=None, code_verifier=verifier)

    assert bad.status_code == 400
    assert bad.json()["error"] in ("invalid_grant", "invalid_request")
    assert retry.status_code == 400
    assert retry.json()["error"] == "invalid_grant"


@pytest.mark.django_db
def test_pkce_verifier_for_code_without_challenge_is_refused(client):
    integrator = make_integrator()  # confidential: may omit PKCE (Cronofy's SDKs do)
    make_connected_user(client)
    code = obtain_code(client, integrator)
    response = exchange_code(client, integrator, code, code_verifier="v" * 50)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.django_db
def test_pkce_s256_public_client_gets_tokens(client):
    integrator = make_integrator(client_type="public")
    make_connected_user(client)
    verifier, challenge = pkce_pair()
    code = obtain_code(client, integrator, code_challenge=challenge, code_challenge_method="S256")
    response = exchange_code(client, integrator, code, client_secret=None, code_verifier=verifier)
    assert response.status_code == 200


# --- O5 exact redirect matching ---
REGISTERED = "https://integrator.example.com/callback"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "redirect_uri",
    [
        REGISTERED + "?extra=1",
        REGISTERED + ";param",
        REGISTERED + "#frag",
        REGISTERED + "#",
        "https://user@integrator.example.com/callback",
        REGISTERED + "/",
        "https://integrator.example.com/Callback",
        "https://integrator.example.com:8443/callback",
        "http://integrator.example.com/callback",
        "https://evil.integrator.example.com/callback",
        "https://evil.example.com/callback",
    ],
)
def test_redirect_uri_mismatch_shows_error_page_and_never_redirects(client, redirect_uri):
    integrator = make_integrator(redirect_uris=[REGISTERED])
    for signed_in in (False, True):
        if signed_in:
            make_connected_user(client)
        response = client.get(
            "/oauth/authorize", authorize_params(integrator, redirect_uri=redirect_uri)
        )
        assert response.status_code == 400
        assert "Location" not in response
        assert b"This link does not work" in response.content


@pytest.mark.django_db
def test_redirect_unknown_client_shows_error_page(client):
    integrator = make_integrator()
    response = client.get(
        "/oauth/authorize", authorize_params(integrator, client_id="no-such-client")
    )
    assert response.status_code in (400, 401)
    assert "Location" not in response


@pytest.mark.django_db
def test_redirect_loopback_any_port_only_for_public_clients(client):
    make_connected_user(client)
    for client_type, allowed in (("confidential", False), ("public", True)):
        integrator = make_integrator(
            client_type=client_type, redirect_uris=["http://127.0.0.1/callback"]
        )
        _verifier, challenge = pkce_pair()
        response = client.get(
            "/oauth/authorize",
            authorize_params(
                integrator,
                redirect_uri="http://127.0.0.1:53682/callback",
                code_challenge=challenge,
                code_challenge_method="S256",
            ),
        )
        assert (response.status_code == 200) is allowed, (client_type, response.status_code)


@pytest.mark.django_db
def test_redirect_token_endpoint_uri_must_equal_the_grants(client):
    integrator = make_integrator(redirect_uris=[REGISTERED, "https://integrator.example.com/two"])
    make_connected_user(client)
    code = obtain_code(client, integrator)
    response = token_request(
        client,
        integrator,
        grant_type="authorization_code",
        code=code,
        redirect_uri="https://integrator.example.com/two",
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.django_db
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "form"])
def test_redirect_token_endpoint_requires_the_redirect_uri_of_the_authorization(client, as_json):
    integrator = make_integrator()
    make_connected_user(client)
    code = obtain_code(client, integrator)

    response = token_request(
        client, integrator, as_json=as_json, grant_type="authorization_code", code=code
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "redirect_uri" in response.json()["error_description"]
    # Refused, not burnt: the legitimate exchange with redirect_uri still works.
    assert exchange_code(client, integrator, code).status_code == 200


# --- O6 rotation + reuse detection ---
@pytest.mark.django_db
def test_refresh_rotation_and_reuse_of_superseded_token_revokes_family(client):
    integrator = make_integrator()
    make_connected_user(client)
    first = issue_tokens(client, integrator)
    second = refresh(client, integrator, first["refresh_token"]).json()
    third = refresh(client, integrator, second["refresh_token"]).json()
    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
    assert api_status(client, first["access_token"]) == 401  # rotation retires the old pair

    reuse = refresh(client, integrator, first["refresh_token"])

    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    assert api_status(client, third["access_token"]) == 401
    assert refresh(client, integrator, third["refresh_token"]).status_code == 400


# --- O7 concurrent refresh ---
@pytest.mark.postgres
def test_refresh_concurrent_use_never_yields_two_live_families(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    integrator = make_integrator()
    browser = Client()
    make_connected_user(browser)
    tokens = issue_tokens(browser, integrator)
    barrier = threading.Barrier(2)
    results: list = []

    def use():
        try:
            barrier.wait()
            results.append(refresh(Client(), integrator, tokens["refresh_token"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.status_code == 200 for r in results) <= 1
    assert all(r.json()["access_token"] for r in results if r.status_code == 200)
    assert RefreshToken.objects.filter(revoked__isnull=True).count() <= 1
    assert AccessToken.objects.count() <= 1


# --- O8 scope rules ---
@pytest.mark.django_db
def test_scope_refresh_may_narrow_through_shorthand_but_never_widen(client):
    integrator = make_integrator()
    make_connected_user(client)
    tokens = issue_tokens(client, integrator, scope="read_write")

    narrowed = refresh(client, integrator, tokens["refresh_token"], scope="read_events")
    assert narrowed.status_code == 200
    assert narrowed.json()["scope"] == "read_events"
    widened = refresh(client, integrator, narrowed.json()["refresh_token"], scope="read_write")
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_scope"


@pytest.mark.django_db
@pytest.mark.parametrize("scope", ["read_events unknown_scope", "", "  "])
def test_scope_unknown_or_empty_is_refused_at_authorize(client, scope):
    integrator = make_integrator()
    make_connected_user(client)
    response = client.get("/oauth/authorize", authorize_params(integrator, scope=scope))
    if response["Location"].startswith("/oauth/authorize"):
        # An empty parameter is dropped as "absent" first (pycronofy sends empty params).
        response = client.get(response["Location"])
    params = redirect_params(response)
    assert params["error"] == "invalid_scope"
    assert params["state"] == "xyz-state"


def consent_form_data(page) -> dict:
    form = page.context["form"]
    return {name: value for name, value in form.initial.items() if value is not None}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "posted_scope",
    ["read_events create_event delete_event", "read_write", "read_events read_account"],
)
def test_scope_edited_on_the_consent_form_cannot_widen_the_grant(client, posted_scope):
    integrator = make_integrator()
    make_connected_user(client)
    params = authorize_params(integrator, scope="read_events")
    page = client.get("/oauth/authorize", params)
    data = {**consent_form_data(page), "scope": posted_scope, "allow": "on"}

    response = client.post("/oauth/authorize?" + page.request["QUERY_STRING"], data)

    assert response.status_code == 400
    assert Grant.objects.count() == 0
    assert "read_events" in response.content.decode()  # says what went wrong, no redirect


@pytest.mark.django_db
def test_scope_consent_form_sealed_for_one_application_does_not_open_for_another(client):
    wide = make_integrator(name="Wide")
    narrow = make_integrator(name="Narrow")
    make_connected_user(client)
    wide_page = client.get("/oauth/authorize", authorize_params(wide, scope="read_write"))
    narrow_page = client.get("/oauth/authorize", authorize_params(narrow, scope="read_events"))
    data = {
        **consent_form_data(narrow_page),
        "scope": "read_write",
        "consent_seal": consent_form_data(wide_page)["consent_seal"],
        "allow": "on",
    }

    response = client.post("/oauth/authorize?" + narrow_page.request["QUERY_STRING"], data)
    unsealed = client.post(
        "/oauth/authorize?" + narrow_page.request["QUERY_STRING"],
        {**data, "consent_seal": ""},
    )

    assert response.status_code == unsealed.status_code == 400
    assert Grant.objects.count() == 0


@pytest.mark.django_db
def test_scope_read_token_cannot_write(client):
    integrator = make_integrator()
    make_connected_user(client)
    tokens = issue_tokens(client, integrator, scope="read_events")
    response = client.get("/_probe_write", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert response.status_code == 403


# --- O9 revocation ---
@pytest.mark.django_db
def test_revoke_refresh_token_kills_its_access_token(client):
    integrator = make_integrator()
    make_connected_user(client)
    tokens = issue_tokens(client, integrator)
    response = revoke(client, integrator, token=tokens["refresh_token"])
    assert response.status_code == 200
    assert response.content == b""
    assert api_status(client, tokens["access_token"]) == 401


@pytest.mark.django_db
def test_revoke_access_token_kills_its_refresh_token(client):
    integrator = make_integrator()
    make_connected_user(client)
    tokens = issue_tokens(client, integrator)
    assert revoke(client, integrator, token=tokens["access_token"]).status_code == 200
    assert refresh(client, integrator, tokens["refresh_token"]).status_code == 400


@pytest.mark.django_db
def test_revoke_unknown_token_is_200(client):
    integrator = make_integrator()
    response = revoke(client, integrator, token="never-issued")
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.django_db
def test_revoke_another_clients_token_is_200_and_leaves_it_valid(client):
    owner, other = make_integrator(name="Owner"), make_integrator(name="Other")
    make_connected_user(client)
    tokens = issue_tokens(client, owner)
    assert revoke(client, other, token=tokens["access_token"]).status_code == 200
    assert revoke(client, other, token=tokens["refresh_token"]).status_code == 200
    assert api_status(client, tokens["access_token"]) == 200


@pytest.mark.django_db
def test_revoke_requires_client_authentication(client):
    integrator = make_integrator()
    make_connected_user(client)
    tokens = issue_tokens(client, integrator)
    response = revoke(client, integrator, token=tokens["access_token"], client_secret="wrong")
    assert response.status_code == 401
    assert api_status(client, tokens["access_token"]) == 200


@pytest.mark.django_db
def test_revoke_by_sub_and_by_refresh_token_field(client):
    integrator = make_integrator()
    account, _profile = make_connected_user(client)
    first = issue_tokens(client, integrator)
    second = issue_tokens(client, integrator)
    assert revoke(client, integrator, sub=account.public_id).status_code == 200
    assert api_status(client, first["access_token"]) == 401
    assert api_status(client, second["access_token"]) == 401

    third = issue_tokens(client, integrator)
    # Node's SDK sends only refresh_token.
    assert revoke(client, integrator, refresh_token=third["refresh_token"]).status_code == 200
    assert api_status(client, third["access_token"]) == 401


# --- O10 secrets at rest ---
def _all_text_in_database() -> str:
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            description = connection.introspection.get_table_description(cursor, table)
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {quoted}")  # noqa: S608 - introspected names
            for row in cursor.fetchall():
                chunks.extend(str(value) for value in row if value is not None)
            assert description is not None
    return "\n".join(chunks)


@pytest.mark.django_db
def test_secrets_never_stored_in_plaintext(client):
    integrator = make_integrator()
    account, _profile = make_connected_user(client)
    make_profile(account=account, credentials={"username": "x", "password": "caldav-pw-123456"})
    tokens = issue_tokens(client, integrator)
    rotated = refresh(client, integrator, tokens["refresh_token"]).json()
    pending_code = obtain_code(client, integrator)

    stored = _all_text_in_database()

    for secret in (
        integrator.client_secret,
        tokens["access_token"],
        tokens["refresh_token"],
        rotated["access_token"],
        rotated["refresh_token"],
        pending_code,
        "caldav-pw-123456",
    ):
        assert secret not in stored


# --- O11 configuration gate ---
def test_config_deploy_checks_have_no_oauth2_provider_findings():
    # Production settings (as .ci/run): https-only redirect URIs, no debug.
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "x" * 60,
        "ALLOWED_HOSTS": "ci.example.com",
        "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "SECURE_SSL_REDIRECT": "true",
    }
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "oauth2_provider." not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_config_implicit_and_password_grants_are_refused(client):
    integrator = make_integrator()
    make_connected_user(client)
    # Even an application registered for the implicit grant cannot use it (RFC 9700 §2.1.2).
    implicit_app = make_application(
        authorization_grant_type=Application.GRANT_IMPLICIT,
        redirect_uris=REGISTERED,
        client_type=Application.CLIENT_PUBLIC,
    )
    implicit = client.get(
        "/oauth/authorize",
        {
            "response_type": "token",
            "client_id": implicit_app.client_id,
            "redirect_uri": REGISTERED,
            "scope": "read_events",
        },
    )
    assert redirect_params(implicit)["error"] in (
        "unauthorized_client",
        "unsupported_response_type",
    )
    get_user_model().objects.create_user("resource-owner", password="correct-horse-battery")
    password = token_request(
        client,
        integrator,
        grant_type="password",
        username="resource-owner",
        password="correct-horse-battery",
        scope="read_events",
    )
    assert password.status_code in (400, 401)
    assert "access_token" not in password.json()


@pytest.mark.django_db
def test_config_access_token_in_query_string_is_refused(client):
    integrator = make_integrator()
    make_connected_user(client)
    tokens = issue_tokens(client, integrator)
    assert client.get("/_probe", {"access_token": tokens["access_token"]}).status_code == 401


@pytest.mark.django_db
def test_config_refresh_token_expires_when_idle(client, settings):
    integrator = make_integrator()
    make_connected_user(client)
    start = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    idle = settings.OAUTH2_PROVIDER["REFRESH_TOKEN_EXPIRE_SECONDS"]
    with time_machine.travel(start, tick=False) as clock:
        tokens = issue_tokens(client, integrator)
        clock.shift(3600 + idle - 60)
        still_alive = refresh(client, integrator, tokens["refresh_token"])
        assert still_alive.status_code == 200
        clock.shift(3600 + idle + 60)
        expired = refresh(client, integrator, still_alive.json()["refresh_token"])
    assert expired.status_code == 400
    assert expired.json()["error"] == "invalid_grant"


# --- O12 entropy ---
def _bits(samples: list[str], alphabet: str) -> float:
    assert set("".join(samples)) <= set(alphabet)
    return min(len(s) for s in samples) * math.log2(len(alphabet))


@pytest.mark.django_db
def test_entropy_of_codes_tokens_and_client_secrets(client):
    integrator = make_integrator()
    make_connected_user(client)
    issued = issue_tokens(client, integrator)
    code = obtain_code(client, integrator)
    alnum = string.ascii_letters + string.digits
    urlsafe = alnum + "-_"
    # What we issued comes from these generators (same length and alphabet).
    assert len(issued["access_token"]) == len(generate_token()) == len(code)

    tokens = [generate_token() for _ in range(1000)]
    secrets_ = [generate_client_secret() for _ in range(1000)]

    assert len(set(tokens)) == len(set(secrets_)) == 1000
    assert _bits(tokens + [code, issued["access_token"], issued["refresh_token"]], alnum) >= 128
    assert _bits(secrets_ + [integrator.client_secret], urlsafe) >= 128


# --- housekeeping: what can no longer authorize anything is purged ---
@pytest.mark.django_db
def test_purge_expired_authorizations_drops_old_codes_and_expired_grants(client):

    integrator = make_integrator()
    make_connected_user(client)
    tokens = exchange_code(client, integrator, obtain_code(client, integrator)).json()
    obtain_code(client, integrator)  # never redeemed: its grant expires
    assert Grant.objects.count() == 1 and IssuedCode.objects.count() == 2

    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=8)):
        report = purge_expired_authorizations()

    assert report.issued_codes == 2
    assert not IssuedCode.objects.exists() and not Grant.objects.exists()
    # The refresh token had not idled out: it (and the access token it is tied to) is kept.
    assert refresh(client, integrator, tokens["refresh_token"]).status_code == 200


@pytest.mark.django_db
def test_purge_expired_authorizations_keeps_recent_codes(client):

    integrator = make_integrator()
    make_connected_user(client)
    exchange_code(client, integrator, obtain_code(client, integrator))

    assert purge_expired_authorizations().issued_codes == 0
    assert IssuedCode.objects.count() == 1
