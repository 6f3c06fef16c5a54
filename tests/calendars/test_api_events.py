"""GET /v1/events and its page links (docs/api.md, Reading events, Paging, Errors)."""

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calendars.models import Event
from calendars.reads import PAGE_SIZE
from calendars.services import apply_provider_events
from calendars.types import EventIdentity
from tests.calendars.helpers import (
    add_all_day_event,
    add_event,
    api_get,
    make_managed,
    make_world,
)
from tests.factories import (
    make_access_token,
    make_account,
    make_application,
    make_calendar,
    make_event_data,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
WINDOW = {"tzid": "Etc/UTC", "from": "2026-11-01", "to": "2026-12-31"}


@pytest.fixture
def ctx(db):
    return make_world(email=None, calendar_name=None)


def read(client, token, **params):
    response = api_get(client, "/v1/events", token, params)
    assert response.status_code == 200, response.content
    return response.json()


def uids(body) -> list[str]:
    return [e["event_uid"] for e in body["events"]]


# --- authentication, scopes, errors ----------------------------------------------------------


def test_events_without_token_is_401(client, db):
    response = api_get(client, "/v1/events", None, WINDOW)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_events_revoked_or_unknown_token_is_401(client, ctx):
    assert api_get(client, "/v1/events", "not-a-token", WINDOW).status_code == 401


def test_events_without_read_events_scope_is_403(client, ctx):
    token = make_access_token(account=ctx.account, scope="list_calendars read_account")
    response = api_get(client, "/v1/events", token, WINDOW)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]


def test_events_only_managed_needs_no_read_events_scope(client, ctx):
    token = make_access_token(account=ctx.account, application=ctx.application, scope="write_only")
    managed = make_managed(add_event(ctx.calendar, start=T0), ctx.application, "booking-1")
    add_event(ctx.calendar, start=T0)
    body = read(client, token, tzid="Etc/UTC", only_managed="true")
    assert uids(body) == [managed.event_uid]


def test_events_missing_tzid_is_422_with_cronofy_shape(client, ctx):
    response = api_get(client, "/v1/events", ctx.token, {"from": "2026-11-01"})
    assert response.status_code == 422
    assert response.json() == {
        "errors": {"tzid": [{"key": "errors.required", "description": "tzid must be specified"}]}
    }


@pytest.mark.parametrize(
    ("params", "field", "key"),
    [
        ({"tzid": "Mars/Olympus"}, "tzid", "errors.invalid_tzid"),
        ({"tzid": "../../etc/passwd"}, "tzid", "errors.invalid_tzid"),
        ({**WINDOW, "include_deleted": "maybe"}, "include_deleted", "errors.must_be_boolean"),
        ({**WINDOW, "from": "yesterday"}, "from", "errors.invalid_time"),
        ({**WINDOW, "to": "2026-13-45"}, "to", "errors.invalid_date"),
        (
            {**WINDOW, "last_modified": "2026-11-01T25:00:00Z"},
            "last_modified",
            "errors.invalid_time",
        ),
        ({**WINDOW, "from": "2026-12-31", "to": "2026-11-01"}, "to", "errors.must_be_after_from"),
    ],
)
def test_events_bad_parameters_are_422(client, ctx, params, field, key):
    response = api_get(client, "/v1/events", ctx.token, params)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert list(errors) == [field]
    assert errors[field][0]["key"] == key
    assert errors[field][0]["description"]


def test_events_other_accounts_calendar_id_is_404(client, ctx):
    foreign = make_calendar()
    add_event(foreign, start=T0)
    response = api_get(
        client, "/v1/events", ctx.token, {**WINDOW, "calendar_ids[]": [foreign.public_id]}
    )
    assert response.status_code == 404
    unknown = api_get(client, "/v1/events", ctx.token, {**WINDOW, "calendar_ids[]": ["cal_nope"]})
    assert unknown.status_code == 404


def test_events_never_show_another_accounts_events(client, ctx):
    add_event(make_calendar(), start=T0)
    assert read(client, ctx.token, **WINDOW)["events"] == []


# --- shape -----------------------------------------------------------------------------------


