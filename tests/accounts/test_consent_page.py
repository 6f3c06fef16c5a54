"""What the consent page (/oauth/authorize) shows the end-user."""

import re

import pytest

from accounts.models import Profile
from tests.factories import make_account, make_profile
from tests.oauth_flow import authorize_params, make_integrator

pytestmark = [pytest.mark.urls("tests.probe_urls"), pytest.mark.django_db]


def consent_page_text(client, provider: str) -> str:
    account = make_account()
    make_profile(account=account, provider=provider, profile_name="alice@example.com")
    client.force_login(account.user)
    response = client.get("/oauth/authorize", authorize_params(make_integrator()))
    assert response.status_code == 200
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", response.content.decode()))


@pytest.mark.parametrize("provider", list(Profile.Provider))
def test_consent_page_names_the_connected_provider_once_without_doubled_parentheses(
    client, provider
):
    text = consent_page_text(client, provider)
    assert f"Calendar connected: alice@example.com via {provider.label}" in text
    assert "((" not in text and "))" not in text
