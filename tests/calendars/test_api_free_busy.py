"""GET /v1/free_busy (docs/api.md, Free/busy)."""

from datetime import UTC, date, datetime, timedelta

import pytest

from calendars.reads import PAGE_SIZE
from tests.calendars.helpers import (
    add_all_day_event,
    add_event,
    api_get,
    make_managed,
    make_world,
)
from tests.factories import make_access_token, make_application, make_calendar

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
WINDOW = {"tzid": "Etc/UTC", "from": "2026-11-01", "to": "2026-12-31"}


@pytest.fixture
def calendar(db):
    # Each test issues its own tokens, for the scope it is about (token_for).
    return make_world(email=None, calendar_name=None).calendar


def token_for(calendar, scope="read_free_busy"):
    return make_access_token(account=calendar.profile.account, scope=scope)


def read(client, token, **params):
    response = api_get(client, "/v1/free_busy", token, params)
    assert response.status_code == 200, response.content
    return response.json()


def test_free_busy_status_from_status_transparency_and_answer(client, calendar):
    hour = timedelta(hours=1)
    add_event(calendar, start=T0, participation_status="accepted")
    add_event(calendar, start=T0 + hour, status="tentative")
    add_event(calendar, start=T0 + 2 * hour, participation_status="needs_action")
    add_event(calendar, start=T0 + 3 * hour, transparency="transparent")
    add_event(calendar, start=T0 + 4 * hour, participation_status="declined")
    add_event(calendar, start=T0 + 5 * hour, status="cancelled")
    add_all_day_event(calendar, first=date(2026, 11, 25))

    body = read(client, token_for(calendar), **WINDOW)

    assert body["pages"] == {"current": 1, "total": 1}
    assert [(b["start"], b["free_busy_status"]) for b in body["free_busy"]] == [
        ("2026-11-23T09:00:00Z", "busy"),
        ("2026-11-23T10:00:00Z", "tentative"),
        ("2026-11-23T11:00:00Z", "tentative"),
        ("2026-11-25", "busy"),
    ]
    assert set(body["free_busy"][0]) == {"calendar_id", "start", "end", "free_busy_status"}
    assert body["free_busy"][0]["calendar_id"] == calendar.public_id

    with_free = read(client, token_for(calendar), **WINDOW, include_free="true")["free_busy"]
    assert [b["free_busy_status"] for b in with_free].count("free") == 3


def test_free_busy_read_events_scope_implies_free_busy(client, calendar):
    add_event(calendar, start=T0)
    assert len(read(client, token_for(calendar, "read_events"), **WINDOW)["free_busy"]) == 1


def test_free_busy_errors(client, calendar):
    assert api_get(client, "/v1/free_busy", None, WINDOW).status_code == 401
    no_scope = token_for(calendar, "list_calendars")
    assert api_get(client, "/v1/free_busy", no_scope, WINDOW).status_code == 403
    token = token_for(calendar)
    response = api_get(client, "/v1/free_busy", token, {"from": "2026-11-01"})
    assert response.status_code == 422
    assert response.json()["errors"]["tzid"][0]["key"] == "errors.required"
    foreign = {**WINDOW, "calendar_ids[]": [make_calendar().public_id]}
    assert api_get(client, "/v1/free_busy", token, foreign).status_code == 404


def test_reads_refuse_calendar_ids_postgresql_cannot_hold(client, calendar):
    # Found by tests/config/test_openapi_conformance.py: a 500 (DataError) on PostgreSQL.
    # The input middleware answers first; reads.py would answer 404 behind it.
    token = token_for(calendar, "read_events")
    for path in ("/v1/free_busy", "/v1/events"):
        for bad in ("cal_\x00x", "\x00"):
            params = {**WINDOW, "calendar_ids[]": [calendar.public_id, bad]}
            response = api_get(client, path, token, params)
            assert response.status_code == 422, (path, bad, response.content)
            [error] = response.json()["errors"]["calendar_ids[]"]
            assert error["key"] == "errors.invalid_characters"


def test_free_busy_managed_ids_and_localized(client, calendar):
    account = calendar.profile.account
    app = make_application()
    token = make_access_token(account=account, application=app, scope="read_free_busy")
    event = make_managed(add_event(calendar, start=T0, tzid="Europe/Paris"), app, "slot-1")
    assert read(client, token, **WINDOW)["free_busy"] == []
    body = read(
        client, token, **WINDOW, include_managed="True", include_ids="true", localized_times="true"
    )
    (block,) = body["free_busy"]
    assert block["event_uid"] == event.event_uid and block["event_id"] == "slot-1"
    assert block["start"] == {"time": "2026-11-23T10:00:00+01:00", "tzid": "Europe/Paris"}


def test_free_busy_pages_follow(client, calendar):
    for i in range(PAGE_SIZE + 5):
        add_event(calendar, start=T0 + timedelta(minutes=i))
    token = token_for(calendar)
    first = read(client, token, **WINDOW)
    url = first["pages"]["next_page"]
    assert url.startswith("http://testserver/v1/free_busy/pages/")
    second = client.get(url.removeprefix("http://testserver"), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert second.status_code == 200
    assert second.json()["pages"] == {"current": 2, "total": 2}
    assert len(second.json()["free_busy"]) == 5