def test_events_event_fields_and_time_encoding(client, ctx):
    timed = add_event(
        ctx.calendar,
        start=T0,
        summary="Planning",
        description="Quarterly",
        location_description="Room 1",
        location_lat="51.5",
        location_long="-0.12",
        attendees=[{"email": "a@example.com", "display_name": "A", "status": "accepted"}],
        organizer={"email": "o@example.com", "display_name": "O"},
        categories=["work"],
        participation_status="accepted",
        meeting_url="https://meet.example.com/x",
        ical_uid="ical-1@example.com",
    )
    all_day = add_all_day_event(ctx.calendar, first=date(2026, 11, 24), days=2)

    events = read(client, ctx.token, **WINDOW)["events"]

    assert [e["event_uid"] for e in events] == [timed.event_uid, all_day.event_uid]
    first = events[0]
    assert first["calendar_id"] == ctx.calendar.public_id
    assert first["event_uid"].startswith("evt_external_")
    assert "event_id" not in first
    assert (first["start"], first["end"]) == ("2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")
    assert first["summary"] == "Planning" and first["description"] == "Quarterly"
    assert first["location"] == {"description": "Room 1"}  # lat/long only with include_geo
    assert first["attendees"][0]["status"] == "accepted"
    assert first["organizer"] == {"email": "o@example.com", "display_name": "O"}
    assert first["participation_status"] == "accepted"
    assert first["status"] == first["event_status"] == "confirmed"
    assert first["transparency"] == "opaque"
    assert first["categories"] == ["work"]
    assert first["recurring"] is False and "series_identifier" not in first
    assert first["event_private"] is False and first["deleted"] is False
    # An external event on a writable calendar, read_write token; the end-user is not invited.
    assert first["options"] == {
        "delete": True,
        "update": True,
        "change_participation_status": False,
    }
    assert first["meeting_url"] == "https://meet.example.com/x"
    assert first["created"].endswith("Z") and first["updated"].endswith("Z")
    assert (events[1]["start"], events[1]["end"]) == ("2026-11-24", "2026-11-26")

    geo = read(client, ctx.token, **WINDOW, include_geo="true")["events"][0]
    assert geo["location"] == {"description": "Room 1", "lat": "51.5", "long": "-0.12"}


def test_events_response_is_json_utf8(client, ctx):
    response = api_get(client, "/v1/events", ctx.token, WINDOW)
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {"pages": {"current": 1, "total": 1}, "events": [], "sync_status": {}}


def test_events_recurring_instances_share_a_series_identifier(client, ctx):
    series = [
        make_event_data(
            key="weekly@example.com",
            start=T0 + timedelta(days=7 * i),
            original_start=T0 + timedelta(days=7 * i),
            is_recurring=True,
        )
        for i in range(3)
    ]
    apply_provider_events(calendar=ctx.calendar, upserts=series)
    events = read(client, ctx.token, tzid="Etc/UTC", **{"from": "2026-11-20", "to": "2026-12-05"})[
        "events"
    ]
    assert [e["start"] for e in events] == ["2026-11-23T09:00:00Z", "2026-11-30T09:00:00Z"]
    assert all(e["recurring"] for e in events)
    assert len({e["series_identifier"] for e in events}) == 1
    assert len({e["event_uid"] for e in events}) == 2


# --- window ----------------------------------------------------------------------------------


def test_events_window_boundaries_are_half_open(client, ctx):
    ends_at_from = add_event(ctx.calendar, start=T0 - timedelta(minutes=30))  # ends at T0
    ends_after_from = add_event(ctx.calendar, start=T0 - timedelta(minutes=29))
    starts_before_to = add_event(ctx.calendar, start=T0 + timedelta(minutes=59))
    add_event(ctx.calendar, start=T0 + timedelta(hours=1))  # starts at `to`

    body = read(
        client,
        ctx.token,
        tzid="Etc/UTC",
        **{"from": "2026-11-23T09:00:00Z", "to": "2026-11-23T10:00:00Z"},
    )

    assert ends_at_from.event_uid not in uids(body)
    assert uids(body) == [ends_after_from.event_uid, starts_before_to.event_uid]


