import pytest

from sync.providers.base import AuthExpired, CalDAVCredentials, IcsCredentials, TemporaryError
from sync.providers.caldav import CalDAVProvider
from sync.providers.ics import IcsProvider, normalize_feed_url
from tests.radicale import USERS


def test_caldav_list_calendars_finds_the_users_calendars(radicale_server):
    url = radicale_server.make_calendar("bob", name="Bob's work")
    provider = CalDAVProvider(
        CalDAVCredentials(radicale_server.base_url + "/", "bob", USERS["bob"])
    )
    calendars = provider.list_calendars()
    assert url in {c.provider_calendar_id for c in calendars}
    assert "Bob's work" in {c.name for c in calendars}
    assert provider.describe_account().provider_account_id.endswith("/bob/")


def test_caldav_wrong_password_is_auth_expired(radicale_server):
    provider = CalDAVProvider(CalDAVCredentials(radicale_server.base_url + "/", "bob", "wrong"))
    with pytest.raises(AuthExpired):
        provider.list_calendars()


def test_caldav_unreachable_server_is_temporary():
    provider = CalDAVProvider(CalDAVCredentials("http://127.0.0.1:9/", "bob", "x"))
    with pytest.raises(TemporaryError):
        provider.list_calendars()


def test_ics_feed_lists_one_readonly_calendar(httpserver):
    httpserver.expect_request("/feed.ics").respond_with_data(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nX-WR-CALNAME:Team\r\n"
        "END:VCALENDAR\r\n",
        content_type="text/calendar",
    )
    [calendar] = IcsProvider(IcsCredentials(httpserver.url_for("/feed.ics"))).list_calendars()
    assert calendar.name == "Team" and calendar.is_readonly


def test_ics_html_page_served_as_200_is_refused(httpserver):
    httpserver.expect_request("/feed.ics").respond_with_data(
        "<!DOCTYPE html><html><body>Please log in</body></html>", content_type="text/html"
    )
    with pytest.raises(AuthExpired):
        IcsProvider(IcsCredentials(httpserver.url_for("/feed.ics"))).list_calendars()


def test_ics_webcal_urls_become_https():
    assert normalize_feed_url("webcal://example.com/a.ics") == "https://example.com/a.ics"
