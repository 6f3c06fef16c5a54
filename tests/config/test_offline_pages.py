"""Pages we serve load nothing from another host: they work offline and leak no visits."""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

from tests.oauth_flow import authorize_params, make_connected_user, make_integrator

pytestmark = pytest.mark.urls("tests.probe_urls")

CSS_REMOTE_REFERENCE = re.compile(r"@import|url\(\s*['\"]?(?:https?:)?//", re.IGNORECASE)


class _References(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


def assert_loads_nothing_from_another_host(response) -> None:
    assert response.status_code == 200
    html = response.content.decode()
    own_host = response.wsgi_request.get_host()
    assert "//cdn" not in html
    urls = references(html)
    assert urls, "the page references no asset at all"
    for url in urls:
        parts = urlsplit(url)
        assert parts.netloc in ("", own_host), url
        assert parts.scheme in ("", "http", "https"), url
        if parts.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
            relative = parts.path.removeprefix("/" + settings.STATIC_URL.lstrip("/"))
            found = finders.find(relative)
            assert found, f"static asset {relative} does not exist"
            if relative.endswith(".css"):
                with open(found, encoding="utf-8") as css:
                    assert not CSS_REMOTE_REFERENCE.search(css.read()), relative


def test_api_docs_load_swagger_ui_from_our_static_files(client):
    response = client.get("/v1/docs")
    assert_loads_nothing_from_another_host(response)
    static_prefix = "/" + settings.STATIC_URL.lstrip("/")
    scripts = [u for u in references(response.content.decode()) if u.endswith(".js")]
    assert f"{static_prefix}drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in scripts


@pytest.mark.django_db
def test_connect_page_loads_nothing_from_another_host(client):
    assert_loads_nothing_from_another_host(client.get("/connect/"))


@pytest.mark.django_db
def test_consent_page_loads_nothing_from_another_host(client):
    integrator = make_integrator()
    make_connected_user(client)
    response = client.get("/oauth/authorize", authorize_params(integrator))
    assert b"wants access to your calendars" in response.content
    assert_loads_nothing_from_another_host(response)