def test_events_dates_are_read_in_tzid(client, ctx):
    # 2026-11-23 in New York starts at 05:00 UTC.
    early = add_event(ctx.calendar, start=datetime(2026, 11, 23, 4, 0, tzinfo=UTC))
    late = add_event(ctx.calendar, start=datetime(2026, 11, 23, 6, 0, tzinfo=UTC))
    params = {"from": "2026-11-23", "to": "2026-11-24"}
    assert uids(read(client, ctx.token, tzid="America/New_York", **params)) == [late.event_uid]
    assert uids(read(client, ctx.token, tzid="Etc/UTC", **params)) == [
        early.event_uid,
        late.event_uid,
    ]


def test_events_all_day_events_are_matched_in_tzid(client, ctx):
    event = add_all_day_event(ctx.calendar, first=date(2026, 11, 24))
    window = {"from": "2026-11-24T00:00:00Z", "to": "2026-11-24T03:00:00Z"}
    # In New York that window is the evening of the 23rd: the all-day 24th has not begun.
    assert uids(read(client, ctx.token, tzid="America/New_York", **window)) == []
    # In Berlin it is the early morning of the 24th.
    assert uids(read(client, ctx.token, tzid="Europe/Berlin", **window)) == [event.event_uid]
    # In Tokyo it is 09:00-12:00 on the 24th; a window ending at the 24th's local start is out.
    assert uids(read(client, ctx.token, tzid="Asia/Tokyo", **window)) == [event.event_uid]
    before = {"from": "2026-11-23", "to": "2026-11-24"}
    assert uids(read(client, ctx.token, tzid="Asia/Tokyo", **before)) == []
    after = {"from": "2026-11-25", "to": "2026-11-26"}
    assert uids(read(client, ctx.token, tzid="Pacific/Kiritimati", **after)) == []


@time_machine.travel(datetime(2026, 11, 23, 12, 0, tzinfo=UTC), tick=False)
def test_events_default_window_is_42_days_back_201_ahead(client, ctx):
    inside = [
        add_event(ctx.calendar, start=datetime(2026, 10, 12, 0, 0, tzinfo=UTC)),
        add_event(ctx.calendar, start=datetime(2027, 6, 11, 23, 0, tzinfo=UTC)),
    ]
    add_event(ctx.calendar, start=datetime(2026, 10, 11, 23, 0, tzinfo=UTC))
    add_event(ctx.calendar, start=datetime(2027, 6, 12, 0, 0, tzinfo=UTC))
    token = make_access_token(account=ctx.account)  # issued at the travelled-to time
    assert uids(read(client, token, tzid="Etc/UTC")) == [e.event_uid for e in inside]


def test_events_localized_times_across_a_dst_change(client, ctx):
    # Europe/London moves from GMT to BST on 2026-03-29.
    before = add_event(
        ctx.calendar, start=datetime(2026, 3, 28, 10, 0, tzinfo=UTC), tzid="Europe/London"
    )
    after = add_event(
        ctx.calendar, start=datetime(2026, 3, 30, 10, 0, tzinfo=UTC), tzid="Europe/London"
    )
    all_day = add_all_day_event(ctx.calendar, first=date(2026, 3, 29), tzid="Europe/London")
    params = {"tzid": "Europe/London", "from": "2026-03-27", "to": "2026-04-01"}

    events = {
        e["event_uid"]: e
        for e in read(client, ctx.token, localized_times="true", **params)["events"]
    }

    assert events[before.event_uid]["start"] == {
        "time": "2026-03-28T10:00:00Z",
        "tzid": "Europe/London",
    }
    assert events[after.event_uid]["start"] == {
        "time": "2026-03-30T11:00:00+01:00",
        "tzid": "Europe/London",
    }
    assert events[after.event_uid]["end"]["time"] == "2026-03-30T11:30:00+01:00"
    assert events[all_day.event_uid]["start"] == {"time": "2026-03-29", "tzid": "Europe/London"}
    plain = read(client, ctx.token, **params)["events"]
    assert {e["start"] for e in plain} >= {"2026-03-30T10:00:00Z", "2026-03-29"}


# --- last_modified, deleted, managed ---------------------------------------------------------


