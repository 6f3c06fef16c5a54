"""/v1/availability_rules and /v1/available_periods, and managed availability in
POST /v1/availability (rules in their zone across a DST change, periods, calendar_ids)."""

from datetime import UTC, datetime

import pytest
from django.utils import timezone

from sync.models import CalendarSyncState
from tests.calendars.helpers import add_event, auth, make_world, sdk_client
from tests.factories import make_access_token, make_calendar

RULE = {
    "availability_rule_id": "work_hours",
    "tzid": "Europe/London",
    "weekly_periods": [
        {"day": "monday", "start_time": "09:00", "end_time": "12:00"},
        {"day": "monday", "start_time": "13:00", "end_time": "17:00"},
    ],
}


@pytest.fixture
def world(db):
    world = make_world(scope="read_only")
    CalendarSyncState.objects.create(calendar=world.calendar, last_synced_at=timezone.now())
    return world


def call(client, method, path, token, data=None):
    return getattr(client, method)(path, data, content_type="application/json", **auth(token))


def availability(client, world, start, end, **member):
    body = {
        "participants": [{"members": [{"sub": world.account.public_id, **member}]}],
        "required_duration": {"minutes": 60},
        "query_periods": [{"start": start, "end": end}],
    }
    response = call(client, "post", "/v1/availability", world.token, body)
    assert response.status_code == 200, response.content
    return [(p["start"], p["end"]) for p in response.json()["available_periods"]]


def test_availability_rule_upsert_list_get_delete(client, world):
    response = call(client, "post", "/v1/availability_rules", world.token, RULE)
    assert response.status_code == 200, response.content
    assert response.json()["availability_rule"] == {**RULE, "calendar_ids": []}
    changed = {**RULE, "tzid": "America/New_York", "calendar_ids": [world.calendar.public_id]}
    assert call(client, "post", "/v1/availability_rules", world.token, changed).status_code == 200
    listed = call(client, "get", "/v1/availability_rules", world.token).json()
    assert listed == {"availability_rules": [changed]}
    one = call(client, "get", "/v1/availability_rules/work_hours", world.token).json()
    assert one["availability_rule"]["tzid"] == "America/New_York"
    assert (
        call(client, "delete", "/v1/availability_rules/work_hours", world.token).status_code == 202
    )
    assert call(client, "get", "/v1/availability_rules/work_hours", world.token).status_code == 404
    assert (
        call(client, "delete", "/v1/availability_rules/work_hours", world.token).status_code == 404
    )


def test_availability_rules_are_per_account_and_need_scope(client, world):
    call(client, "post", "/v1/availability_rules", world.token, RULE)
    other = make_world(email="bob@example.com")
    assert call(client, "get", "/v1/availability_rules/work_hours", other.token).status_code == 404
    assert call(client, "get", "/v1/availability_rules", other.token).json() == {
        "availability_rules": []
    }
    assert call(client, "get", "/v1/availability_rules", "nope").status_code == 401
    token = make_access_token(
        account=world.account, application=world.application, scope="create_event"
    )
    assert call(client, "get", "/v1/availability_rules", token).status_code == 403
    assert call(client, "post", "/v1/available_periods", token, {}).status_code == 403


def test_availability_rule_names_every_bad_field(client, world):
    bad = {
        "tzid": "Mars/Base",
        "calendar_ids": [],
        "weekly_periods": [{"day": "funday", "start_time": "25:00", "end_time": "08:00"}],
    }
    response = call(client, "post", "/v1/availability_rules", world.token, bad)
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {
        "availability_rule_id",
        "tzid",
        "calendar_ids",
        "weekly_periods[0].day",
        "weekly_periods[0].start_time",
    }
    foreign = {**RULE, "calendar_ids": [make_calendar().public_id]}
    response = call(client, "post", "/v1/availability_rules", world.token, foreign)
    assert response.json()["errors"]["calendar_ids"][0]["key"] == "errors.unknown_calendar"


