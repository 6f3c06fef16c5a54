"""End-user URLs (ICS feeds, CalDAV servers) never reach internal addresses: not from the
connect forms, not from the worker's polls, not through a redirect (sync/outbound.py).

The internal service is a real HTTP server on 127.0.0.1 that no test allows; it must receive
zero requests. pytest-httpserver plays the allowed public server (tests/conftest.py allows it).
"""

import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from werkzeug import Response

from accounts.models import Profile
from outbound.addresses import is_blocked, parse_origins
from sync import outbound, services
from sync.models import CalendarSyncState
from sync.views import CALDAV_AUTH_REFUSED_MESSAGE, CONNECT_FAILED_MESSAGE
from tests.factories import make_account, make_calendar, make_profile
from tests.sync.helpers import soon, vcalendar, vevent

pytestmark = pytest.mark.django_db


class InternalService:
    """An internal HTTP service that answers everything (an iCalendar body, a 207 to PROPFIND)
    and records each request it receives."""

    def __init__(self):
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                owner.requests.append(f"{self.command} {self.path}")
                body = vcalendar(vevent("internal-secret", soon())).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PROPFIND = do_OPTIONS = do_REPORT = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal():
    service = InternalService()
    yield service
    service.close()


def redirect_to(httpserver, location: str) -> str:
    """A URL on the allowed server that redirects to `location`."""
    httpserver.expect_request("/moved").respond_with_response(
        Response("", status=302, headers={"Location": location})
    )
    return httpserver.url_for("/moved")


def post_ics(client, url: str):
    return client.post("/connect/ics/", {"feed_url": url})


def post_caldav(client, url: str):
    return client.post(
        "/connect/caldav/", {"server_url": url, "username": "alice", "password": "pw"}
    )


def assert_generic_refusal(response):
    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == [CONNECT_FAILED_MESSAGE]
    assert not Profile.objects.exists()


def assert_refused(response):
    """Refused by the form's own URL check (no network, so nothing to scan), or by the policy
    with the generic message."""
    assert response.status_code == 400
    assert response.context["form"].non_field_errors() in ([], [CONNECT_FAILED_MESSAGE])
    assert response.context["form"].errors
    assert not Profile.objects.exists()


# --- the connect forms -----------------------------------------------------------------------


@pytest.mark.parametrize("post", [post_ics, post_caldav], ids=["ics", "caldav"])
def test_connect_form_internal_address_gets_zero_requests(client, internal, post):
    assert_generic_refusal(post(client, internal.url))
    assert internal.requests == []


@pytest.mark.parametrize("post", [post_ics, post_caldav], ids=["ics", "caldav"])
def test_connect_form_redirect_from_allowed_server_to_internal_is_not_followed(
    client, internal, httpserver, post
):
    assert_generic_refusal(post(client, redirect_to(httpserver, internal.url + "feed.ics")))
    assert len(httpserver.log) >= 1  # the allowed server was asked
    assert internal.requests == []


@pytest.mark.parametrize("post", [post_ics, post_caldav], ids=["ics", "caldav"])
@pytest.mark.parametrize(
    "address",
    [
        "http://localhost:{port}/",
        "http://LOCALHOST.:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",  # IPv4-mapped IPv6
        "http://[::ffff:7f00:1]:{port}/",
        "http://2130706433:{port}/",  # obfuscated 127.0.0.1
        "http://0x7f000001:{port}/",
        "http://127.1:{port}/",
        "http://0.0.0.0:{port}/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[fd00:ec2::254]/latest/meta-data/",
    ],
)
def test_connect_form_internal_address_forms_are_refused(client, internal, post, address):
    assert_refused(post(client, address.format(port=internal.port)))
    assert internal.requests == []


def test_connect_form_name_resolving_to_loopback_is_refused(client, internal):
    name = socket.gethostname()
    try:
        resolved = ipaddress.ip_address(socket.gethostbyname(name))
    except OSError:
        pytest.skip("the host name does not resolve")
    if not resolved.is_loopback:
        pytest.skip("the host name does not resolve to loopback here")
    assert_refused(post_ics(client, f"http://{name}:{internal.port}/"))
    assert internal.requests == []


