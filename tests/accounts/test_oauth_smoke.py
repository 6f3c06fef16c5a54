import pytest

from tests.oauth_flow import (
    api_status,
    exchange_code,
    make_connected_user,
    make_integrator,
    obtain_code,
    refresh,
    revoke,
)

pytestmark = [pytest.mark.urls("tests.probe_urls"), pytest.mark.django_db]


def test_smoke(client):
    integrator = make_integrator()
    account, profile = make_connected_user(client)
    code = obtain_code(client, integrator)
    response = exchange_code(client, integrator, code)
    print(response.json())
    assert response.status_code == 200
    tokens = response.json()
    assert api_status(client, tokens["access_token"]) == 200
    r2 = refresh(client, integrator, tokens["refresh_token"])
    print(r2.json())
    assert r2.status_code == 200
    r3 = revoke(client, integrator, token=r2.json()["access_token"])
    assert r3.status_code == 200 and r3.content == b""
    assert api_status(client, r2.json()["access_token"]) == 401
