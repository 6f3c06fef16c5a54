"""The shared API plumbing, exercised through a throwaway view."""

import hashlib

import pytest
from django.urls import path
from rest_framework.response import Response

from accounts import scopes
from accounts.models import ApplicationSecret
from accounts.rest import CronofyApiView, CronofyValidationError
from tests.factories import make_access_token, make_account, make_application


class EchoView(CronofyApiView):
    required_scopes = frozenset({scopes.READ_EVENTS})

    def get(self, request):
        if request.GET.get("fail"):
            raise CronofyValidationError.single("tzid", "errors.required", "tzid is required")
        return Response({"sub": self.account.public_id})


urlpatterns = [path("echo", EchoView.as_view())]
pytestmark = pytest.mark.urls("tests.accounts.test_rest")


def get(client, token=None, **params):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get("/echo", params, **headers)


def test_no_token_is_401_with_www_authenticate(client, db):
    response = get(client)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_unknown_and_expired_tokens_are_401(client, db):
    account = make_account()
    assert get(client, "nope").status_code == 401
    expired = make_access_token(account=account, expires_in=-1)
    assert get(client, expired).status_code == 401


def test_valid_token_reaches_the_view_as_its_account(client, db):
    account = make_account()
    response = get(client, make_access_token(account=account, scope="read_events"))
    assert response.status_code == 200
    assert response.json() == {"sub": account.public_id}


def test_missing_scope_is_403(client, db):
    token = make_access_token(account=make_account(), scope="create_event")
    response = get(client, token)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]


def test_shorthand_scopes_expand():
    assert scopes.READ_FREE_BUSY in scopes.expand("read_events")
    assert scopes.expand("read_write") == scopes.ALL
    assert scopes.expand("write_only") == {scopes.CREATE_EVENT, scopes.DELETE_EVENT}
    assert scopes.expand("bogus") == frozenset()


def test_api_key_rejected_where_not_allowed(client, db):
    app = make_application()
    ApplicationSecret.objects.create(
        application=app,
        secret_hash="-",
        secret_checksum=hashlib.sha256(b"CRN_key").hexdigest(),
        secret="CRN_key",
    )
    assert get(client, "CRN_key").status_code == 401


def test_validation_error_has_cronofy_shape(client, db):
    token = make_access_token(account=make_account(), scope="read_events")
    response = get(client, token, fail="1")
    assert response.status_code == 422
    assert response.json() == {
        "errors": {"tzid": [{"key": "errors.required", "description": "tzid is required"}]}
    }