@pytest.mark.parametrize("post", [post_ics, post_caldav], ids=["ics", "caldav"])
def test_connect_form_refuses_credentials_in_the_address(client, httpserver, post):
    url = httpserver.url_for("/feed.ics").replace("http://", "http://user:secret@")
    response = post(client, url)
    assert response.status_code == 400
    assert b"Remove the user name and password from the address" in response.content
    assert httpserver.log == []
    assert not Profile.objects.exists()


def test_connect_form_failures_all_read_the_same(client, internal, httpserver):
    """No port scanner: internal, closed, unresolvable, erroring and non-iCalendar answers give
    one message (which failure it was goes to the log only). A CalDAV server that answers
    401 is the one exception (test below)."""
    httpserver.expect_request("/500").respond_with_data("", status=500)
    httpserver.expect_request("/401").respond_with_data("", status=401)
    httpserver.expect_request("/page").respond_with_data("<html>login</html>")
    urls = [
        internal.url,
        "http://127.0.0.1:9/",
        "http://does-not-exist.invalid/",
        httpserver.url_for("/500"),
        httpserver.url_for("/401"),
        httpserver.url_for("/page"),
    ]
    for url in urls:
        assert_generic_refusal(post_ics(client, url))
    for url in urls[:4]:
        assert_generic_refusal(post_caldav(client, url))
    assert internal.requests == []


def test_connect_form_caldav_wrong_password_at_allowed_server_says_so(client, radicale_server):
    response = post_caldav(client, radicale_server.base_url + "/")
    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == [CALDAV_AUTH_REFUSED_MESSAGE]


def test_connect_form_internal_server_allowed_by_origin_is_reached(client, internal, settings):
    settings.CONNECT_ALLOWED_ORIGINS = [f"http://127.0.0.1:{internal.port}"]
    response = post_ics(client, internal.url + "feed.ics")
    assert response.status_code == 200
    assert internal.requests == ["GET /feed.ics"]
    # The allow-list names an origin: https on the same port stays refused.
    response = post_ics(client, f"https://127.0.0.1:{internal.port}/other.ics")
    assert response.context["form"].non_field_errors() == [CONNECT_FAILED_MESSAGE]
    assert internal.requests == ["GET /feed.ics"]


# --- the worker's polls ----------------------------------------------------------------------


def test_worker_ics_poll_redirected_to_internal_gets_zero_requests(internal, httpserver):
    served = {"redirect": False}

    def feed(request):
        if served["redirect"]:
            return Response("", status=302, headers={"Location": internal.url + "feed.ics"})
        return Response(vcalendar(vevent("e1", soon())), content_type="text/calendar")

    httpserver.expect_request("/feed.ics").respond_with_handler(feed)
    profile = services.connect_profile(
        account=make_account(),
        provider_key="ics",
        credentials_dict={"url": httpserver.url_for("/feed.ics")},
    )
    calendar = profile.calendars.get()
    assert services.sync_calendar(calendar_id=calendar.pk, full=True).status == "synced"
    served["redirect"] = True
    services.sync_calendar(calendar_id=calendar.pk, full=True)
    assert internal.requests == []
    assert CalendarSyncState.objects.get(calendar=calendar).consecutive_failures == 1


@pytest.mark.parametrize("provider", ["ics", "caldav"])
@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://2130706433:{port}/",
        "http://0x7f000001:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
)
def test_worker_poll_of_stored_internal_url_gets_zero_requests(internal, provider, template):
    """A profile stored before the policy existed (or by any other path) is not polled."""
    url = template.format(port=internal.port)
    if provider == "ics":
        profile = make_profile(
            provider="ics",
            provider_service="ics",
            provider_account_id=url,
            credentials={"url": url},
        )
        calendar = make_calendar(profile=profile, provider_calendar_id=url)
    else:
        profile = make_profile(
            provider_account_id=url + "alice/",
            credentials={"url": url, "username": "alice", "password": "pw"},
        )
        calendar = make_calendar(profile=profile, provider_calendar_id=url + "alice/cal/")
    assert services.sync_calendar(calendar_id=calendar.pk, full=True).status == "failed"
    assert internal.requests == []


