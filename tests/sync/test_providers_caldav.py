"""The CalDAV adapter against Radicale: sync-collection, ctag short-circuit, fallback."""

import pytest

from sync.providers.base import (
    AlreadyExists,
    CalDAVCredentials,
    Conflict,
    CursorInvalid,
    NotFound,
)
from sync.providers.caldav import CalDAVProvider
from tests.sync.helpers import soon, vcalendar, vevent


@pytest.fixture
def user_calendar(radicale_server):
    user = radicale_server.make_user()
    url = radicale_server.make_calendar(user, name="Work")
    creds = CalDAVCredentials(radicale_server.base_url + "/", user, radicale_server.password(user))
    return radicale_server, url, creds


def test_caldav_list_calendars_reports_ctag_and_writability(user_calendar):
    _server, url, creds = user_calendar
    [calendar] = CalDAVProvider(creds).list_calendars()
    assert calendar.provider_calendar_id == url and calendar.name == "Work"
    assert calendar.ctag and not calendar.is_readonly
    assert calendar.sync_token == ""  # not asked for: the first sync asks


def test_caldav_fetch_changes_initial_incremental_and_unchanged(user_calendar):
    server, url, creds = user_calendar
    server.put_event(url, "a", vcalendar(vevent("a", soon(1))))
    server.put_event(url, "gone", vcalendar(vevent("gone", soon(1))))
    server.delete_event(url, "gone")  # Radicale lists it as 404 on the initial sync
    provider = CalDAVProvider(creds)

    first = provider.fetch_changes(url, None)
    assert first.is_full and [r.resource_id.rsplit("/", 1)[1] for r in first.resources] == ["a.ics"]
    assert first.deleted == [] and "UID:a" in first.resources[0].payload

    unchanged = provider.fetch_changes(url, first.cursor)
    assert unchanged.unchanged and unchanged.cursor == first.cursor

    server.put_event(url, "b", vcalendar(vevent("b", soon(2))))
    server.delete_event(url, "a")
    later = provider.fetch_changes(url, first.cursor)
    assert not later.is_full
    assert [r.resource_id.rsplit("/", 1)[1] for r in later.resources] == ["b.ics"]
    assert [h.rsplit("/", 1)[1] for h in later.deleted] == ["a.ics"]


def test_caldav_rejected_sync_token_is_cursor_invalid(user_calendar):
    _server, url, creds = user_calendar
    with pytest.raises(CursorInvalid):
        CalDAVProvider(creds).fetch_changes(url, "http://radicale.org/ns/sync/bogus")


def test_caldav_fallback_without_sync_collection_diffs_etags(user_calendar):
    server, url, creds = user_calendar
    server.put_event(url, "a", vcalendar(vevent("a", soon(1))))
    server.put_event(url, "b", vcalendar(vevent("b", soon(2))))
    provider = CalDAVProvider(creds, supports_sync_collection=False)
    first = provider.fetch_changes(url, None)
    known = {r.resource_id: r.version for r in first.resources}
    assert first.is_full and len(known) == 2

    server.put_event(url, "a", vcalendar(vevent("a", soon(3))))
    server.delete_event(url, "b")
    later = provider.fetch_changes(url, first.cursor, known_versions=lambda: known)

    assert [r.resource_id.rsplit("/", 1)[1] for r in later.resources] == ["a.ics"]
    assert [h.rsplit("/", 1)[1] for h in later.deleted] == ["b.ics"]


def test_caldav_event_writes_use_preconditions(user_calendar):
    _server, url, creds = user_calendar
    provider = CalDAVProvider(creds)
    written = provider.create_event(url, vcalendar(vevent("w1", soon(2))), idempotency_key="w1")
    assert written.resource_id.endswith("/w1.ics") and written.version
    with pytest.raises(AlreadyExists) as exc:
        provider.create_event(url, vcalendar(vevent("w1", soon(2))), idempotency_key="w1")
    assert exc.value.resource_id == written.resource_id
    current = provider.get_event(written.resource_id)
    assert current.version == written.version and "UID:w1" in current.payload

    updated = provider.update_event(
        written.resource_id,
        vcalendar(vevent("w1", soon(2), summary="New")),
        version=written.version,
    )
    assert updated.version and updated.version != written.version
    with pytest.raises(Conflict):
        provider.update_event(
            written.resource_id, vcalendar(vevent("w1", soon(2))), version=written.version
        )
    with pytest.raises(Conflict):
        provider.delete_event(written.resource_id, version=written.version)
    provider.delete_event(written.resource_id, version=updated.version)
    provider.delete_event(written.resource_id)  # already gone: not an error
    with pytest.raises(NotFound):
        provider.get_event(written.resource_id)


def test_caldav_event_hrefs_resolve_against_the_calendar_not_the_login_url(user_calendar):
    # iCloud logs in at caldav.icloud.com and serves calendars from pNN-caldav.icloud.com: an
    # href (a path) must go to the calendar's host. Here the login URL points nowhere.
    _server, url, creds = user_calendar
    written = CalDAVProvider(creds).create_event(
        url, vcalendar(vevent("w2", soon(2))), idempotency_key="w2"
    )
    elsewhere = CalDAVCredentials(
        url="http://127.0.0.1:9/", username=creds.username, password=creds.password
    )
    provider = CalDAVProvider(elsewhere)

    current = provider.get_event(written.resource_id, calendar_id=url)
    updated = provider.update_event(
        written.resource_id,
        current.payload.replace("Meeting", "Moved"),
        version=current.version,
        calendar_id=url,
    )
    provider.delete_event(written.resource_id, version=updated.version, calendar_id=url)

    with pytest.raises(NotFound):
        CalDAVProvider(creds).get_event(written.resource_id, calendar_id=url)
