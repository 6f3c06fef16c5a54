"""ICS feeds through the sync engine, against a real HTTP feed server on 127.0.0.1."""

from datetime import timedelta

import pytest
from django.utils import timezone
from werkzeug import Response

from accounts.models import Profile
from calendars.models import ChangeLogEntry, Event
from sync import services
from sync.models import CalendarSyncState
from tests.factories import make_account
from tests.sync.helpers import soon, vcalendar, vevent

pytestmark = pytest.mark.django_db


class Feed:
    """A scriptable ICS feed served by pytest-httpserver (a real HTTP server)."""

    def __init__(self, httpserver):
        self.body = vcalendar()
        self.etag = ""
        self.status = 200
        self.headers: dict[str, str] = {}
        self.requests = []
        self.url = httpserver.url_for("/feed.ics")
        httpserver.expect_request("/feed.ics").respond_with_handler(self._handle)

    def _handle(self, request):
        self.requests.append(dict(request.headers))
        if self.status != 200:
            return Response("", status=self.status, headers=self.headers)
        if self.etag and request.headers.get("If-None-Match") == self.etag:
            return Response("", status=304)
        headers = {"ETag": self.etag} if self.etag else {}
        ctype = "text/html" if self.body.lstrip().startswith("<") else "text/calendar"
        return Response(self.body, status=200, headers=headers, content_type=ctype)


@pytest.fixture
def feed(httpserver):
    return Feed(httpserver)


def _connect_and_sync(feed):
    profile = services.connect_profile(
        account=make_account(), provider_key="ics", credentials_dict={"url": feed.url}
    )
    calendar = profile.calendars.get()
    return profile, calendar, services.sync_calendar(calendar_id=calendar.pk)


def _kinds(profile):
    """The event kinds of the account's change log, in order."""
    return list(
        ChangeLogEntry.objects.filter(account=profile.account, kind__startswith="event")
        .order_by("sequence")
        .values_list("kind", flat=True)
    )


def test_ics_sync_initial_then_uid_gone_is_deleted(feed):
    feed.body = vcalendar(vevent("a", soon(2)), vevent("b", soon(3)), header="X-WR-CALNAME:Team")
    profile, calendar, outcome = _connect_and_sync(feed)
    assert calendar.name == "Team" and calendar.is_readonly
    assert outcome.result.created == 2

    feed.body = vcalendar(vevent("a", soon(2)), vevent("c", soon(4)))
    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert (outcome.result.created, outcome.result.deleted, outcome.result.updated) == (1, 1, 0)
    assert Event.objects.get(calendar=calendar, provider_key="b").is_deleted
    assert sorted(_kinds(profile)[2:]) == ["event_created", "event_deleted"]


def test_ics_sync_uses_etag_and_writes_nothing_on_304(feed):
    feed.body, feed.etag = vcalendar(vevent("a", soon(2))), '"v1"'
    profile, calendar, _ = _connect_and_sync(feed)
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.status == "unchanged"
    assert feed.requests[-1].get("If-None-Match") == '"v1"'
    assert _kinds(profile) == ["event_created"]


def test_ics_sync_without_validators_compares_body_hash(feed):
    feed.body = vcalendar(vevent("a", soon(2)))
    profile, calendar, _ = _connect_and_sync(feed)
    assert services.sync_calendar(calendar_id=calendar.pk).status == "unchanged"
    # A new DTSTAMP alone (feeds regenerate it on every GET) changes the body, not the event.
    feed.body = feed.body.replace("DTSTAMP:20260101T000000Z", "DTSTAMP:20260202T000000Z")
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.status == "synced" and outcome.result.changed == 0
    assert _kinds(profile) == ["event_created"]


def test_ics_feed_turning_into_html_page_disconnects_profile(feed):
    feed.body = vcalendar(vevent("a", soon(2)))
    profile, calendar, _ = _connect_and_sync(feed)
    feed.body = "<!DOCTYPE html><html><body>Sign in</body></html>"

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "failed"
    profile.refresh_from_db()
    assert profile.status == Profile.Status.DISCONNECTED
    assert "web page" in profile.disconnected_reason
    assert not Event.objects.get(calendar=calendar).is_deleted  # the cache is kept


def test_ics_sync_rate_limited_honours_retry_after(feed):
    feed.body = vcalendar(vevent("a", soon(2)))
    _profile, calendar, _ = _connect_and_sync(feed)
    feed.status, feed.headers = 429, {"Retry-After": "7200"}
    before = timezone.now()

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    state = CalendarSyncState.objects.get(calendar=calendar)
    assert outcome.status == "failed" and state.last_error_class == "RateLimited"
    assert state.next_poll_at >= before + timedelta(seconds=7200 * 0.9)
    assert Profile.objects.get(pk=calendar.profile_id).is_connected


def test_ics_sync_maps_x_wr_timezone_and_windows_zone_names(feed):
    feed.body = vcalendar(
        vevent("floating", soon(2)).replace("Z\r\n", "\r\n"),
        "BEGIN:VEVENT\r\nUID:win\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART;TZID=Pacific Standard Time:20270115T090000\r\n"
        "DTEND;TZID=Pacific Standard Time:20270115T100000\r\nEND:VEVENT\r\n",
        header="X-WR-TIMEZONE:Europe/Paris",
    )
    _profile, calendar, _ = _connect_and_sync(feed)
    floating = Event.objects.get(calendar=calendar, provider_key="floating")
    assert floating.tzid == "Europe/Paris"
    local = soon(2).replace(tzinfo=None)
    assert floating.start.astimezone(timezone.get_fixed_timezone(0)).replace(tzinfo=None) != local
    win = Event.objects.get(calendar=calendar, provider_key="win")
    assert win.tzid == "America/Los_Angeles" and win.start.hour == 17  # 09:00 PST = 17:00 UTC
