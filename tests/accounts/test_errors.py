"""Errors under /v1 and /oauth are JSON (never Django's debug page, even with DEBUG on), a
busy database is a 503 with Retry-After, and every 404 under /v1 has one body."""

import logging
from unittest import mock

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError
from django.test import Client

from accounts.oauth_views import TokenView
from accounts.rest import AccessTokenAuthentication
from tests.factories import make_access_token, make_account
from tests.oauth_flow import authorize_params, make_connected_user, make_integrator


@pytest.fixture(autouse=True)
def debug_on(settings):
    settings.DEBUG = True  # the debug page is what an SDK must never get


@pytest.fixture
def browser():
    return Client(raise_request_exception=False)


@pytest.fixture
def token(db):
    return make_access_token(account=make_account(), scope="read_write")


def _errors_logged(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/v1/nothing-here"),
        ("post", "/v1/nothing-here"),
        ("get", "/v1/events/"),
        ("get", "/v1"),
        ("delete", "/oauth/elsewhere"),
    ],
)
def test_unknown_api_path_is_a_json_404(browser, db, method, path):
    response = getattr(browser, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"error": "not_found"}


def test_api_404_from_a_view_has_the_same_body(browser, token):
    # ProfileRevokeView raises Django's Http404 (DRF used to answer {"detail": "Not found."}).
    response = browser.post("/v1/profiles/pro_unknown/revoke", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found"}


def test_api_wrong_method_is_json_in_the_error_shape(browser, token):
    response = browser.put("/v1/account", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405
    assert response.json() == {"error": "method_not_allowed"}


def test_api_unexpected_exception_is_a_json_500_logged_once(browser, token, caplog):
    with mock.patch.object(
        AccessTokenAuthentication, "authenticate", side_effect=RuntimeError("boom")
    ):
        response = browser.get("/v1/account", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"error": "server_error"}
    [record] = _errors_logged(caplog)
    assert record.exc_info and "boom" in str(record.exc_info[1])


def test_api_locked_database_is_a_503_with_retry_after(browser, token, caplog):
    with mock.patch.object(
        AccessTokenAuthentication,
        "authenticate",
        side_effect=OperationalError("database is locked"),
    ):
        response = browser.get("/v1/account", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 503
    assert response.json() == {"error": "temporarily_unavailable"}
    assert int(response["Retry-After"]) > 0
    [record] = _errors_logged(caplog)
    assert record.exc_info is None  # a transient condition: one line, no traceback


def test_oauth_token_unexpected_exception_is_a_json_500(browser, db):
    with mock.patch.object(TokenView, "post", side_effect=RuntimeError("boom")):
        response = browser.post("/oauth/token", {"grant_type": "authorization_code"})
    assert response.status_code == 500
    assert response.json() == {"error": "server_error"}


def test_oauth_error_escaping_a_middleware_is_json_too(browser, db):
    # Saving the session happens in SessionMiddleware, after the view has answered.
    integrator = make_integrator()
    make_connected_user(browser)
    with mock.patch.object(
        SessionStore, "save", side_effect=OperationalError("database is locked")
    ):
        response = browser.get("/oauth/authorize", authorize_params(integrator))
    assert response.status_code == 503
    assert response.json() == {"error": "temporarily_unavailable"}
    assert "Retry-After" in response


def test_hosted_pages_keep_html_errors(browser, db):
    assert "text/html" in browser.get("/connect/nothing-here")["Content-Type"]