def test_available_periods_upsert_list_delete(client, world):
    period = {
        "available_period_id": "p1",
        "start": "2026-12-01T09:00:00Z",
        "end": "2026-12-01T12:00:00Z",
    }
    assert call(client, "post", "/v1/available_periods", world.token, period).status_code == 202
    moved = {**period, "end": "2026-12-01T11:00:00Z"}
    assert call(client, "post", "/v1/available_periods", world.token, moved).status_code == 202
    listed = client.get(
        "/v1/available_periods",
        {"from": "2026-12-01", "to": "2026-12-02", "tzid": "Etc/UTC"},
        **auth(world.token),
    ).json()
    assert listed["available_periods"] == [moved]
    outside = client.get(
        "/v1/available_periods", {"from": "2026-12-02", "tzid": "Etc/UTC"}, **auth(world.token)
    ).json()
    assert outside["available_periods"] == []
    gone = call(
        client, "delete", "/v1/available_periods", world.token, {"available_period_id": "p1"}
    )
    assert gone.status_code == 202
    again = call(
        client, "delete", "/v1/available_periods", world.token, {"available_period_id": "p1"}
    )
    assert again.status_code == 404
    bad = call(
        client, "post", "/v1/available_periods", world.token, {**period, "end": period["start"]}
    )
    assert bad.status_code == 422 and "end" in bad.json()["errors"]


def test_managed_availability_uses_rules_in_their_zone_across_dst(client, world):
    # Monday 26 October 2026: London is back on GMT (the change was on the 25th), so 09:00
    # London is 09:00Z; the Monday before (19th, BST) it is 08:00Z.
    call(client, "post", "/v1/availability_rules", world.token, RULE)
    add_event(world.calendar, start=datetime(2026, 10, 26, 10, 0, tzinfo=UTC), minutes=60)
    found = availability(
        client, world, "2026-10-19T00:00:00Z", "2026-10-27T00:00:00Z", managed_availability=True
    )
    assert found == [
        ("2026-10-19T08:00:00Z", "2026-10-19T11:00:00Z"),
        ("2026-10-19T12:00:00Z", "2026-10-19T16:00:00Z"),
        ("2026-10-26T09:00:00Z", "2026-10-26T10:00:00Z"),
        ("2026-10-26T11:00:00Z", "2026-10-26T12:00:00Z"),
        ("2026-10-26T13:00:00Z", "2026-10-26T17:00:00Z"),
    ]


def test_managed_availability_adds_available_periods_and_rule_calendars(client, world):
    second = make_calendar(profile=world.profile)
    CalendarSyncState.objects.create(calendar=second, last_synced_at=timezone.now())
    add_event(second, start=datetime(2026, 12, 5, 10, 0, tzinfo=UTC), minutes=60)  # a Saturday
    add_event(world.calendar, start=datetime(2026, 12, 5, 12, 0, tzinfo=UTC), minutes=60)
    rule = {**RULE, "calendar_ids": [world.calendar.public_id]}
    call(client, "post", "/v1/availability_rules", world.token, rule)
    period = {
        "available_period_id": "sat",
        "start": "2026-12-05T09:00:00Z",
        "end": "2026-12-05T14:00:00Z",
    }
    call(client, "post", "/v1/available_periods", world.token, period)
    found = availability(
        client, world, "2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z", managed_availability=True
    )
    # Only the rule's calendar counts: the event on the second calendar does not block 10:00.
    assert found == [
        ("2026-12-05T09:00:00Z", "2026-12-05T12:00:00Z"),
        ("2026-12-05T13:00:00Z", "2026-12-05T14:00:00Z"),
    ]
    response = call(
        client,
        "post",
        "/v1/availability",
        world.token,
        {
            "participants": [
                {"members": [{"sub": world.account.public_id, "availability_rule_ids": ["nope"]}]}
            ],
            "required_duration": {"minutes": 60},
            "query_periods": [{"start": "2026-12-05T00:00:00Z", "end": "2026-12-06T00:00:00Z"}],
        },
    )
    assert response.status_code == 422
    assert "participants[0].members[0].availability_rule_ids" in response.json()["errors"]


def test_pycronofy_availability_rule_methods(live_server, transactional_db):
    world = make_world()
    client = sdk_client(world, live_server.url)
    saved = client.upsert_availability_rule(dict(RULE))
    assert saved["availability_rule_id"] == "work_hours"
    assert [r["availability_rule_id"] for r in client.list_availability_rules()] == ["work_hours"]
    assert client.get_availability_rule("work_hours")["tzid"] == "Europe/London"
    client.delete_availability_rule("work_hours")
    assert client.list_availability_rules() == []
