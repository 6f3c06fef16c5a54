"""Integrator applications: create_application, several active client secrets, rotation."""

import hashlib
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from oauth2_provider.models import Application
from rest_framework.test import APIRequestFactory

from accounts.models import ApplicationSecret, AuditEntry
from accounts.oauth_services import (
    active_client_secrets,
    add_client_secret,
    retire_client_secret,
    verify_client_secret,
)
from accounts.rest import ApiKeyAuthentication
from tests.oauth_flow import make_connected_user, make_integrator, token_request

pytestmark = pytest.mark.django_db


def test_create_application_command_prints_credentials_once(capsys):
    call_command(
        "create_application",
        "--name",
        "Acme",
        "--redirect-uri",
        "https://acme.example.com/cb",
        "--redirect-uri",
        "https://acme.example.com/cb2",
    )
    out = capsys.readouterr().out
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    application = Application.objects.get(client_id=lines["client_id"])
    assert application.redirect_uris.split() == [
        "https://acme.example.com/cb",
        "https://acme.example.com/cb2",
    ]
    assert application.authorization_grant_type == "authorization-code"
    secret = lines["client_secret"]
    assert verify_client_secret(application=application, secret=secret)
    row = ApplicationSecret.objects.get(application=application)
    assert row.secret_checksum == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in row.secret_hash
    assert active_client_secrets(application) == [secret]


def test_create_application_command_rejects_fragment_redirect_uri():
    with pytest.raises(CommandError):
        call_command(
            "create_application", "--name", "Bad", "--redirect-uri", "https://a.example.com/#x"
        )


def test_client_secret_rotation_keeps_both_active_until_retired(client):
    integrator = make_integrator()
    make_connected_user(client)
    new_secret = add_client_secret(application=integrator.application)
    body = {"grant_type": "refresh_token", "refresh_token": "unknown"}

    # Both secrets authenticate (invalid_grant, not invalid_client).
    for secret in (integrator.client_secret, new_secret):
        response = token_request(client, integrator, client_secret=secret, **body)
        assert response.json()["error"] == "invalid_grant"
    assert len(active_client_secrets(integrator.application)) == 2

    old = ApplicationSecret.objects.get(
        secret_checksum=hashlib.sha256(integrator.client_secret.encode()).hexdigest()
    )
    retire_client_secret(client_secret=old)
    response = token_request(client, integrator, client_secret=integrator.client_secret, **body)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert active_client_secrets(integrator.application) == [new_secret]
    with pytest.raises(ValueError):
        retire_client_secret(client_secret=ApplicationSecret.objects.get(is_active=True))


def test_client_secret_as_api_key_resolves_to_the_application():
    integrator = make_integrator()
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {integrator.client_secret}")
    _user, caller = ApiKeyAuthentication().authenticate(request)
    assert caller.application == integrator.application


def test_admin_created_application_gets_an_active_client_secret_shown_once(admin_client):
    page = admin_client.get("/admin/oauth2_provider/application/add/")
    assert set(page.context["adminform"].form.fields) == {"name", "client_type", "redirect_uris"}
    for unsupported in ("skip_authorization", "Implicit", "Resource owner password", "Device"):
        assert unsupported not in page.content.decode()
    response = admin_client.post(
        "/admin/oauth2_provider/application/add/",
        {
            "name": "Support-made",
            "client_type": "confidential",
            "redirect_uris": "https://made.example.com/cb",
        },
        follow=True,
    )
    [message] = [str(m) for m in response.context["messages"] if "client secret" in str(m)]
    secret = re.search(r"client secret (\S+) \(copy it now", message).group(1)
    application = Application.objects.get(name="Support-made")
    assert application.authorization_grant_type == Application.GRANT_AUTHORIZATION_CODE
    assert not application.skip_authorization
    assert verify_client_secret(application=application, secret=secret)
    assert secret not in application.client_secret
    assert AuditEntry.objects.filter(action="add application").count() == 1
    change = admin_client.get(f"/admin/oauth2_provider/application/{application.pk}/change/")
    assert secret not in change.content.decode()


def test_admin_application_form_refuses_bad_redirect_uris_without_a_500(admin_client):
    for uris in ("", "javascript:alert(1)", "https://x.example.com/cb#frag", "not a uri"):
        response = admin_client.post(
            "/admin/oauth2_provider/application/add/",
            {"name": "Bad", "client_type": "confidential", "redirect_uris": uris},
        )
        assert response.status_code == 200, uris  # the form again, with its error
        assert response.context["adminform"].form.errors, uris
    assert not Application.objects.filter(name="Bad").exists()
