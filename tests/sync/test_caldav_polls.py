"""What a CalDAV poll costs: one PROPFIND Depth 1 per calendar home for the account-wide
unchanged check (Provider.unchanged_calendars), and connections and credentials reused between
polls, so that a poll takes neither a new TCP connection nor a 401 (issue 19).

Radicale plays the real server; tests.sync.dav_stub counts connections, requests and 401s and
serves the edge cases Radicale does not produce.
"""

import base64
import json
import logging

import niquests
import pytest

from sync.providers.base import AuthExpired, CalDAVCredentials, RateLimited, TemporaryError
from sync.providers.caldav import CalDAVProvider
from sync.services.credentials import build_provider
from tests.sync.dav_stub import DavStub
from tests.sync.helpers import soon, vcalendar, vevent


@pytest.fixture
def stub(settings):
    server = DavStub()
    settings.CONNECT_ALLOWED_ORIGINS = [*settings.CONNECT_ALLOWED_ORIGINS, server.origin]
    yield server
    server.close()


@pytest.fixture
def other_stub(settings):
    server = DavStub()
    settings.CONNECT_ALLOWED_ORIGINS = [*settings.CONNECT_ALLOWED_ORIGINS, server.origin]
    yield server
    server.close()


def cursor(*, ctag: str = "", token: str = "") -> str:
    """A cursor as the CalDAV adapter stores it."""
    return json.dumps({"ctag": ctag, "token": token}, sort_keys=True)


def caldav_at(stub: DavStub, password: str = "alice-pw"):
    """An adapter built as the worker builds it (the process's shared session and memory)."""
    return build_provider(
        "caldav", {"url": stub.url("/home/"), "username": "alice", "password": password}
    )


# --- unchanged_calendars against Radicale ------------------------------------------------------


def counting_session(sent: list[int]) -> niquests.Session:
    """A session that records, per adapter request, how many HTTP requests it took (a 401
    answered by the auth object is in the response's history)."""
    session = niquests.Session()
    session.hooks["response"].append(lambda r, **kwargs: sent.append(1 + len(r.history)))
    return session


def test_unchanged_calendars_reads_three_radicale_calendars_in_one_request(radicale_server):
    user = radicale_server.make_user()
    urls = [radicale_server.make_calendar(user, name=name) for name in ("A", "B", "C")]
    creds = CalDAVCredentials(radicale_server.base_url + "/", user, radicale_server.password(user))
    cursors = {url: CalDAVProvider(creds).fetch_changes(url, None).cursor for url in urls}
    radicale_server.put_event(urls[1], "changed", vcalendar(vevent("changed", soon(1))))

    sent: list[int] = []
    unchanged = CalDAVProvider(creds, counting_session(sent)).unchanged_calendars(cursors)

    assert unchanged == {urls[0], urls[2]}
    assert len(sent) == 1


# --- unchanged_calendars: the edge cases -------------------------------------------------------


def test_unchanged_calendars_one_request_for_a_home_of_three(stub):
    stub.members = {
        "/home/a/": {"ctag": "a1", "token": "ta1"},
        "/home/b/": {"ctag": "b1", "token": "tb2"},
        "/home/c/": {"ctag": "c2", "token": "tc2"},
    }
    cursors = {
        stub.url("/home/a/"): cursor(ctag="a0", token="ta1"),  # same sync token
        stub.url("/home/b/"): cursor(ctag="b1", token="tb1"),  # same ctag
        stub.url("/home/c/"): cursor(ctag="c1", token="tc1"),  # changed
    }

    unchanged = caldav_at(stub).unchanged_calendars(cursors)

    assert unchanged == {stub.url("/home/a/"), stub.url("/home/b/")}
    assert stub.counts.requests - stub.counts.challenges == 1


def test_unchanged_calendars_with_ctag_only_token_only_or_neither(stub):
    stub.members = {
        "/home/ctag-only/": {"ctag": "c"},
        "/home/token-only/": {"token": "t"},
        "/home/neither/": {},  # both properties in a 404 propstat
    }
    cursors = {
        stub.url("/home/ctag-only/"): cursor(ctag="c"),
        stub.url("/home/token-only/"): cursor(token="t"),
        stub.url("/home/neither/"): cursor(),
        stub.url("/home/not-listed/"): cursor(ctag="c", token="t"),
        stub.url("/home/never-synced/"): None,
    }

    unchanged = caldav_at(stub).unchanged_calendars(cursors)

    assert unchanged == {stub.url("/home/ctag-only/"), stub.url("/home/token-only/")}