def test_events_last_modified_with_include_deleted_after_update_and_delete(client, ctx):
    with time_machine.travel(datetime(2026, 11, 1, 8, 0, tzinfo=UTC), tick=False):
        kept = make_event_data(key="kept", start=T0, summary="Old")
        moved = make_event_data(key="gone", start=T0 + timedelta(hours=2))
        untouched = make_event_data(key="same", start=T0 + timedelta(hours=4))
        apply_provider_events(calendar=ctx.calendar, upserts=[kept, moved, untouched])
    with time_machine.travel(datetime(2026, 11, 2, 8, 0, tzinfo=UTC), tick=False):
        apply_provider_events(
            calendar=ctx.calendar,
            upserts=[make_event_data(key="kept", start=T0, summary="New")],
            deletions=[EventIdentity("gone")],
        )
    since = {**WINDOW, "last_modified": "2026-11-02 08:00:00Z"}

    live = read(client, ctx.token, **since)["events"]
    assert [(e["summary"], e["deleted"]) for e in live] == [("New", False)]

    with_deleted = read(client, ctx.token, **since, include_deleted="True")["events"]
    assert [(e["summary"], e["deleted"]) for e in with_deleted] == [
        ("New", False),
        ("Meeting", True),
    ]

    assert len(read(client, ctx.token, **WINDOW)["events"]) == 2
    assert len(read(client, ctx.token, **WINDOW, include_deleted="true")["events"]) == 3


def test_events_managed_filters(client, ctx):
    external = add_event(ctx.calendar, start=T0)
    mine = make_managed(
        add_event(ctx.calendar, start=T0 + timedelta(hours=1)), ctx.application, "b-1"
    )
    theirs = make_managed(
        add_event(ctx.calendar, start=T0 + timedelta(hours=2)), make_application(), "other-1"
    )

    default = read(client, ctx.token, **WINDOW)
    assert uids(default) == [external.event_uid, theirs.event_uid]
    assert all("event_id" not in e for e in default["events"])

    included = read(client, ctx.token, **WINDOW, include_managed="TRUE")["events"]
    assert [e["event_uid"] for e in included] == [
        external.event_uid,
        mine.event_uid,
        theirs.event_uid,
    ]
    own = included[1]
    assert own["event_id"] == "b-1"
    assert own["options"] == {"delete": True, "update": True, "change_participation_status": False}
    assert included[2]["options"]["delete"] is False and "event_id" not in included[2]

    only = read(client, ctx.token, **WINDOW, only_managed="True")
    assert uids(only) == [mine.event_uid]


def test_events_calendar_ids_filter_accepts_both_spellings(client, ctx):
    other = make_calendar(profile=ctx.calendar.profile)
    first = add_event(ctx.calendar, start=T0)
    second = add_event(other, start=T0)
    bracket = read(client, ctx.token, **WINDOW, **{"calendar_ids[]": [other.public_id]})
    assert uids(bracket) == [second.event_uid]
    plain = read(client, ctx.token, **WINDOW, calendar_ids=ctx.calendar.public_id)
    assert uids(plain) == [first.event_uid]


