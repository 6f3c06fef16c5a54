"""Hostile input to the event writes and the reads sharing their parsers: out-of-range times,
lone surrogates and absurdly nested JSON are a 422 in Cronofy's shape (or a 422 entry inside
/v1/batch), never a 500."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from calendars.models import Event, ManagedEventWrite
from tests.calendars.helpers import World, add_event, api_get, auth, make_world

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class InvitedWorld(World):
    """The participation-status writes need an event that Ada was invited to."""

    invitation: Event


@pytest.fixture
def ctx(db, settings):
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    settings.API_RATE_LIMIT_PER_SECOND = settings.API_RATE_LIMIT_PER_MINUTE = 0
    world = make_world(profile_name="ada@example.com")
    invitation = add_event(
        world.calendar,
        start=T0,
        attendees=[
            {"email": "boss@example.com", "display_name": "Boss", "status": "accepted"},
            {"email": "Ada@example.com", "display_name": "Ada", "status": "needs_action"},
        ],
        organizer={"email": "boss@example.com", "display_name": "Boss"},
        participation_status="needs_action",
    )
    return InvitedWorld(**vars(world), invitation=invitation)


def send(client, method, path, token, data):
    """`data` is sent as is when a str (raw JSON text), else JSON-encoded (which escapes lone
    surrogates as \\udXXX, exactly as a hostile client would send them)."""
    text = data if isinstance(data, str) else json.dumps(data)
    call = client.post if method == "POST" else client.delete
    return call(path, data=text, content_type="application/json", **auth(token))


def events_path(ctx) -> str:
    return f"/v1/calendars/{ctx.calendar.public_id}/events"


def participation_path(ctx) -> str:
    return f"{events_path(ctx)}/{ctx.invitation.event_uid}/participation_status"


def upsert_body(**overrides) -> dict:
    data = {
        "event_id": "booking-1",
        "summary": "Board meeting",
        "start": "2026-11-23T09:00:00Z",
        "end": "2026-11-23T10:00:00Z",
        "tzid": "Europe/London",
    }
    data.update(overrides)
    return data


def assert_cronofy_422(response, field=None):
    assert response.status_code == 422, response.content
    assert_cronofy_errors(response.json(), field)


def assert_cronofy_errors(payload, field=None):
    assert set(payload) == {"errors"}, payload
    errors = payload["errors"]
    assert isinstance(errors, dict) and errors
    if field is not None:
        assert field in errors, errors
    for entries in errors.values():
        assert isinstance(entries, list) and entries
        for entry in entries:
            assert set(entry) == {"key", "description"}
            assert entry["key"].startswith("errors.")
            assert isinstance(entry["description"], str)


# --- out-of-range times ----------------------------------------------------------------------

BAD_TIMES = [
    pytest.param({"start": "9999-12-31T23:00:00-05:00"}, "start", id="year-9999-negative-offset"),
    pytest.param({"start": "0001-01-01T00:00:00+05:00"}, "start", id="year-1-positive-offset"),
    pytest.param(
        {"start": {"time": "0001-01-01T00:30:00", "tzid": "Asia/Tokyo"}}, "start", id="year-1-tzid"
    ),
    pytest.param({"end": "9999-12-31T23:59:59Z"}, "end", id="year-9999-utc"),
    pytest.param({"start": "1000-01-01", "end": "1000-01-02"}, "start", id="year-1000-dates"),
    pytest.param(
        {"tzid": "Pacific/Kiritimati", "start": "0001-01-01T00:00:00"},
        "start",
        id="year-1-default-tzid",
    ),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_TIMES)
def test_upsert_with_out_of_range_time_is_422(client, ctx, request, overrides, field):
    response = send(client, "POST", events_path(ctx), ctx.token, upsert_body(**overrides))
    assert_cronofy_422(response, field)
    key = "errors.invalid_date" if "dates" in request.node.name else "errors.invalid_time"
    assert response.json()["errors"][field][0]["key"] == key
    assert not ManagedEventWrite.objects.exists()


@pytest.mark.parametrize(("overrides", "field"), BAD_TIMES)
def test_batch_upsert_with_out_of_range_time_is_a_422_entry(client, ctx, overrides, field):
    batch = {
        "batch": [
            {"method": "POST", "relative_url": events_path(ctx), "data": upsert_body(**overrides)},
            {"method": "POST", "relative_url": events_path(ctx), "data": upsert_body()},
        ]
    }
    response = send(client, "POST", "/v1/batch", ctx.token, batch)
    assert response.status_code == 207, response.content
    first, second = response.json()["batch"]
    assert first["status"] == 422
    assert_cronofy_errors(first["data"], field)
    assert second == {"status": 202}


def test_upsert_at_the_edges_of_the_range_is_accepted(client, ctx):
    for start, end in (
        ("1900-01-01T00:00:00+05:00", "1900-01-01T01:00:00Z"),
        ("2200-12-31T22:00:00Z", "2200-12-31T23:59:59-05:00"),
    ):
        body = upsert_body(start=start, end=end)
        assert send(client, "POST", events_path(ctx), ctx.token, body).status_code == 202


READ_WINDOWS = [
    pytest.param({"from": "9999-12-31T23:00:00-05:00"}, "from", id="from-9999-offset"),
    pytest.param({"from": "0001-01-01T00:00:00+05:00"}, "from", id="from-1-offset"),
    pytest.param({"from": "0001-01-01", "tzid": "Asia/Tokyo"}, "from", id="from-1-date-tokyo"),
    pytest.param({"from": "0001-01-01T00:30:00", "tzid": "Asia/Tokyo"}, "from", id="from-1-local"),
    pytest.param({"to": "9999-12-31"}, "to", id="to-9999-date"),
    pytest.param({"to": "9999-12-31T23:00:00Z"}, "to", id="to-9999-utc"),
    pytest.param(
        {"only_managed": "true", "to": "9999-12-31T23:00:00Z"}, "to", id="managed-to-9999"
    ),
    pytest.param({"last_modified": "0001-01-01T00:00:00+05:00"}, "last_modified", id="modified"),
]


READ_CASES = [
    pytest.param(path, *case.values, id=f"{path.rsplit('/', 1)[1]}-{case.id}")
    for path in ("/v1/events", "/v1/free_busy")
    for case in READ_WINDOWS
    if not (path == "/v1/free_busy" and case.values[1] == "last_modified")
]


@pytest.mark.parametrize(("path", "params", "field"), READ_CASES)
def test_reads_with_out_of_range_window_are_422(client, ctx, path, params, field):
    response = api_get(client, path, ctx.token, {"tzid": "Etc/UTC", **params})
    assert_cronofy_422(response, field)


# --- lone surrogates -------------------------------------------------------------------------

SURROGATE_BODIES = [
    pytest.param("POST", "events", upsert_body(summary="\ud800"), id="upsert-summary"),
    pytest.param("POST", "events", upsert_body(event_id="\udc00"), id="upsert-event-id"),
    pytest.param(
        "POST", "events", upsert_body(location={"description": "a\udfffb"}), id="upsert-nested"
    ),
    pytest.param("POST", "events", upsert_body(**{"\ud800": 1}), id="upsert-key"),
    pytest.param(
        "POST",
        "events",
        upsert_body(attendees={"invite": [{"email": "b@example.com", "display_name": "\ud800"}]}),
        id="upsert-attendee-name",
    ),
    pytest.param("DELETE", "events", {"event_id": "\udc00"}, id="delete-event-id"),
    pytest.param("DELETE", "events", {"event_uid": "\udc00"}, id="delete-event-uid"),
    pytest.param("DELETE", "bulk", {"calendar_ids": ["\udc00"]}, id="bulk-calendar-ids"),
    pytest.param("POST", "participation", {"status": "\ud800"}, id="participation-status"),
]


def _path(ctx, kind) -> str:
    return {
        "events": events_path(ctx),
        "bulk": "/v1/events",
        "participation": participation_path(ctx),
    }[kind]


@pytest.mark.parametrize(("method", "kind", "data"), SURROGATE_BODIES)
def test_lone_surrogates_in_body_are_422(client, ctx, method, kind, data):
    response = send(client, method, _path(ctx, kind), ctx.token, data)
    assert_cronofy_422(response)
    assert not ManagedEventWrite.objects.exists()


@pytest.mark.parametrize(("method", "kind", "data"), SURROGATE_BODIES)
def test_lone_surrogates_in_batch_are_422_never_500(client, ctx, method, kind, data):
    """The batch body as a whole is checked like every write body (as for NUL characters): a
    surrogate anywhere in it is a 422 for the batch, never a 500 entry."""
    batch = {
        "batch": [
            {"method": "POST", "relative_url": events_path(ctx), "data": upsert_body()},
            {"method": method, "relative_url": _path(ctx, kind), "data": data},
        ]
    }
    response = send(client, "POST", "/v1/batch", ctx.token, batch)
    assert_cronofy_422(response, "base")
    assert not ManagedEventWrite.objects.exists()


def test_lone_surrogate_in_batch_relative_url_is_422(client, ctx):
    url = f"/v1/calendars/\udc00/events/{ctx.invitation.event_uid}/participation_status"
    batch = {"batch": [{"method": "POST", "relative_url": url, "data": {"status": "accepted"}}]}
    assert_cronofy_422(send(client, "POST", "/v1/batch", ctx.token, batch), "base")


def test_is_clean_id_refuses_what_utf8_cannot_encode():
    from calendars.writes import is_clean_id

    assert is_clean_id("cal_abc")
    assert is_clean_id("café ✓")
    assert not is_clean_id("cal_\ud800")
    assert not is_clean_id("cal_\x00")


# --- absurdly nested JSON --------------------------------------------------------------------

DEEP = "[" * 50_000
DEEP_OBJECT = '{"a":' * 50_000
WRITE_ENDPOINTS = [
    pytest.param("POST", "events", id="upsert"),
    pytest.param("DELETE", "events", id="delete"),
    pytest.param("DELETE", "bulk", id="bulk-delete"),
    pytest.param("POST", "participation", id="participation"),
    pytest.param("POST", "batch", id="batch"),
]


def _write_path(ctx, kind) -> str:
    return "/v1/batch" if kind == "batch" else _path(ctx, kind)


@pytest.mark.parametrize("raw", [DEEP, DEEP_OBJECT], ids=["lists", "objects"])
@pytest.mark.parametrize(("method", "kind"), WRITE_ENDPOINTS)
def test_deeply_nested_json_is_answered_like_malformed_json(client, ctx, method, kind, raw):
    path = _write_path(ctx, kind)
    malformed = send(client, method, path, ctx.token, "{not json")
    assert_cronofy_422(malformed, "base")
    response = send(client, method, path, ctx.token, raw)
    assert_cronofy_422(response, "base")
    assert response.json()["errors"]["base"][0]["key"] == "errors.invalid_json"
    assert (
        response.json()["errors"]["base"][0]["key"] == malformed.json()["errors"]["base"][0]["key"]
    )
    assert not ManagedEventWrite.objects.exists()


def test_deeply_nested_json_inside_a_batch_entry_is_never_500(client, ctx):
    deep_data = '{"event_id": "x", "summary": ' + "[" * 50_000 + "]" * 50_000 + "}"
    entry = f'{{"method": "POST", "relative_url": "{events_path(ctx)}", "data": {deep_data}}}'
    raw = f'{{"batch": [{entry}]}}'
    assert_cronofy_422(send(client, "POST", "/v1/batch", ctx.token, raw), "base")