# --- the policy itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip", ["169.254.169.254", "fd00:ec2::254", "100.64.0.1", "::ffff:10.0.0.1", "fc00::1"]
)
def test_is_blocked_metadata_cgnat_ula_and_mapped(ip):
    assert is_blocked(ipaddress.ip_address(ip))


@pytest.mark.parametrize(
    "value", ["http://127.0.0.1", "127.0.0.1:80", "http://h:1/path", "ftp://h:1", "http://u@h:1"]
)
def test_parse_origins_refuses_anything_but_scheme_host_port(value):
    with pytest.raises(ValueError):
        parse_origins([value])


# --- bounds ----------------------------------------------------------------------------------


class SlowFeed:
    """A feed server that answers after `think` seconds, then sends its body in small pieces,
    `pause` seconds apart."""

    def __init__(self, pieces: int, pause: float, think: float = 0.0):
        owner = self
        self.pieces, self.pause, self.think = pieces, pause, think

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                time.sleep(owner.think)
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar")
                self.end_headers()
                self.wfile.write(b"BEGIN:VCALENDAR\r\n")
                for _ in range(owner.pieces):
                    self.wfile.write(b"X-PAD:" + b"x" * 1000 + b"\r\n")
                    self.wfile.flush()
                    time.sleep(owner.pause)
                self.wfile.write(b"VERSION:2.0\r\nEND:VCALENDAR\r\n")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/feed.ics"
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_feed(settings):
    feed = SlowFeed(pieces=40, pause=0.05)
    settings.CONNECT_ALLOWED_ORIGINS = [feed.origin]
    yield feed
    feed.close()


def test_guarded_session_stops_reading_past_the_size_bound(slow_feed, monkeypatch):
    monkeypatch.setattr(outbound, "MAX_RESPONSE_BYTES", 10_000)
    with pytest.raises(outbound.OutboundRefused, match="larger than"):
        outbound.guarded_session().get(slow_feed.url, timeout=5)


def test_guarded_session_stops_reading_past_the_deadline(slow_feed, monkeypatch):
    monkeypatch.setattr(outbound, "DEADLINE_SECONDS", 0.5)
    started = time.monotonic()
    with pytest.raises(outbound.OutboundRefused, match="longer than"):
        outbound.guarded_session().get(slow_feed.url, timeout=5)
    assert time.monotonic() - started < 1.5  # the whole body would take 2 s


def test_guarded_session_deadline_leaves_a_slow_answer_to_the_read_timeout(settings, monkeypatch):
    """A server thinking before it answers (Radicale over a big calendar) is bounded by the
    caller's read timeout, not by the body deadline."""
    feed = SlowFeed(pieces=1, pause=0, think=0.6)
    settings.CONNECT_ALLOWED_ORIGINS = [feed.origin]
    monkeypatch.setattr(outbound, "DEADLINE_SECONDS", 0.5)
    try:
        response = outbound.guarded_session().get(feed.url, timeout=5)
    finally:
        feed.close()
    assert response.status_code == 200 and response.content.endswith(b"END:VCALENDAR\r\n")


def test_connect_form_feed_within_the_bounds_connects(client, slow_feed):
    assert post_ics(client, slow_feed.url).status_code == 200


@pytest.mark.parametrize("bound", [("MAX_RESPONSE_BYTES", 10_000), ("DEADLINE_SECONDS", 0.5)])
def test_connect_form_feed_over_the_bounds_gets_the_generic_message(
    client, slow_feed, monkeypatch, bound
):
    monkeypatch.setattr(outbound, *bound)
    assert_generic_refusal(post_ics(client, slow_feed.url))