def test_events_ignore_unknown_params_and_get_bodies(client, ctx):
    event = add_event(ctx.calendar, start=T0)
    response = client.generic(
        "GET",
        "/v1/events?tzid=Etc/UTC&from=2026-11-01 00:00:00Z&to=2026-12-01T00:00:00%2B01:00"
        "&unknown_bool=true&unknown_number=5",
        json.dumps({}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {ctx.token}",
    )
    assert response.status_code == 200
    assert uids(response.json()) == [event.event_uid]


# --- paging ----------------------------------------------------------------------------------


def _follow(client, token, url):
    path = url.removeprefix("http://testserver")
    response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return response.json()


def test_events_paging_has_no_duplicates_or_gaps_while_events_change(client, ctx):
    events = [
        add_event(ctx.calendar, start=T0 + timedelta(minutes=10 * i), summary=f"e{i}")
        for i in range(2 * PAGE_SIZE + 50)
    ]
    first = read(client, ctx.token, **WINDOW)
    assert first["pages"]["current"] == 1 and first["pages"]["total"] == 3
    assert uids(first) == [e.event_uid for e in events[:PAGE_SIZE]]

    # Between page reads: retitle a served and an unserved event, delete an unserved one, add
    # a new event in the unserved range, and add one at the very start.
    served, pending, doomed = events[5], events[220], events[150]
    apply_provider_events(
        calendar=ctx.calendar,
        upserts=[
            make_event_data(key=served.provider_key, start=served.start, summary="changed early"),
            make_event_data(key=pending.provider_key, start=pending.start, summary="changed late"),
            make_event_data(key="new-mid", start=T0 + timedelta(minutes=1205)),
            make_event_data(key="new-first", start=T0 - timedelta(hours=1)),
        ],
        deletions=[EventIdentity(doomed.provider_key)],
    )

    pages = [first]
    while "next_page" in pages[-1]["pages"]:
        pages.append(_follow(client, ctx.token, pages[-1]["pages"]["next_page"]))

    assert [p["pages"]["current"] for p in pages] == [1, 2, 3]
    assert all(p["pages"]["total"] == 3 for p in pages)
    seen = [e for p in pages for e in p["events"]]
    seen_uids = [e["event_uid"] for e in seen]
    assert len(seen_uids) == len(set(seen_uids)), "duplicates"
    expected = [e.event_uid for e in events if e.pk != doomed.pk]
    assert seen_uids == expected, "gaps, or events created after the first page"
    assert {e["summary"] for e in seen if e["event_uid"] == pending.event_uid} == {"changed late"}


def test_events_next_page_is_absolute_on_the_public_base_url(client, ctx, settings):
    for i in range(PAGE_SIZE + 1):
        add_event(ctx.calendar, start=T0 + timedelta(minutes=i))
    first = read(client, ctx.token, **WINDOW)
    assert first["pages"]["next_page"].startswith("http://testserver/v1/events/pages/")
    assert "?" not in first["pages"]["next_page"]

    settings.PUBLIC_BASE_URL = "https://calendar.example.org"
    first = read(client, ctx.token, **WINDOW)
    url = first["pages"]["next_page"]
    assert url.startswith("https://calendar.example.org/v1/events/pages/")
    second = _follow(client, ctx.token, url.removeprefix("https://calendar.example.org"))
    assert second["pages"] == {"current": 2, "total": 2}
    assert len(second["events"]) == 1


def test_events_page_links_ignore_extra_query_params(client, ctx):
    for i in range(PAGE_SIZE + 1):
        add_event(ctx.calendar, start=T0 + timedelta(minutes=i))
    url = read(client, ctx.token, **WINDOW)["pages"]["next_page"]
    body = _follow(client, ctx.token, url + "?tzid=Etc/UTC&include_managed=true")
    assert len(body["events"]) == 1


def test_events_tampered_foreign_or_unknown_page_token_is_404(client, ctx):
    for i in range(PAGE_SIZE + 1):
        add_event(ctx.calendar, start=T0 + timedelta(minutes=i))
    url = read(client, ctx.token, **WINDOW)["pages"]["next_page"]
    path = url.removeprefix("http://testserver")
    token = path.rsplit("/", 1)[1]
    tampered = path[:-6] + ("AAAAAA" if not path.endswith("AAAAAA") else "BBBBBB")
    assert client.get(tampered, HTTP_AUTHORIZATION=f"Bearer {ctx.token}").status_code == 404
    assert (
        client.get(
            "/v1/events/pages/deadbeef", HTTP_AUTHORIZATION=f"Bearer {ctx.token}"
        ).status_code
        == 404
    )
    # The same link with another account's token, or another application's, is not theirs.
    stranger = make_access_token(account=make_account())
    assert client.get(path, HTTP_AUTHORIZATION=f"Bearer {stranger}").status_code == 404
    other_app = make_access_token(account=ctx.account)
    assert client.get(path, HTTP_AUTHORIZATION=f"Bearer {other_app}").status_code == 404
    # A free/busy page link cannot be replayed on /v1/events and vice versa.
    assert (
        client.get(
            f"/v1/free_busy/pages/{token}", HTTP_AUTHORIZATION=f"Bearer {ctx.token}"
        ).status_code
        == 404
    )
    assert client.get(path).status_code == 401


def test_events_expired_page_token_is_404(client, ctx):
    for i in range(PAGE_SIZE + 1):
        add_event(ctx.calendar, start=T0 + timedelta(minutes=i))
    with time_machine.travel(datetime(2026, 11, 1, tzinfo=UTC), tick=False):
        url = read(client, ctx.token, **WINDOW)["pages"]["next_page"]
    with time_machine.travel(datetime(2026, 11, 2, 0, 1, tzinfo=UTC), tick=False):
        token = make_access_token(account=ctx.account, application=ctx.application)
        response = client.get(
            url.removeprefix("http://testserver"), HTTP_AUTHORIZATION=f"Bearer {token}"
        )
    assert response.status_code == 404


def test_events_queries_per_page_are_constant(client, ctx):
    def count_queries(params):
        with CaptureQueriesContext(connection) as captured:
            body = read(client, ctx.token, **params)
        return len(captured), body

    add_event(ctx.calendar, start=T0)
    small, body = count_queries(WINDOW)
    assert len(body["events"]) == 1

    other = make_calendar(profile=ctx.calendar.profile)
    for i in range(3 * PAGE_SIZE):
        calendar = ctx.calendar if i % 2 else other
        event = add_event(
            calendar,
            start=T0 + timedelta(minutes=i),
            attendees=[{"email": f"a{i}@example.com", "status": "accepted"}],
            is_recurring=True,
        )
        if i % 3 == 0:
            make_managed(event, ctx.application, f"id-{i}")
    full, body = count_queries({**WINDOW, "include_managed": "true"})
    assert len(body["events"]) == PAGE_SIZE
    # The first page of a multi-page read adds exactly one COUNT for pages.total.
    assert full == small + 1
    filtered, _ = count_queries(
        {**WINDOW, "calendar_ids[]": [ctx.calendar.public_id, other.public_id]}
    )
    assert filtered == full + 1  # resolving the calendar ids

    with CaptureQueriesContext(connection) as captured:
        _follow(client, ctx.token, body["pages"]["next_page"])
    assert len(captured) == small  # later pages: no count


def test_events_stored_as_deleted_do_not_count_toward_pages(client, ctx):
    events = [
        add_event(ctx.calendar, start=T0 + timedelta(minutes=i)) for i in range(PAGE_SIZE + 1)
    ]
    Event.objects.filter(pk=events[-1].pk).update(is_deleted=True)
    body = read(client, ctx.token, **WINDOW)
    assert body["pages"] == {"current": 1, "total": 1}


def test_events_include_moved_returns_events_moved_out_since_last_modified(client, ctx):
    with time_machine.travel(datetime(2026, 11, 1, 8, 0, tzinfo=UTC), tick=False):
        apply_provider_events(calendar=ctx.calendar, upserts=[make_event_data(key="m", start=T0)])
    with time_machine.travel(datetime(2026, 11, 2, 8, 0, tzinfo=UTC), tick=False):
        later = T0 + timedelta(days=90)
        apply_provider_events(
            calendar=ctx.calendar, upserts=[make_event_data(key="m", start=later)]
        )
    since = {**WINDOW, "last_modified": "2026-11-02T00:00:00Z"}
    assert read(client, ctx.token, **since)["events"] == []
    moved = read(client, ctx.token, **since, include_moved="true")["events"]
    assert [e["start"] for e in moved] == ["2027-02-21T09:00:00Z"]


def test_events_extended_transparency_says_out_of_office(client, ctx):
    away = add_event(ctx.calendar, start=T0, extended_transparency="out_of_office")
    plain = add_event(ctx.calendar, start=T0 + timedelta(hours=2), transparency="transparent")
    by_uid = {e["event_uid"]: e for e in read(client, ctx.token, **WINDOW)["events"]}
    assert by_uid[away.event_uid]["extended_transparency"] == "out_of_office"
    assert by_uid[away.event_uid]["transparency"] == "opaque"
    assert by_uid[plain.event_uid]["extended_transparency"] == "transparent"
