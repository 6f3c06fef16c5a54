"""Helpers that drive our OAuth provider the way an integrator and a browser do."""

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from accounts.models import Account, Profile
from accounts.oauth_services import NewApplication, create_application
from tests.factories import make_account, make_profile

REDIRECT_URI = "https://integrator.example.com/callback"


@dataclass
class Integrator:
    application: object
    client_id: str
    client_secret: str
    redirect_uri: str = REDIRECT_URI


def make_integrator(*, name="Acme Scheduling", redirect_uris=None, client_type="confidential"):
    created: NewApplication = create_application(
        name=name, redirect_uris=redirect_uris or [REDIRECT_URI], client_type=client_type
    )
    return Integrator(
        application=created.application,
        client_id=created.application.client_id,
        client_secret=created.client_secret,
        redirect_uri=(redirect_uris or [REDIRECT_URI])[0],
    )


def make_connected_user(client, **account_fields) -> tuple[Account, Profile]:
    """An end-user with one connected profile, signed in on `client`."""
    account = make_account(**account_fields)
    profile = make_profile(account=account)
    client.force_login(account.user)
    return account, profile


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


def authorize_params(integrator: Integrator, **overrides) -> dict:
    params = {
        "response_type": "code",
        "client_id": integrator.client_id,
        "redirect_uri": integrator.redirect_uri,
        "scope": "read_account list_calendars read_events create_event delete_event",
        "state": "xyz-state",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def consent(client, integrator: Integrator, *, allow=True, **overrides):
    """GET the consent page as a signed-in user, then press Allow (or Deny)."""
    params = authorize_params(integrator, **overrides)
    page = client.get("/oauth/authorize", params)
    assert page.status_code == 200, page.content[:500]
    form = page.context["form"]
    data = {name: value for name, value in form.initial.items() if value is not None}
    if allow:
        data["allow"] = "on"
    return client.post(page.request["PATH_INFO"] + "?" + page.request["QUERY_STRING"], data)


def redirect_params(response) -> dict[str, str]:
    assert response.status_code in (301, 302, 303), response.status_code
    location = response["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def obtain_code(client, integrator: Integrator, **overrides) -> str:
    response = consent(client, integrator, **overrides)
    params = redirect_params(response)
    assert "code" in params, params
    return params["code"]


def token_request(client, integrator: Integrator, *, as_json=True, **fields):
    body = {"client_id": integrator.client_id, "client_secret": integrator.client_secret}
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    if as_json:
        return client.post(
            "/oauth/token",
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION="Bearer None",
        )
    return client.post("/oauth/token", body)


def exchange_code(client, integrator: Integrator, code: str, **fields):
    return token_request(
        client,
        integrator,
        grant_type="authorization_code",
        code=code,
        redirect_uri=integrator.redirect_uri,
        **fields,
    )


def refresh(client, integrator: Integrator, refresh_token: str, **fields):
    return token_request(
        client, integrator, grant_type="refresh_token", refresh_token=refresh_token, **fields
    )


def revoke(client, integrator: Integrator, **fields):
    body = {"client_id": integrator.client_id, "client_secret": integrator.client_secret}
    body.update(fields)
    return client.post("/oauth/token/revoke", body, content_type="application/json")


def api_status(client, access_token: str) -> int:
    """Status of a call authenticated with the access token (401 when it is dead)."""
    return client.get("/_probe", HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code
