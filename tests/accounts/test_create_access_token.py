"""create_access_token: a developer's first token in one step, usable like any other."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.factories import make_account
from tests.oauth_flow import make_integrator

pytestmark = pytest.mark.django_db


def _mint(*args: str) -> dict:
    out = io.StringIO()
    call_command("create_access_token", *args, stdout=out)
    return json.loads(out.getvalue())


def test_create_access_token_reads_the_api_and_refreshes(client):
    account = make_account(email="ada@example.com")
    integrator = make_integrator()
    tokens = _mint(
        "--account", account.public_id, "--application", integrator.client_id,
        "--scope", "read_account list_calendars",
    )  # fmt: skip
    assert tokens["scope"] == "read_account list_calendars" and tokens["expires_in"] == 3600

    me = client.get("/v1/account", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert me.status_code == 200 and me.json()["account"]["account_id"] == account.public_id

    refreshed = client.post(
        "/oauth/token",
        {
            "grant_type": "refresh_token",
            "client_id": integrator.client_id,
            "client_secret": integrator.client_secret,
            "refresh_token": tokens["refresh_token"],
        },
    )
    assert refreshed.status_code == 200, refreshed.content
    assert refreshed.json()["access_token"] != tokens["access_token"]


def test_create_access_token_finds_the_application_by_name():
    account = make_account()
    make_integrator(name="Demo scheduler")
    tokens = _mint("--account", account.public_id, "--application", "Demo scheduler")
    assert tokens["scope"] == "read_write"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--account", "acc_nobody"], "no account"),
        (["--application", "nope"], "no single application"),
        (["--scope", "read_events sudo"], "unknown scope: sudo"),
    ],
)
def test_create_access_token_refuses_what_does_not_exist(args, message):
    account = make_account()
    integrator = make_integrator()
    base = {"--account": account.public_id, "--application": integrator.client_id}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    with pytest.raises(CommandError, match=message):
        _mint(*[part for pair in base.items() for part in pair])


def test_create_access_token_replayed_refresh_revokes_the_family(client):
    account = make_account()
    integrator = make_integrator()
    tokens = _mint("--account", account.public_id, "--application", integrator.client_id)

    def refresh(token: str):
        return client.post(
            "/oauth/token",
            {
                "grant_type": "refresh_token",
                "client_id": integrator.client_id,
                "client_secret": integrator.client_secret,
                "refresh_token": token,
            },
        )

    rotated = refresh(tokens["refresh_token"]).json()
    assert refresh(tokens["refresh_token"]).status_code == 400  # replay of the rotated one
    assert refresh(rotated["refresh_token"]).status_code == 400  # the whole family is revoked
    me = client.get("/v1/account", HTTP_AUTHORIZATION=f"Bearer {rotated['access_token']}")
    assert me.status_code == 401
