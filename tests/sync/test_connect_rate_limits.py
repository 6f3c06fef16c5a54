"""The hosted connect forms are rate limited per address and per session: over a limit the
form comes back with 429, Retry-After and a message, and nothing is fetched."""

import pytest
import time_machine

from accounts.models import Profile

pytestmark = [pytest.mark.django_db]

FEED = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nX-WR-CALNAME:Team feed\r\n"
    "BEGIN:VEVENT\r\nUID:1@test\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:20261123T090000Z\r\n"
    "DTEND:20261123T100000Z\r\nSUMMARY:Standup\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
FROZEN = "2026-11-23 09:00:20"


@pytest.fixture
def feed_urls(httpserver):
    """Three distinct feeds (one feed connected twice would be one profile)."""
    paths = [f"/team-{n}.ics" for n in range(3)]
    for path in paths:
        httpserver.expect_request(path).respond_with_data(FEED, content_type="text/calendar")
    return [httpserver.url_for(path) for path in paths]


@time_machine.travel(FROZEN, tick=False)
def test_connect_over_the_address_limit_is_429_and_fetches_nothing(
    client, settings, httpserver, feed_urls
):
    settings.CONNECT_RATE_LIMIT_PER_ADDRESS = 2
    settings.CONNECT_RATE_LIMIT_PER_SESSION = 0
    connected = [client.post("/connect/ics/", {"feed_url": url}) for url in feed_urls[:2]]
    fetched = len(httpserver.log)

    limited = client.post("/connect/ics/", {"feed_url": feed_urls[2]})
    caldav = client.post("/connect/caldav/", {"server_url": feed_urls[2], "username": "a"})

    assert [r.status_code for r in connected] == [200, 200]
    assert Profile.objects.filter(provider=Profile.Provider.ICS).count() == 2
    assert limited.status_code == caldav.status_code == 429
    assert limited["Retry-After"] == "40"
    assert "Too many attempts" in limited.content.decode()
    assert len(httpserver.log) == fetched  # the limited submissions reached no server
    assert client.get("/connect/ics/").status_code == 200  # the page itself is not limited
    elsewhere = client.post("/connect/ics/", {"feed_url": feed_urls[2]}, REMOTE_ADDR="203.0.113.5")
    assert elsewhere.status_code == 200  # another address has its own budget


@time_machine.travel(FROZEN, tick=False)
def test_connect_over_the_session_limit_is_429_for_that_session_only(client, settings):
    settings.CONNECT_RATE_LIMIT_PER_ADDRESS = 0
    settings.CONNECT_RATE_LIMIT_PER_SESSION = 2
    session = client.session  # the browser has a session (as after /oauth/authorize)
    session["seen"] = True
    session.save()

    statuses = [client.post("/connect/ics/", {"feed_url": ""}).status_code for _ in range(3)]
    other_browser = client.__class__().post("/connect/ics/", {"feed_url": ""})

    assert statuses == [400, 400, 429]  # invalid submissions count too
    assert other_browser.status_code == 400


@time_machine.travel(FROZEN, tick=False)
def test_connect_limited_form_keeps_what_was_typed_but_not_the_password(client, settings):
    settings.CONNECT_RATE_LIMIT_PER_ADDRESS = 1
    settings.CONNECT_RATE_LIMIT_PER_SESSION = 0
    data = {"server_url": "https://dav.example.com/", "username": "alice", "password": "s3cret"}
    client.post("/connect/caldav/", {"server_url": ""})

    limited = client.post("/connect/caldav/", data)

    page = limited.content.decode()
    assert limited.status_code == 429
    assert "alice" in page and "https://dav.example.com/" in page
    assert "s3cret" not in page