def test_unchanged_calendars_asks_each_home_once(stub):
    stub.members = {"/one/a/": {"ctag": "1"}, "/one/b/": {"ctag": "2"}, "/two/c/": {"ctag": "3"}}
    cursors = {stub.url(path): cursor(ctag=props["ctag"]) for path, props in stub.members.items()}

    assert caldav_at(stub).unchanged_calendars(cursors) == set(cursors)
    assert stub.counts.requests - stub.counts.challenges == 2


@pytest.mark.parametrize("status", [403, 405, 501])
def test_unchanged_calendars_of_a_home_refusing_depth_one_is_empty(stub, status):
    stub.members = {"/home/a/": {"ctag": "a1"}}
    stub.refuse_depth_one = status

    assert caldav_at(stub).unchanged_calendars({stub.url("/home/a/"): cursor(ctag="a1")}) == set()


@pytest.mark.parametrize(
    ("status", "error"), [(429, RateLimited), (503, RateLimited), (500, TemporaryError)]
)
def test_unchanged_calendars_server_failures_are_translated(stub, status, error):
    stub.members = {"/home/a/": {"ctag": "a1"}}
    stub.status_override = status

    with pytest.raises(error) as raised:
        caldav_at(stub).unchanged_calendars({stub.url("/home/a/"): cursor(ctag="a1")})
    if error is RateLimited:
        assert raised.value.retry_after == 7


def test_unchanged_calendars_with_a_wrong_password_is_auth_expired(stub):
    stub.members = {"/home/a/": {"ctag": "a1"}}

    with pytest.raises(AuthExpired):
        caldav_at(stub, password="wrong").unchanged_calendars(
            {stub.url("/home/a/"): cursor(ctag="a1")}
        )


# --- connections and credentials reused between polls -----------------------------------------


def test_two_polls_through_two_adapters_open_one_connection_and_take_one_401(stub):
    stub.members = {"/home/a/": {"ctag": "a1", "token": "t1"}}
    calendar, stored = stub.url("/home/a/"), cursor(ctag="a1", token="t1")

    assert caldav_at(stub).fetch_changes(calendar, stored).unchanged
    assert caldav_at(stub).fetch_changes(calendar, stored).unchanged

    assert (stub.counts.connections, stub.counts.challenges, stub.counts.requests) == (1, 1, 3)


def test_two_account_wide_polls_open_one_connection_and_take_one_401(stub):
    stub.members = {"/home/a/": {"ctag": "a1"}, "/home/b/": {"ctag": "b1"}}
    cursors = {stub.url("/home/a/"): cursor(ctag="a1"), stub.url("/home/b/"): cursor(ctag="b1")}

    for _poll in range(2):
        assert caldav_at(stub).unchanged_calendars(cursors) == set(cursors)

    assert (stub.counts.connections, stub.counts.challenges, stub.counts.requests) == (1, 1, 3)


def test_digest_credentials_are_reused_between_adapters(settings):
    stub = DavStub(scheme="digest")
    settings.CONNECT_ALLOWED_ORIGINS = [stub.origin]
    stub.members = {"/home/a/": {"ctag": "a1"}}
    try:
        for _poll in range(2):
            assert caldav_at(stub).fetch_changes(stub.url("/home/a/"), cursor(ctag="a1")).unchanged
    finally:
        stub.close()
    assert stub.counts.challenges == 1
    assert stub.counts.authorizations == ["", "Digest", "Digest"]


def test_basic_credentials_go_unasked_only_to_the_origin_that_asked(stub, other_stub):
    """A calendar on another host than the login (iCloud's pNN-caldav hosts) gets the
    credentials only after it asks for them itself."""
    stub.members = {"/home/a/": {"ctag": "a1"}}
    other_stub.members = {"/elsewhere/b/": {"ctag": "b1"}}
    provider = caldav_at(stub)

    assert provider.fetch_changes(stub.url("/home/a/"), cursor(ctag="a1")).unchanged
    assert provider.fetch_changes(other_stub.url("/elsewhere/b/"), cursor(ctag="b1")).unchanged

    assert stub.counts.authorizations == ["", "Basic"]
    assert other_stub.counts.authorizations == ["", "Basic"]


def test_a_redirect_target_that_asks_for_credentials_does_not_get_them(stub, other_stub):
    """The first request to an origin goes without credentials; if the server redirects it to
    another origin that answers 401, the password stays home (niquests copies the request's
    hooks onto each redirect hop)."""
    stub.redirect_to = other_stub.url("/elsewhere/a/")
    other_stub.members = {"/elsewhere/a/": {"ctag": "a1"}}

    with pytest.raises(AuthExpired):
        caldav_at(stub).fetch_changes(stub.url("/home/a/"), cursor(ctag="a1"))

    assert other_stub.counts.challenges >= 1
    assert set(other_stub.counts.authorizations) == {""}


