"""The hosted connect forms' markup: accessible descriptions point at elements of the page."""

import re

import pytest

from accounts.models import Profile
from tests.factories import make_profile

pytestmark = [pytest.mark.urls("tests.probe_urls"), pytest.mark.django_db]

FORM_PAGES = ["/connect/caldav/", "/connect/icloud/", "/connect/ics/"]


def described_by_ids(html: str) -> list[str]:
    values = re.findall(r'aria-describedby="([^"]*)"', html)
    return [ref for value in values for ref in value.split()]


def element_ids(html: str) -> set[str]:
    return set(re.findall(r'\sid="([^"]*)"', html))


@pytest.mark.parametrize("url", FORM_PAGES)
def test_connect_form_aria_describedby_refers_to_elements_of_the_page(client, url):
    html = client.get(url).content.decode()
    refs = described_by_ids(html)
    assert refs, "the form's help texts are not linked to their inputs"
    assert set(refs) <= element_ids(html)


@pytest.mark.parametrize("url", FORM_PAGES)
def test_connect_form_aria_describedby_refers_to_the_errors_shown(client, url):
    response = client.post(url, {})
    assert response.status_code == 400
    html = response.content.decode()
    refs = described_by_ids(html)
    assert any(ref.endswith("_error") for ref in refs)
    assert set(refs) <= element_ids(html)


def test_connected_page_names_a_provider_label_with_parentheses_once(client):
    profile = make_profile(provider=Profile.Provider.CALDAV, profile_name="alice@example.com")
    client.force_login(profile.account.user)
    html = client.get("/connect/done/").content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))
    assert f"alice@example.com is connected via {Profile.Provider.CALDAV.label}." in text
    assert "((" not in text and "))" not in text
