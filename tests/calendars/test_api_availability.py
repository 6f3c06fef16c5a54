"""POST /v1/availability through the API: the cache's busy rules, members of other accounts,
both credentials, the staleness field and the 422s."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.oauth_services import add_client_secret
from calendars.models import Event
from sync.models import CalendarSyncState
from tests.calendars.helpers import add_all_day_event, add_event, auth, make_world
from tests.factories import make_access_token, make_account, make_calendar, make_profile

DAY = datetime(2026, 12, 1, tzinfo=UTC)  # a Tuesday


def at(hour: int, minute: int = 0, day: datetime = DAY) -> datetime:
    return day.replace(hour=hour, minute=minute)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def synced(*calendars):
    for calendar in calendars:
        CalendarSyncState.objects.update_or_create(
            calendar=calendar, defaults={"last_synced_at": timezone.now()}
        )


def post(client, body, token):
    return client.post("/v1/availability", body, content_type="application/json", **auth(token))


NINE, FIVE = at(9), at(17)


def body(*subs, start=NINE, end=FIVE, minutes=60, **extra):
    return {
        "participants": [{"members": [{"sub": s} for s in subs], "required": "all"}],
        "required_duration": {"minutes": minutes},
        "query_periods": [{"start": iso(start), "end": iso(end)}],
        **extra,
    }


def spans(response, key="available_periods"):
    return [(p["start"][11:16], p["end"][11:16]) for p in response.json()[key]]


@pytest.fixture
def world(db):
    world = make_world(scope="read_only")
    synced(world.calendar)
    return world


def test_availability_periods_skip_busy_and_honour_free_busy_rules(client, world):
    add_event(world.calendar, start=at(10), minutes=60)
    add_event(world.calendar, start=at(12), minutes=30, status=Event.Status.CANCELLED)
    add_event(world.calendar, start=at(13), minutes=30, transparency="transparent")
    add_event(world.calendar, start=at(14), minutes=30, participation_status="declined")
    add_event(world.calendar, start=at(15), minutes=30, participation_status="tentative")
    response = post(client, body(world.account.public_id), world.token)
    assert response.status_code == 200, response.content
    assert spans(response) == [("09:00", "10:00"), ("11:00", "15:00"), ("15:30", "17:00")]
    assert response.json()["available_periods"][0]["participants"] == [
        {"sub": world.account.public_id}
    ]
    assert response.json()["stale_members"] == []


def test_availability_and_free_busy_agree_a_managed_series_row_is_not_busy(client, world):
    # A managed series is busy through its instances, never through its own row (which sits
    # at the first occurrence even when that one was moved or cancelled).
    master = add_event(world.calendar, start=at(10), minutes=60)
    Event.objects.filter(pk=master.pk).update(
        is_recurring=True, original_start=None, event_id="series-1", application=world.application
    )
    response = post(client, body(world.account.public_id), world.token)
    assert spans(response) == [("09:00", "17:00")]
    free_busy = client.get(
        "/v1/free_busy",
        {"from": "2026-12-01", "to": "2026-12-02", "tzid": "Etc/UTC"},
        **auth(world.token),
    )
    assert free_busy.json()["free_busy"] == []


def test_availability_slots_buffers_interval_and_max_results(client, world):
    add_event(world.calendar, start=at(10), minutes=60)
    request = body(
        world.account.public_id,
        minutes=30,
        start_interval={"minutes": 30},
        buffer={"before": {"minutes": 15}, "after": {"minutes": 15}},
        response_format="slots",
    )
    response = post(client, request, world.token)
    assert spans(response, "available_slots")[:4] == [
        ("09:00", "09:30"),
        ("11:30", "12:00"),
        ("12:00", "12:30"),
        ("12:30", "13:00"),
    ]
    response = post(client, {**request, "max_results": 2}, world.token)
    assert len(response.json()["available_slots"]) == 2


def test_availability_query_slots_answer_each_requested_start(client, world):
    add_event(world.calendar, start=at(10), minutes=60)
    request = body(world.account.public_id, minutes=60)
    del request["query_periods"]
    request["query_slots"] = [{"start": iso(at(9))}, {"start": iso(at(10))}, {"start": iso(at(11))}]
    response = post(client, {**request, "response_format": "slots"}, world.token)
    assert spans(response, "available_slots") == [("09:00", "10:00"), ("11:00", "12:00")]


def test_availability_all_day_events_block_the_members_own_day(client, world):
    world.account.default_tzid = "America/New_York"
    world.account.save()
    add_all_day_event(world.calendar, first=date(2026, 12, 1))
    # New York's 1 December is 05:00Z on the 1st to 05:00Z on the 2nd.
    response = post(client, body(world.account.public_id, start=at(0), end=at(12)), world.token)
    assert spans(response) == [("00:00", "05:00")]


def test_availability_groups_and_required_count_across_accounts(client, world):
    other = make_account()
    other_calendar = make_calendar(profile=make_profile(account=other))
    make_access_token(account=other, application=world.application)
    synced(other_calendar)
    add_event(world.calendar, start=at(9), minutes=120)
    add_event(other_calendar, start=at(13), minutes=240)
    subs = [world.account.public_id, other.public_id]
    request = body(*subs)
    request["participants"][0]["required"] = 1
    response = post(client, request, world.token)
    assert response.status_code == 200, response.content
    assert [
        (p["start"][11:16], p["end"][11:16], [s["sub"] for s in p["participants"]])
        for p in response.json()["available_periods"]
    ] == [
        ("09:00", "13:00", [other.public_id]),
        ("11:00", "13:00", subs),
        ("11:00", "17:00", [world.account.public_id]),
    ]
    request["participants"][0]["required"] = "all"
    assert spans(post(client, request, world.token)) == [("11:00", "13:00")]


def test_availability_member_calendar_ids_narrow_the_busy_calendars(client, world):
    second = make_calendar(profile=world.profile)
    synced(second)
    add_event(second, start=at(9), minutes=420)
    request = body(world.account.public_id)
    request["participants"][0]["members"][0]["calendar_ids"] = [world.calendar.public_id]
    assert spans(post(client, request, world.token)) == [("09:00", "17:00")]
    assert spans(post(client, body(world.account.public_id), world.token)) == [("16:00", "17:00")]


def test_availability_reports_stale_members_from_freshness(client, world):
    CalendarSyncState.objects.filter(calendar=world.calendar).update(consecutive_failures=2)
    response = post(client, body(world.account.public_id), world.token)
    stale = response.json()["stale_members"]
    assert [m["sub"] for m in stale] == [world.account.public_id]
    assert stale[0]["calendars"][0]["calendar_id"] == world.calendar.public_id
    assert stale[0]["calendars"][0]["state"] == "failing"


def test_availability_with_client_secret_for_an_authorized_account(client, world):
    secret = add_client_secret(application=world.application)
    response = post(client, body(world.account.public_id), secret)
    assert response.status_code == 200, response.content
    stranger = make_account()
    response = post(client, body(stranger.public_id), secret)
    assert response.status_code == 422
    assert response.json()["errors"]["participants[0].members[0].sub"][0]["key"] == (
        "errors.unknown_sub"
    )


def test_availability_refuses_members_that_did_not_authorize_the_application(client, world):
    stranger = make_account()
    make_calendar(profile=make_profile(account=stranger))
    response = post(client, body(world.account.public_id, stranger.public_id), world.token)
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["participants[0].members[1].sub"]


def test_availability_refuses_members_that_granted_the_application_no_free_busy(client, world):
    # Authorizing the application for other things (here only event writes) does not open
    # the member's free/busy to it; read_events implies read_free_busy.
    writer_only, reader = make_account(), make_account()
    make_access_token(account=writer_only, application=world.application, scope="create_event")
    make_access_token(account=reader, application=world.application, scope="read_events")
    response = post(client, body(reader.public_id, writer_only.public_id), world.token)
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["participants[0].members[1].sub"]


def test_availability_without_token_or_scope(client, world):
    assert post(client, body(world.account.public_id), "nope").status_code == 401
    token = make_access_token(
        account=world.account, application=world.application, scope="create_event"
    )
    assert post(client, body(world.account.public_id), token).status_code == 403


def test_availability_names_every_bad_field(client, world):
    request = {
        "participants": [
            {
                "members": [{"sub": world.account.public_id, "calendar_ids": ["cal_x"]}],
                "required": 3,
            }
        ],
        "required_duration": {"minutes": 0},
        "start_interval": {"minutes": 7},
        "buffer": {"before": {"minutes": -1}},
        "query_periods": [
            {"start": iso(at(9)), "end": iso(at(12))},
            {"start": iso(at(11)), "end": iso(at(13))},
        ],
        "response_format": "rows",
        "max_results": 0,
    }
    response = post(client, request, world.token)
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {
        "participants[0].required",
        "required_duration.minutes",
        "start_interval.minutes",
        "buffer.before.minutes",
        "query_periods",
        "response_format",
        "max_results",
    }


def test_availability_refuses_long_spans_and_foreign_calendars(client, world):
    long = body(world.account.public_id, end=at(9) + timedelta(days=36))
    response = post(client, long, world.token)
    assert response.json()["errors"]["query_periods"][0]["key"] == "errors.too_long"
    foreign = body(world.account.public_id)
    foreign["participants"][0]["members"][0]["calendar_ids"] = [make_calendar().public_id]
    response = post(client, foreign, world.token)
    assert response.status_code == 422
    assert "participants[0].members[0].calendar_ids" in response.json()["errors"]


@pytest.mark.parametrize(
    "payload", [[], "x", {"participants": "x"}, {"participants": [{"members": [3]}]}]
)
def test_availability_odd_bodies_are_422(client, world, payload):
    response = post(client, payload, world.token)
    assert response.status_code == 422


def test_availability_reads_busy_rows_in_one_query(client, world, django_assert_max_num_queries):
    others = []
    for _ in range(5):
        other = make_account()
        calendar = make_calendar(profile=make_profile(account=other))
        make_access_token(account=other, application=world.application)
        add_event(calendar, start=at(10))
        others.append(other.public_id)
    add_event(world.calendar, start=at(12))
    request = body(world.account.public_id, *others)
    # token, throttle-free: accounts, calendars, busy rows, freshness, stale calendar ids.
    with django_assert_max_num_queries(8):
        response = post(client, request, world.token)
    assert response.status_code == 200


@pytest.mark.parametrize("option", ["available_periods", "calendar_ids", "availability_rule_ids"])
def test_availability_empty_member_lists_are_422(client, world, option):
    request = body(world.account.public_id)
    request["participants"][0]["members"][0][option] = []
    response = post(client, request, world.token)
    assert response.status_code == 422
    assert f"participants[0].members[0].{option}" in response.json()["errors"]


def test_sequenced_availability_orders_steps_and_names_bad_fields(client, world):
    step = {
        "participants": [{"members": [{"sub": world.account.public_id}]}],
        "required_duration": {"minutes": 60},
    }
    request = {
        "sequence": [
            {**step, "sequence_id": "second", "ordinal": 2},
            {**step, "sequence_id": "first", "ordinal": 1},
        ],
        "available_periods": [{"start": iso(at(9)), "end": iso(at(12))}],
    }
    response = client.post(
        "/v1/sequenced_availability", request, content_type="application/json", **auth(world.token)
    )
    assert response.status_code == 200, response.content
    sequences = response.json()["sequences"]
    assert [[s["sequence_id"] for s in seq["sequence"]] for seq in sequences] == [
        ["first", "second"],
        ["first", "second"],
    ]
    assert sequences[0]["sequence"][1]["start"][11:16] == "10:00"
    bad = {"sequence": [{"ordinal": "x", "participants": [], "required_duration": 0}]}
    response = client.post(
        "/v1/sequenced_availability", bad, content_type="application/json", **auth(world.token)
    )
    assert response.status_code == 422
    assert set(response.json()["errors"]) >= {
        "sequence[0].sequence_id",
        "sequence[0].ordinal",
        "sequence[0].participants",
        "sequence[0].required_duration",
        "sequence[0].available_periods",
    }
