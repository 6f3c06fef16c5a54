"""The official Cronofy Python SDK against our live server: code exchange, refresh, revoke."""

from urllib.parse import urlsplit

import pycronofy
import pytest
import requests
from django.test import Client
from pycronofy.exceptions import PyCronofyRequestError

from tests.oauth_flow import make_connected_user, make_integrator, redirect_params


@pytest.fixture
def sdk(live_server, monkeypatch):
    """A pycronofy client factory pointed at the live test server (docs/api.md, "Using
    Cronofy's SDKs")."""
    monkeypatch.setattr(pycronofy.settings, "API_BASE_URL", live_server.url)
    monkeypatch.setattr(pycronofy.settings, "APP_BASE_URL", live_server.url)
    return pycronofy.Client


def test_pycronofy_exchanges_refreshes_and_revokes(sdk, live_server, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    integrator = make_integrator()
    client = sdk(client_id=integrator.client_id, client_secret=integrator.client_secret)
    link = client.user_auth_link(integrator.redirect_uri, state="sdk-state")
    assert link.startswith(f"{live_server.url}/oauth/authorize?")

    # The browser part: a signed-in end-user opens the SDK's link and presses Allow.
    browser = Client()
    make_connected_user(browser)
    parts = urlsplit(link)
    page = browser.get(f"{parts.path}?{parts.query}", follow=True)
    form = page.context["form"]
    data = {k: v for k, v in form.initial.items() if v is not None} | {"allow": "on"}
    decision = browser.post(page.request["PATH_INFO"] + "?" + page.request["QUERY_STRING"], data)
    code = redirect_params(decision)["code"]
    assert redirect_params(decision)["state"] == "sdk-state"

    first = client.get_authorization_from_code(code)
    assert first["access_token"] and first["refresh_token"]

    probe = f"{live_server.url}/_probe"

    def status(token):
        return requests.get(
            probe, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).status_code

    second = client.refresh_authorization()
    assert second["refresh_token"] != first["refresh_token"]
    assert status(second["access_token"]) == 200
    assert status(first["access_token"]) == 401

    client.revoke_authorization()
    assert status(second["access_token"]) == 401

    with pytest.raises(PyCronofyRequestError):
        client.get_authorization_from_code(code)  # replayed code: 400 invalid_grant


pytestmark = pytest.mark.urls("tests.probe_urls")
