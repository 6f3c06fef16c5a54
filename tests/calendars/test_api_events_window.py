"""The window of GET /v1/events, /v1/free_busy and availability at its edges: the scan is
bounded on start from both sides and the events longer than a day are read apart
(EventQuerySet.split_by_reach; docs/api.md, Reading events)."""

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calendars.models import LONG_EVENT_SPAN, Event
from calendars.reads import PAGE_SIZE
from calendars.services import apply_provider_events
from sync.models import CalendarSyncState
from tests.calendars.helpers import add_all_day_event, add_event, api_get, make_world
from tests.factories import make_access_token, make_event_data

FROM = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TO = FROM + timedelta(days=7)
WINDOW = {"tzid": "Etc/UTC", "from": "2026-11-23T09:00:00Z", "to": "2026-11-30T09:00:00Z"}


@pytest.fixture
def ctx(db):
    return make_world(email=None, calendar_name=None)


def read_all(client, token, path="/v1/events", key="events", **params) -> list[dict]:
    """Every page of a read, following next_page."""
    response = api_get(client, path, token, params)
    rows = []
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        rows.extend(body[key])
        next_page = body["pages"].get("next_page")
        if not next_page:
            return rows
        response = api_get(client, next_page.removeprefix("http://testserver"), token, {})


def uids(rows) -> list[str]:
    return [row["event_uid"] for row in rows]


def with_history(calendar, days: int = 30) -> None:
    """A month of short events ending two days before the window (before its first local day
    in any zone), which no read of it may return."""
    apply_provider_events(
        calendar=calendar,
        upserts=[
            make_event_data(start=FROM - timedelta(days=days + 2, hours=-i), minutes=60)
            for i in range(days * 24 - 2)
        ],
    )


