"""/oauth/token is rate limited per address (every request) and per client (requests that
authenticate): 429 {"error": "slow_down"} with Retry-After (docs/api.md, "Rate limits")."""

import pytest
import time_machine

from tests.oauth_flow import make_integrator

pytestmark = [pytest.mark.urls("tests.probe_urls"), pytest.mark.django_db]

FROZEN = "2026-11-23 09:00:20"  # 40 s before the minute's window ends


def refresh_attempt(client, integrator, client_secret=None, **headers):
    """A token request (the refresh token is unknown: invalid_grant once authenticated)."""
    body = {
        "client_id": integrator.client_id,
        "client_secret": client_secret or integrator.client_secret,
        "grant_type": "refresh_token",
        "refresh_token": "unknown",
    }
    return client.post("/oauth/token", body, content_type="application/json", **headers)


@time_machine.travel(FROZEN, tick=False)
def test_token_over_the_address_limit_is_429_slow_down(client, settings):
    settings.OAUTH_TOKEN_RATE_LIMIT_PER_ADDRESS = 3
    settings.OAUTH_TOKEN_RATE_LIMIT_PER_CLIENT = 0
    integrator = make_integrator()

    statuses = [refresh_attempt(client, integrator).status_code for _ in range(3)]
    limited = refresh_attempt(client, integrator)
    elsewhere = refresh_attempt(client, integrator, REMOTE_ADDR="203.0.113.9")

    assert statuses == [400, 400, 400]
    assert limited.status_code == 429
    assert limited.json()["error"] == "slow_down"
    assert limited["Retry-After"] == "40"
    assert limited["Cache-Control"] == "no-store"
    assert elsewhere.status_code == 400


@time_machine.travel(FROZEN, tick=False)
def test_token_address_limit_counts_requests_that_do_not_authenticate(client, settings):
    settings.OAUTH_TOKEN_RATE_LIMIT_PER_ADDRESS = 2
    settings.OAUTH_TOKEN_RATE_LIMIT_PER_CLIENT = 0
    integrator = make_integrator()

    statuses = [
        refresh_attempt(client, integrator, client_secret="wrong").status_code for _ in range(3)
    ]

    assert statuses == [401, 401, 429]


@time_machine.travel(FROZEN, tick=False)
def test_token_over_the_client_limit_is_429_from_any_address(client, settings):
    settings.OAUTH_TOKEN_RATE_LIMIT_PER_ADDRESS = 0
    settings.OAUTH_TOKEN_RATE_LIMIT_PER_CLIENT = 2
    integrator = make_integrator()
    other = make_integrator(name="Other")

    first = refresh_attempt(client, integrator, REMOTE_ADDR="203.0.113.1")
    second = refresh_attempt(client, integrator, REMOTE_ADDR="203.0.113.2")
    limited = refresh_attempt(client, integrator, REMOTE_ADDR="203.0.113.3")

    assert (first.status_code, second.status_code) == (400, 400)
    assert limited.status_code == 429
    assert limited.json()["error"] == "slow_down"
    assert refresh_attempt(client, other).status_code == 400


@time_machine.travel(FROZEN, tick=False)
def test_token_client_limit_cannot_be_spent_by_someone_naming_the_client(client, settings):
    settings.OAUTH_TOKEN_RATE_LIMIT_PER_ADDRESS = 0
    settings.OAUTH_TOKEN_RATE_LIMIT_PER_CLIENT = 2
    integrator = make_integrator()

    forged = [
        refresh_attempt(client, integrator, client_secret="guess").status_code for _ in range(5)
    ]

    genuine = [refresh_attempt(client, integrator).status_code for _ in range(3)]

    assert forged == [401] * 5
    assert genuine == [400, 400, 429]  # its whole budget was still there


@time_machine.travel(FROZEN, tick=False)
def test_token_budget_of_a_public_client_is_kept_per_address(client, settings):
    # A public client authenticates by its client_id alone: strangers naming it from their
    # own addresses must not hold its users' refreshes at 429.
    settings.OAUTH_TOKEN_RATE_LIMIT_PER_ADDRESS = 0
    settings.OAUTH_TOKEN_RATE_LIMIT_PER_CLIENT = 2
    public = make_integrator(client_type="public")

    def attempt(address):
        body = {"client_id": public.client_id, "grant_type": "refresh_token", "refresh_token": "x"}
        response = client.post(
            "/oauth/token", body, content_type="application/json", REMOTE_ADDR=address
        )
        return response.status_code

    strangers = [attempt("198.51.100.7") for _ in range(5)]
    assert strangers[-1] == 429
    assert [attempt("203.0.113.9") for _ in range(3)] == [400, 400, 429]


@time_machine.travel(FROZEN, tick=False)
def test_token_address_behind_a_trusted_proxy_is_the_last_forwarded_for(client, settings):
    settings.OAUTH_TOKEN_RATE_LIMIT_PER_ADDRESS = 1
    settings.OAUTH_TOKEN_RATE_LIMIT_PER_CLIENT = 0
    integrator = make_integrator()

    def via_proxy(chain):
        return refresh_attempt(client, integrator, HTTP_X_FORWARDED_FOR=chain).status_code

    settings.TRUST_X_FORWARDED_FOR = True
    # The first entry is the client's say-so; the last is the address our proxy saw.
    trusted = [via_proxy(f"198.51.100.7, 203.0.113.{n}") for n in (1, 2, 1)]
    settings.TRUST_X_FORWARDED_FOR = False
    # Untrusted, the header is ignored: both count against REMOTE_ADDR.
    untrusted = [via_proxy(f"198.51.100.7, 203.0.113.{n}") for n in (3, 4)]

    assert trusted == [400, 400, 429]
    assert untrusted == [400, 429]