def test_refused_remembered_credentials_are_asked_for_again(stub):
    stub.members = {"/home/a/": {"ctag": "a1"}}
    calendar, stored = stub.url("/home/a/"), cursor(ctag="a1")
    assert caldav_at(stub).fetch_changes(calendar, stored).unchanged
    stub.password = "changed-at-the-server"

    with pytest.raises(AuthExpired):
        caldav_at(stub).fetch_changes(calendar, stored)
    stub.password = "alice-pw"
    assert caldav_at(stub).fetch_changes(calendar, stored).unchanged

    assert stub.counts.authorizations == ["", "Basic", "Basic", "", "Basic"]


@pytest.mark.parametrize(("before", "after"), [("Basic", "Digest"), ("Digest", "Basic")])
def test_a_server_that_changes_its_scheme_is_answered_at_once(stub, before, after):
    """The remembered scheme is refused with a challenge for another: the same request answers
    it (before, the 401 went up as AuthExpired and disconnected a login whose password works).
    The new scheme is remembered in its place."""
    stub.members = {"/home/a/": {"ctag": "a1"}}
    calendar, stored = stub.url("/home/a/"), cursor(ctag="a1")
    stub.scheme = before.lower()
    assert caldav_at(stub).fetch_changes(calendar, stored).unchanged
    stub.scheme = after.lower()

    assert caldav_at(stub).fetch_changes(calendar, stored).unchanged
    assert caldav_at(stub).fetch_changes(calendar, stored).unchanged

    assert stub.counts.authorizations == ["", before, before, after, after]


def test_a_scheme_change_with_a_wrong_password_is_refused_and_not_remembered(stub):
    """The other scheme is tried once; refused too, the 401 is the answer (the login waits for
    a relink) and nothing is remembered: the next poll asks from the start."""
    stub.members = {"/home/a/": {"ctag": "a1"}}
    calendar, stored = stub.url("/home/a/"), cursor(ctag="a1")
    stub.scheme = "digest"
    assert caldav_at(stub).fetch_changes(calendar, stored).unchanged
    stub.scheme, stub.password = "basic", "changed-at-the-server"

    for _poll in range(2):
        with pytest.raises(AuthExpired):
            caldav_at(stub).fetch_changes(calendar, stored)

    assert stub.counts.authorizations == ["", "Digest", "Digest", "Basic", "", "Basic"]


def test_ics_polls_share_one_connection_and_no_cookies(settings):
    feed = DavStub(scheme=None)
    settings.CONNECT_ALLOWED_ORIGINS = [feed.origin]
    try:
        for _poll in range(2):
            build_provider("ics", {"url": feed.url("/feed.ics")}).fetch_changes("feed", None)
    finally:
        feed.close()
    assert (feed.counts.connections, feed.counts.requests) == (1, 2)
    assert feed.counts.cookies == ["", ""]  # the feed's Set-Cookie is not sent back


def test_credentials_appear_in_no_log_line_even_at_debug(stub, caplog):
    stub.members = {"/home/a/": {"ctag": "a1"}}
    caplog.set_level(logging.DEBUG)

    for _poll in range(2):
        caldav_at(stub).unchanged_calendars({stub.url("/home/a/"): cursor(ctag="a1")})
    with pytest.raises(AuthExpired):
        caldav_at(stub, password="wrong-pw").unchanged_calendars({stub.url("/home/a/"): None})

    encoded = base64.b64encode(b"alice:alice-pw").decode()
    assert caplog.records  # the library and urllib3 did log the requests
    for secret in ("alice-pw", "wrong-pw", encoded):
        assert secret not in caplog.text


def test_remembered_digest_credentials_do_not_answer_a_redirect_targets_challenge(settings):
    """Remembered Digest carries the library's own 401 hook, which niquests copies onto every
    redirect hop: it must answer only the origin that asked, not a host a redirect leads to."""
    home, elsewhere = DavStub(scheme="digest"), DavStub(scheme="digest")
    settings.CONNECT_ALLOWED_ORIGINS = [home.origin, elsewhere.origin]
    home.members = {"/home/a/": {"ctag": "a1"}}
    elsewhere.members = {"/elsewhere/a/": {"ctag": "a1"}}
    try:
        assert caldav_at(home).fetch_changes(home.url("/home/a/"), cursor(ctag="a1")).unchanged
        home.redirect_to = elsewhere.url("/elsewhere/a/")
        with pytest.raises(AuthExpired):
            caldav_at(home).fetch_changes(home.url("/home/a/"), cursor(ctag="a1"))
    finally:
        home.close()
        elsewhere.close()
    assert home.counts.authorizations[-1] == "Digest"
    assert elsewhere.counts.challenges >= 1
    assert set(elsewhere.counts.authorizations) == {""}