@pytest.mark.parametrize(
    "span",
    [
        timedelta(hours=23),
        LONG_EVENT_SPAN,
        LONG_EVENT_SPAN + timedelta(seconds=1),
        LONG_EVENT_SPAN + timedelta(minutes=1),
        LONG_EVENT_SPAN + timedelta(minutes=2),
        timedelta(days=3),
        timedelta(days=40),
    ],
)
def test_events_ending_at_from_are_out_and_a_minute_later_in_whatever_their_span(client, ctx, span):
    with_history(ctx.calendar)
    minutes = int(span.total_seconds() // 60)
    add_event(ctx.calendar, start=FROM - span, minutes=minutes)  # ends exactly at from
    inside = add_event(ctx.calendar, start=FROM - span + timedelta(minutes=1), minutes=minutes)
    assert uids(read_all(client, ctx.token, **WINDOW)) == [inside.event_uid]


def test_events_spanning_the_whole_window_come_first_in_start_order(client, ctx):
    with_history(ctx.calendar)
    in_window = add_event(ctx.calendar, start=FROM + timedelta(days=1))
    month = add_event(ctx.calendar, start=FROM - timedelta(days=20), minutes=60 * 24 * 40)
    week = add_event(ctx.calendar, start=FROM - timedelta(days=3), minutes=60 * 24 * 12)
    before_to = add_event(ctx.calendar, start=TO - timedelta(minutes=1))
    add_event(ctx.calendar, start=TO, minutes=60 * 24 * 3)  # starts at `to`: out
    expected = [month, week, in_window, before_to]
    assert uids(read_all(client, ctx.token, **WINDOW)) == [e.event_uid for e in expected]


def test_events_pages_cross_from_the_long_events_to_the_others_once_each(client, ctx):
    long_ones = [
        make_event_data(start=FROM - timedelta(days=5, minutes=-i), minutes=60 * 24 * 6)
        for i in range(PAGE_SIZE + 30)
    ]
    short_ones = [make_event_data(start=FROM + timedelta(minutes=i)) for i in range(PAGE_SIZE + 30)]
    apply_provider_events(calendar=ctx.calendar, upserts=long_ones + short_ones)
    first = api_get(client, "/v1/events", ctx.token, WINDOW).json()
    assert first["pages"]["total"] == 3
    rows = read_all(client, ctx.token, **WINDOW)
    assert [row["start"] for row in rows] == sorted(row["start"] for row in rows)
    assert len(set(uids(rows))) == len(rows) == 2 * (PAGE_SIZE + 30)


@pytest.mark.parametrize(
    ("tzid", "window_day"),
    [("Pacific/Kiritimati", date(2026, 11, 23)), ("America/Los_Angeles", date(2026, 11, 23))],
)
def test_events_all_day_at_the_edges_are_matched_by_date_in_tzid(client, ctx, tzid, window_day):
    with_history(ctx.calendar)
    # The window is the local days 23-29 November in tzid.
    window = {"tzid": tzid, "from": str(window_day), "to": str(window_day + timedelta(days=7))}
    add_all_day_event(ctx.calendar, first=window_day - timedelta(days=3), days=3)  # ends at from
    last_day_before = add_all_day_event(ctx.calendar, first=window_day - timedelta(days=3), days=4)
    one_day_first = add_all_day_event(ctx.calendar, first=window_day)
    spanning = add_all_day_event(ctx.calendar, first=window_day - timedelta(days=10), days=30)
    last_day = add_all_day_event(ctx.calendar, first=window_day + timedelta(days=6), days=5)
    add_all_day_event(ctx.calendar, first=window_day + timedelta(days=7), days=2)  # starts at to
    rows = read_all(client, ctx.token, **window)
    assert uids(rows) == [e.event_uid for e in (spanning, last_day_before, one_day_first, last_day)]


def test_free_busy_counts_a_long_busy_event_spanning_the_window(client, ctx):
    with_history(ctx.calendar)
    long_busy = add_event(ctx.calendar, start=FROM - timedelta(days=10), minutes=60 * 24 * 30)
    add_event(
        ctx.calendar,
        start=FROM - timedelta(days=10),
        minutes=60 * 24 * 30,
        transparency=Event.Transparency.TRANSPARENT,
    )
    token = make_access_token(account=ctx.account, scope="read_free_busy")
    rows = read_all(client, token, path="/v1/free_busy", key="free_busy", **WINDOW)
    assert [(row["start"], row["end"]) for row in rows] == [
        (f"{long_busy.start:%Y-%m-%dT%H:%M:%SZ}", f"{long_busy.end:%Y-%m-%dT%H:%M:%SZ}")
    ]


def test_availability_a_long_event_from_before_the_period_keeps_it_busy(client, ctx):
    CalendarSyncState.objects.create(calendar=ctx.calendar, last_synced_at=FROM)
    with_history(ctx.calendar)
    add_event(ctx.calendar, start=FROM - timedelta(days=3), minutes=60 * 24 * 3 + 60)
    period = {"start": "2026-11-23T09:00:00Z", "end": "2026-11-23T12:00:00Z"}
    body = {
        "participants": [{"members": [{"sub": ctx.account.public_id}], "required": "all"}],
        "required_duration": {"minutes": 60},
        "query_periods": [period],
    }
    response = client.post(
        "/v1/availability",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {make_access_token(account=ctx.account)}",
    )
    assert response.status_code == 200, response.content
    assert [(p["start"], p["end"]) for p in response.json()["available_periods"]] == [
        ("2026-11-23T10:00:00Z", "2026-11-23T12:00:00Z")
    ]


def _plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from _plan_nodes(child)


@pytest.mark.postgres
def test_a_later_page_seeks_the_index_to_its_cursor_and_reads_in_order(client, ctx):
    """The keyset (start, id) > cursor is an index condition of the page's main part (the
    events shorter than a day), so the page is read in index order from the cursor and stops
    after a page (spelled as an OR, the cursor was a filter, and on a 3-month window the
    planner scanned the rest of the window and sorted it)."""
    apply_provider_events(
        calendar=ctx.calendar,
        upserts=[make_event_data(start=FROM + timedelta(minutes=i)) for i in range(PAGE_SIZE + 30)],
    )
    first = api_get(client, "/v1/events", ctx.token, WINDOW).json()
    next_path = first["pages"]["next_page"].removeprefix("http://testserver")
    with CaptureQueriesContext(connection) as captured:
        assert api_get(client, next_path, ctx.token).status_code == 200
    page_sql = [
        q["sql"]
        for q in captured
        if 'FROM "calendars_event"' in q["sql"]
        and "COUNT" not in q["sql"]
        and "EXTRACT" not in q["sql"]  # the long events' part, found by its own index
    ]
    assert len(page_sql) == 1
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a test-sized table: look at indexes
        cursor.execute(f"EXPLAIN (FORMAT JSON) {page_sql[0]}")
        plan = cursor.fetchone()[0]
    plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    conditions = " ".join(node.get("Index Cond", "") for node in _plan_nodes(plan))
    assert "ROW(start, id) >" in conditions, plan
