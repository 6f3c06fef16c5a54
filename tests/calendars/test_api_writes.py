"""Event writes through the API (docs/api.md, Writing events, Batch): recorded as cached events,
change-log entries and ManagedEventWrite rows for the reconciler."""

import json
from datetime import UTC, date, datetime

import pytest

from accounts.models import Profile
from calendars import options
from calendars.models import Calendar, ChangeLogEntry, Event, ManagedEventWrite
from calendars.services import event_fingerprint
from calendars.types import EventData
from calendars.wakeups import is_wakeup
from tests.calendars.helpers import add_event, api_get, auth, make_managed, make_world
from tests.factories import (
    make_access_token,
    make_account,
    make_application,
    make_calendar,
    make_profile,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TRIGGERED: list[list[int]] = []


def record_trigger(*, write_ids):
    TRIGGERED.append(list(write_ids))


@pytest.fixture
def ctx(db, settings):
    settings.MANAGED_EVENT_WRITE_TRIGGER = "tests.calendars.test_api_writes.record_trigger"
    TRIGGERED.clear()
    return make_world(profile_name="ada@example.com")


def post(client, path, token, body):
    headers = auth(token) if token else {}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **headers)


def delete(client, path, token, body=None):
    headers = auth(token) if token else {}
    return client.delete(
        path, data=json.dumps(body or {}), content_type="application/json", **headers
    )


def events_path(calendar) -> str:
    return f"/v1/calendars/{calendar.public_id}/events"


def body(**overrides) -> dict:
    data = {
        "event_id": "booking-1",
        "summary": "Board meeting",
        "description": "Discuss the budget",
        "start": "2026-11-23T09:00:00Z",
        "end": "2026-11-23T10:00:00Z",
        "tzid": "Europe/London",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not ...}


def upsert(client, ctx, **overrides):
    response = post(client, events_path(ctx.calendar), ctx.token, body(**overrides))
    assert response.status_code == 202, response.content
    assert response.content == b""
    return response


def read_managed(client, ctx) -> list[dict]:
    params = {"tzid": "Etc/UTC", "only_managed": "true", "include_deleted": "true"}
    response = api_get(client, "/v1/events", ctx.token, params)
    assert response.status_code == 200, response.content
    return response.json()["events"]


# --- upsert ----------------------------------------------------------------------------------


def test_upsert_creates_event_write_and_change_log(client, ctx, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        upsert(
            client,
            ctx,
            location={"description": "Room 1", "lat": "51.5", "long": -0.12},
            url="https://example.com/b/1",
            reminders=[{"minutes": 10}, {"minutes": 60}],
            transparency="transparent",
            event_private=True,
            color="#49BED8",
            attendees={"invite": [{"email": "bob@example.com", "display_name": "Bob"}]},
        )

    event = Event.objects.get()
    assert (event.application, event.event_id, event.calendar) == (
        ctx.application,
        "booking-1",
        ctx.calendar,
    )
    assert event.event_uid.startswith("evt_") and not event.event_uid.startswith("evt_external_")
    assert event.provider_key == event.ical_uid == event.event_uid
    assert (event.start, event.end) == (T0, datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    assert event.tzid == "Europe/London" and event.transparency == "transparent"
    assert event.is_private and event.status == "confirmed" and not event.is_deleted
    assert event.attendees == [
        {"email": "bob@example.com", "display_name": "Bob", "status": "needs_action"}
    ]
    write = ManagedEventWrite.objects.get()
    assert (write.operation, write.status, write.event, write.application) == (
        "upsert",
        "pending",
        event,
        ctx.application,
    )
    assert write.desired == {
        "summary": "Board meeting",
        "description": "Discuss the budget",
        "location_description": "Room 1",
        "location_lat": "51.5",
        "location_long": "-0.12",
        "url": "https://example.com/b/1",
        "start": "2026-11-23T09:00:00Z",
        "end": "2026-11-23T10:00:00Z",
        "is_all_day": False,
        "start_date": None,
        "end_date": None,
        "tzid": "Europe/London",
        "transparency": "transparent",
        "is_private": True,
        "status": "confirmed",
        "reminders": [10, 60],
        "reminders_create_only": False,
        "color": "#49BED8",
        "attendees_invite": [{"email": "bob@example.com", "display_name": "Bob"}],
        "attendees_remove": [],
        "conferencing": None,
        "recurrence": None,
    }
    change = ChangeLogEntry.objects.get()
    assert (change.kind, change.event, change.application) == (
        "event_created",
        event,
        ctx.application,
    )
    triggered = list(TRIGGERED)
    assert triggered == [[write.pk]]

    [shown] = read_managed(client, ctx)
    assert shown["event_id"] == "booking-1" and shown["event_uid"] == event.event_uid
    assert shown["summary"] == "Board meeting" and shown["start"] == "2026-11-23T09:00:00Z"
    assert shown["options"] == {
        "delete": True,
        "update": True,
        "change_participation_status": False,
    }


def test_upsert_minimal_body_defaults(client, ctx):
    upsert(client, ctx, description=..., tzid=...)
    event = Event.objects.get()
    assert event.description == "" and event.tzid == "Etc/UTC"
    assert event.transparency == "opaque"
    desired = ManagedEventWrite.objects.get().desired
    assert desired["transparency"] is None and desired["reminders"] is None
    assert desired["attendees_invite"] == [] and desired["color"] == ""


def test_upsert_fingerprint_matches_event_data(client, ctx):
    upsert(client, ctx)
    event = Event.objects.get()
    data = EventData(**{name: getattr(event, name) for name in EventData.__dataclass_fields__})
    assert event.fingerprint == data.fingerprint() == event_fingerprint(event)


def test_upsert_second_updates_the_event(client, ctx):
    upsert(client, ctx)
    moved = body(summary="Board meeting (moved)", start="2026-11-24T09:00:00Z", end=...)
    assert post(client, events_path(ctx.calendar), ctx.token, moved).status_code == 422
    assert Event.objects.get().summary == "Board meeting"

    upsert(
        client,
        ctx,
        summary="Board meeting (moved)",
        start="2026-11-24T09:00:00Z",
        end="2026-11-24T10:00:00Z",
    )

    event = Event.objects.get()
    assert event.summary == "Board meeting (moved)" and event.start.day == 24
    writes = list(ManagedEventWrite.objects.order_by("id"))
    assert [w.operation for w in writes] == ["upsert", "upsert"]
    assert writes[1].desired["start"] == "2026-11-24T09:00:00Z"
    kinds = list(ChangeLogEntry.objects.order_by("sequence").values_list("kind", flat=True))
    assert kinds == ["event_created", "event_updated"]


def test_upsert_identical_is_a_no_op(client, ctx):
    upsert(client, ctx)
    ManagedEventWrite.objects.update(status="done")
    upsert(client, ctx)
    assert ManagedEventWrite.objects.count() == 1
    assert ChangeLogEntry.objects.count() == 1


def test_upsert_after_a_failed_write_records_again(client, ctx):
    upsert(client, ctx)
    ManagedEventWrite.objects.update(status="failed")
    upsert(client, ctx)
    assert ManagedEventWrite.objects.count() == 2


def test_upsert_same_event_id_in_another_calendar_is_another_event(client, ctx):
    other = make_calendar(profile=ctx.profile)
    upsert(client, ctx)
    response = post(client, events_path(other), ctx.token, body())
    assert response.status_code == 202
    assert Event.objects.count() == 2


def test_upsert_all_day_event(client, ctx):
    upsert(client, ctx, start="2026-11-24", end="2026-11-26", tzid="Europe/Paris")
    event = Event.objects.get()
    assert event.is_all_day
    assert (event.start_date, event.end_date) == (date(2026, 11, 24), date(2026, 11, 26))
    assert event.start == datetime(2026, 11, 24, tzinfo=UTC)
    desired = ManagedEventWrite.objects.get().desired
    assert (desired["start_date"], desired["end_date"]) == ("2026-11-24", "2026-11-26")
    assert (desired["start"], desired["is_all_day"]) == ("2026-11-24T00:00:00Z", True)
    [shown] = read_managed(client, ctx)
    assert (shown["start"], shown["end"]) == ("2026-11-24", "2026-11-26")


def test_upsert_localized_times_and_sdk_time_forms(client, ctx):
    upsert(
        client,
        ctx,
        start={"time": "2026-11-23T10:00:00", "tzid": "Europe/Paris"},
        end="2026-11-23 10:30:00Z",
        tzid=...,
    )
    event = Event.objects.get()
    assert event.start == T0 and event.tzid == "Europe/Paris"
    assert event.end == datetime(2026, 11, 23, 10, 30, tzinfo=UTC)


def test_upsert_attendees_remove_and_reject_alias(client, ctx):
    invite = [{"email": "bob@example.com"}, {"email": "eve@example.com"}]
    upsert(client, ctx, attendees={"invite": invite})
    upsert(client, ctx, attendees={"reject": [{"email": "EVE@example.com"}]})
    assert [a["email"] for a in Event.objects.get().attendees] == ["bob@example.com"]
    desired = ManagedEventWrite.objects.order_by("-id").first().desired
    assert desired["attendees_remove"] == [{"email": "EVE@example.com", "display_name": ""}]


def test_upsert_after_delete_resurrects_the_event(client, ctx):
    upsert(client, ctx)
    assert (
        delete(client, events_path(ctx.calendar), ctx.token, {"event_id": "booking-1"}).status_code
        == 202
    )
    upsert(client, ctx)
    event = Event.objects.get()
    assert not event.is_deleted and event.deleted_at is None
    assert [w.operation for w in ManagedEventWrite.objects.order_by("id")] == [
        "upsert",
        "delete",
        "upsert",
    ]


@pytest.mark.parametrize(
    ("overrides", "field", "key"),
    [
        ({"summary": ...}, "summary", "errors.required"),
        ({"summary": ""}, "summary", "errors.required"),
        ({"summary": "x" * 1025}, "summary", "errors.too_long"),
        ({"summary": 5}, "summary", "errors.must_be_string"),
        ({"description": "x" * 4097}, "description", "errors.too_long"),
        ({"event_id": ...}, "event_id", "errors.required"),
        ({"event_uid": "evt_external_1"}, "event_id", "errors.exclusive"),
        ({"event_id": "x" * 300}, "event_id", "errors.too_long"),
        ({"event_id": ["a"]}, "event_id", "errors.must_be_string"),
        ({"start": ...}, "start", "errors.required"),
        ({"end": ...}, "end", "errors.required"),
        ({"start": "tomorrow"}, "start", "errors.invalid_time"),
        ({"start": "2026-13-45T09:00:00Z"}, "start", "errors.invalid_date"),
        ({"start": ["2026-11-23"]}, "start", "errors.invalid_time"),
        ({"start": "9" * 100000}, "start", "errors.invalid_time"),
        ({"start": {"time": "2026-11-23T09:00:00", "tzid": "Mars/Olympus"}}, "start.tzid", None),
        ({"start": {"time": 5}}, "start", "errors.invalid_time"),
        ({"end": "2026-11-23T08:00:00Z"}, "end", "errors.must_be_after_start"),
        ({"end": "2026-11-23T09:00:00Z"}, "end", "errors.must_be_after_start"),
        ({"start": "2026-11-23", "end": "2026-11-23"}, "end", "errors.must_be_after_start"),
        ({"start": "2026-11-23", "end": "2026-11-24T10:00:00Z"}, "end", "errors.invalid"),
        ({"tzid": "Nowhere/Land"}, "tzid", "errors.invalid_tzid"),
        ({"tzid": 7}, "tzid", "errors.invalid_tzid"),
        ({"location": "Room 1"}, "location", "errors.invalid"),
        ({"location": {"description": 5}}, "location.description", "errors.must_be_string"),
        ({"location": {"lat": "91", "long": "0"}}, "location.lat", "errors.invalid"),
        ({"location": {"lat": "1", "long": "east"}}, "location.long", "errors.invalid"),
        ({"location": {"lat": "1"}}, "location", "errors.invalid"),
        ({"url": "javascript:alert(1)"}, "url", "errors.invalid_url"),
        ({"url": "https://x/" + "a" * 3000}, "url", "errors.too_long"),
        ({"reminders": {"minutes": 5}}, "reminders", "errors.invalid"),
        ({"reminders": [{"minutes": "5"}]}, "reminders", "errors.invalid"),
        ({"reminders": [{"minutes": -1}]}, "reminders", "errors.invalid"),
        ({"reminders": [{"minutes": 5}] * 11}, "reminders", "errors.too_many"),
        ({"reminders_create_only": "maybe"}, "reminders_create_only", "errors.must_be_boolean"),
        ({"reminders_create_only": [True]}, "reminders_create_only", "errors.must_be_boolean"),
        ({"transparency": "busy"}, "transparency", "errors.invalid"),
        ({"event_private": {}}, "event_private", "errors.must_be_boolean"),
        ({"attendees": []}, "attendees", "errors.invalid"),
        (
            {"attendees": {"invite": [{"email": "nope"}]}},
            "attendees.invite",
            "errors.invalid_email",
        ),
        ({"attendees": {"invite": "a@example.com"}}, "attendees.invite", "errors.invalid"),
        ({"attendees": {"remove": [{"name": "x"}]}}, "attendees.remove", "errors.invalid_email"),
        ({"attendees": {"reject": [{"email": 1}]}}, "attendees.reject", "errors.invalid_email"),
        ({"color": "blue"}, "color", "errors.invalid_color"),
    ],
)
def test_upsert_bad_body_is_422(client, ctx, overrides, field, key):
    response = post(client, events_path(ctx.calendar), ctx.token, body(**overrides))
    assert response.status_code == 422, response.content
    errors = response.json()["errors"]
    assert field in errors, errors
    assert all(set(entry) == {"key", "description"} for entry in errors[field])
    if key:
        assert errors[field][0]["key"] == key
    assert not Event.objects.exists() and not ManagedEventWrite.objects.exists()


def test_upsert_reports_every_bad_field(client, ctx):
    response = post(
        client, events_path(ctx.calendar), ctx.token, body(summary=..., color="red", url="x")
    )
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"summary", "color", "url"}


@pytest.mark.parametrize(
    "raw", ["[1, 2]", '"text"', "42", "null", "{not json", b"\xff\xfe", '{"summary": {"a": 1}}']
)
def test_upsert_malformed_body_is_422_never_500(client, ctx, raw):
    response = post(client, events_path(ctx.calendar), ctx.token, raw)
    assert response.status_code == 422, response.content
    assert "errors" in response.json()


def test_upsert_ignores_keys_outside_cronofys_body(client, ctx):
    # Cronofy's own keys are each applied or refused (test_api_writes_keys.py).
    upsert(client, ctx, something_new=True, subscriptions=[], attachments=[])
    assert Event.objects.count() == 1


def test_upsert_on_readonly_or_deleted_calendar_is_422(client, ctx):
    readonly = make_calendar(profile=ctx.profile, is_readonly=True)
    deleted = make_calendar(profile=ctx.profile, is_deleted=True)
    for calendar, key in (
        (readonly, "errors.calendar_readonly"),
        (deleted, "errors.calendar_deleted"),
    ):
        response = post(client, events_path(calendar), ctx.token, body())
        assert response.status_code == 422
        assert response.json()["errors"]["calendar_id"][0]["key"] == key
    assert not ManagedEventWrite.objects.exists()


def test_upsert_on_disconnected_profile_is_423(client, ctx):
    Profile.objects.filter(pk=ctx.profile.pk).update(status=Profile.Status.DISCONNECTED)
    response = post(client, events_path(ctx.calendar), ctx.token, body())
    assert response.status_code == 423
    assert response.json() == {"error": "profile_locked"}


def test_upsert_trigger_failure_still_answers_202(
    client, ctx, settings, django_capture_on_commit_callbacks
):
    settings.MANAGED_EVENT_WRITE_TRIGGER = "tests.calendars.test_api_writes.no_such_hook"
    with django_capture_on_commit_callbacks(execute=True):
        upsert(client, ctx)
    assert ManagedEventWrite.objects.get().status == "pending"


def test_upsert_without_trigger_setting_records_the_write(
    client, ctx, settings, django_capture_on_commit_callbacks
):
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        upsert(client, ctx)
    # Only the change feed's wake-up of its long-polls: no trigger is enqueued.
    assert [c for c in callbacks if not is_wakeup(c)] == []
    assert ManagedEventWrite.objects.count() == 1


# --- external events -------------------------------------------------------------------------


def test_upsert_external_event_updates_it_and_keeps_it_external(client, ctx):
    external = add_event(ctx.calendar, start=T0, summary="From the provider")
    upsert(client, ctx, event_id=..., event_uid=external.event_uid, summary="Renamed")
    external.refresh_from_db()
    assert external.summary == "Renamed" and external.event_id is None
    assert external.application is None
    write = ManagedEventWrite.objects.get()
    assert (write.event, write.operation, write.desired["summary"]) == (
        external,
        "upsert",
        "Renamed",
    )
    change = ChangeLogEntry.objects.order_by("-sequence").first()
    assert (change.kind, change.application) == ("event_updated", ctx.application)


def test_upsert_external_event_errors(client, ctx):
    managed = make_managed(add_event(ctx.calendar, start=T0), ctx.application, "mine")
    recurring = add_event(ctx.calendar, start=T0, is_recurring=True)
    path = events_path(ctx.calendar)

    response = post(client, path, ctx.token, body(event_id=..., event_uid=managed.event_uid))
    assert response.json()["errors"]["event_uid"][0]["key"] == "errors.must_be_external_event_uid"
    response = post(client, path, ctx.token, body(event_id=..., event_uid=recurring.event_uid))
    assert response.json()["errors"]["event_uid"][0]["key"] == (
        "errors.recurring_event_not_supported"
    )
    response = post(client, path, ctx.token, body(event_id=..., event_uid="evt_external_nope"))
    assert response.status_code == 404

    Calendar.objects.filter(pk=ctx.calendar.pk).update(permission_level="sandbox")
    external = add_event(ctx.calendar, start=T0)
    response = post(client, path, ctx.token, body(event_id=..., event_uid=external.event_uid))
    assert response.status_code == 422
    assert not ManagedEventWrite.objects.exists()


def test_delete_external_event(client, ctx):
    external = add_event(ctx.calendar, start=T0)
    path = events_path(ctx.calendar)
    assert delete(client, path, ctx.token, {"event_uid": external.event_uid}).status_code == 202
    external.refresh_from_db()
    assert external.is_deleted
    write = ManagedEventWrite.objects.get()
    assert (write.operation, write.desired, write.event) == ("delete", {}, external)
    # Again: already deleted, nothing more recorded.
    assert delete(client, path, ctx.token, {"event_uid": external.event_uid}).status_code == 202
    assert ManagedEventWrite.objects.count() == 1


def test_delete_external_event_with_managed_uid_is_422(client, ctx):
    managed = make_managed(add_event(ctx.calendar, start=T0), ctx.application, "mine")
    response = delete(
        client, events_path(ctx.calendar), ctx.token, {"event_uid": managed.event_uid}
    )
    assert response.status_code == 422
    assert response.json() == {
        "errors": {
            "event_uid": [
                {
                    "key": "errors.must_be_external_event_uid",
                    "description": "event_uid names a managed event: use its event_id",
                }
            ]
        }
    }


# --- delete ----------------------------------------------------------------------------------


def test_delete_managed_event(client, ctx):
    upsert(client, ctx)
    response = delete(client, events_path(ctx.calendar), ctx.token, {"event_id": "booking-1"})
    assert response.status_code == 202 and response.content == b""
    event = Event.objects.get()
    assert event.is_deleted and event.deleted_at is not None
    write = ManagedEventWrite.objects.order_by("-id").first()
    assert (write.operation, write.desired) == ("delete", {})
    change = ChangeLogEntry.objects.order_by("-sequence").first()
    assert (change.kind, change.application) == ("event_deleted", ctx.application)
    [shown] = read_managed(client, ctx)
    assert shown["deleted"] is True
    assert shown["options"] == {
        "delete": False,
        "update": False,
        "change_participation_status": False,
    }


def test_delete_unknown_event_id_is_202_and_records_nothing(client, ctx):
    response = delete(client, events_path(ctx.calendar), ctx.token, {"event_id": "never-made"})
    assert response.status_code == 202
    assert not ManagedEventWrite.objects.exists() and not ChangeLogEntry.objects.exists()


def test_delete_another_applications_event_id_does_not_touch_it(client, ctx):
    other_app = make_application(name="Other")
    theirs = make_managed(add_event(ctx.calendar, start=T0), other_app, "booking-1")
    delete(client, events_path(ctx.calendar), ctx.token, {"event_id": "booking-1"})
    theirs.refresh_from_db()
    assert not theirs.is_deleted and not ManagedEventWrite.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field", "key"),
    [
        ({}, "event_id", "errors.required"),
        ({"event_id": "a", "event_uid": "b"}, "event_id", "errors.exclusive"),
        ({"event_id": 12}, "event_id", "errors.must_be_string"),
    ],
)
def test_delete_bad_body_is_422(client, ctx, payload, field, key):
    response = delete(client, events_path(ctx.calendar), ctx.token, payload)
    assert response.status_code == 422
    assert response.json()["errors"][field][0]["key"] == key


# --- bulk delete -----------------------------------------------------------------------------


@pytest.fixture
def bulk(client, ctx):
    second = make_calendar(profile=ctx.profile)
    upsert(client, ctx, event_id="a")
    post(client, events_path(second), ctx.token, body(event_id="b"))
    other_app = make_application(name="Other")
    theirs = make_managed(add_event(ctx.calendar, start=T0), other_app, "c")
    external = add_event(ctx.calendar, start=T0)
    ManagedEventWrite.objects.all().delete()
    return second, theirs, external


def _deleted_ids():
    return set(Event.objects.filter(is_deleted=True).values_list("event_id", flat=True))


def test_bulk_delete_all_by_body(client, ctx, bulk):
    response = delete(client, "/v1/events", ctx.token, {"delete_all": True})
    assert response.status_code == 202 and response.content == b""
    assert _deleted_ids() == {"a", "b"}
    writes = ManagedEventWrite.objects.all()
    assert sorted(w.event.event_id for w in writes) == ["a", "b"]
    assert {(w.operation, w.application_id) for w in writes} == {("delete", ctx.application.pk)}
    kinds = ChangeLogEntry.objects.filter(kind="event_deleted", application=ctx.application)
    assert kinds.count() == 2


def test_bulk_delete_all_by_query_as_pycronofy_sends_it(client, ctx, bulk):
    response = delete(client, "/v1/events?delete_all=True", ctx.token, {})
    assert response.status_code == 202
    assert _deleted_ids() == {"a", "b"}


def test_bulk_delete_by_calendar_ids_in_query_and_body(client, ctx, bulk):
    second = bulk[0]
    response = delete(client, f"/v1/events?calendar_ids[]={second.public_id}", ctx.token)
    assert response.status_code == 202
    assert _deleted_ids() == {"b"}
    response = delete(client, "/v1/events", ctx.token, {"calendar_ids": [ctx.calendar.public_id]})
    assert response.status_code == 202
    assert _deleted_ids() == {"a", "b"}
    # Nothing left: still 202, nothing recorded.
    count = ManagedEventWrite.objects.count()
    assert delete(client, "/v1/events", ctx.token, {"delete_all": True}).status_code == 202
    assert ManagedEventWrite.objects.count() == count


@pytest.mark.parametrize(
    ("path", "payload", "field", "key"),
    [
        ("/v1/events", {}, "delete_all", "errors.required"),
        ("/v1/events", {"delete_all": False}, "delete_all", "errors.required"),
        ("/v1/events", {"delete_all": "perhaps"}, "delete_all", "errors.must_be_boolean"),
        ("/v1/events", {"delete_all": {"a": 1}}, "delete_all", "errors.must_be_boolean"),
        ("/v1/events?delete_all=sure", {}, "delete_all", "errors.must_be_boolean"),
        ("/v1/events", {"calendar_ids": "cal_x"}, "calendar_ids", "errors.invalid_calendar_ids"),
        ("/v1/events", {"calendar_ids": []}, "calendar_ids", "errors.invalid_calendar_ids"),
        ("/v1/events", {"calendar_ids": [3]}, "calendar_ids", "errors.invalid_calendar_ids"),
        (
            "/v1/events",
            {"calendar_ids": ["cal_nope"]},
            "calendar_ids",
            "errors.invalid_calendar_ids",
        ),
        ("/v1/events?calendar_ids[]=cal_nope", {}, "calendar_ids", "errors.invalid_calendar_ids"),
    ],
)
def test_bulk_delete_bad_selection_is_422(client, ctx, bulk, path, payload, field, key):
    response = delete(client, path, ctx.token, payload)
    assert response.status_code == 422, response.content
    assert response.json()["errors"][field][0]["key"] == key
    assert _deleted_ids() == set()


def test_bulk_delete_another_accounts_calendar_is_422(client, ctx, bulk):
    foreign = make_calendar()
    response = delete(client, "/v1/events", ctx.token, {"calendar_ids": [foreign.public_id]})
    assert response.status_code == 422
    assert response.json()["errors"]["calendar_ids"][0]["key"] == "errors.invalid_calendar_ids"


# --- participation status --------------------------------------------------------------------


def _invitation(ctx, **fields):
    return add_event(
        ctx.calendar,
        start=T0,
        attendees=[
            {"email": "boss@example.com", "display_name": "Boss", "status": "accepted"},
            {"email": "Ada@example.com", "display_name": "Ada", "status": "needs_action"},
        ],
        organizer={"email": "boss@example.com", "display_name": "Boss"},
        participation_status="needs_action",
        **fields,
    )


def participation_path(calendar, event) -> str:
    return f"/v1/calendars/{calendar.public_id}/events/{event.event_uid}/participation_status"


def test_participation_status_records_the_answer(client, ctx):
    invitation = _invitation(ctx)
    events = api_get(client, "/v1/events", ctx.token, {"tzid": "Etc/UTC"}).json()["events"]
    assert events[0]["options"]["change_participation_status"] is True

    path = participation_path(ctx.calendar, invitation)
    response = post(client, path, ctx.token, {"status": "accepted"})
    assert response.status_code == 202 and response.content == b""

    invitation.refresh_from_db()
    assert invitation.participation_status == "accepted"
    assert invitation.attendees[1]["status"] == "accepted"
    assert invitation.fingerprint == event_fingerprint(invitation)
    write = ManagedEventWrite.objects.get()
    assert (write.operation, write.desired) == (
        "participation",
        {"participation_status": "accepted"},
    )
    change = ChangeLogEntry.objects.order_by("-sequence").first()
    assert (change.kind, change.application) == ("event_updated", ctx.application)
    # The same answer again is a no-op; another answer is a new write.
    post(client, path, ctx.token, {"status": "accepted"})
    assert ManagedEventWrite.objects.count() == 1
    post(client, path, ctx.token, {"status": "declined"})
    assert ManagedEventWrite.objects.count() == 2


def test_participation_status_not_allowed_is_422(client, ctx):
    organized = add_event(
        ctx.calendar,
        start=T0,
        attendees=[{"email": "ada@example.com", "status": "accepted"}],
        organizer={"email": "ada@example.com"},
    )
    not_invited = add_event(ctx.calendar, start=T0, attendees=[{"email": "x@example.com"}])
    for event in (organized, not_invited):
        response = post(
            client, participation_path(ctx.calendar, event), ctx.token, {"status": "accepted"}
        )
        assert response.status_code == 422
        assert response.json()["errors"]["event_uid"][0]["key"] == (
            "errors.participation_status_not_changeable"
        )
    events = api_get(client, "/v1/events", ctx.token, {"tzid": "Etc/UTC"}).json()["events"]
    assert all(e["options"]["change_participation_status"] is False for e in events)
    assert not ManagedEventWrite.objects.exists()


@pytest.mark.parametrize("payload", [{}, {"status": "maybe"}, {"status": ["accepted"]}, []])
def test_participation_status_bad_body_is_422(client, ctx, payload):
    invitation = _invitation(ctx)
    response = post(client, participation_path(ctx.calendar, invitation), ctx.token, payload)
    assert response.status_code == 422
    assert "errors" in response.json()


def test_participation_status_unknown_event_is_404(client, ctx):
    path = f"/v1/calendars/{ctx.calendar.public_id}/events/evt_external_nope/participation_status"
    assert post(client, path, ctx.token, {"status": "accepted"}).status_code == 404


# --- options on read events ------------------------------------------------------------------


def test_options_follow_ownership_calendar_and_scopes(client, ctx):
    other_app = make_application(name="Other")
    theirs = make_managed(add_event(ctx.calendar, start=T0), other_app, "theirs")
    readonly = make_calendar(profile=ctx.profile, is_readonly=True)
    on_readonly = add_event(readonly, start=T0)
    recurring = add_event(ctx.calendar, start=T0, is_recurring=True)
    invitation = _invitation(ctx)
    mine = make_managed(add_event(ctx.calendar, start=T0), ctx.application, "mine")

    def options(token):
        params = {"tzid": "Etc/UTC", "include_managed": "true"}
        events = api_get(client, "/v1/events", token, params).json()["events"]
        return {
            e["event_uid"]: tuple(
                e["options"][k] for k in ("update", "delete", "change_participation_status")
            )
            for e in events
        }

    full = options(ctx.token)
    assert full[mine.event_uid] == (True, True, False)
    assert full[theirs.event_uid] == (False, False, False)
    assert full[on_readonly.event_uid] == (False, False, False)
    assert full[recurring.event_uid] == (False, False, False)
    assert full[invitation.event_uid] == (True, True, True)

    read_only = make_access_token(
        account=ctx.account, application=ctx.application, scope="read_events"
    )
    assert set(options(read_only).values()) == {(False, False, False)}


def test_options_cost_a_fixed_number_of_queries(client, ctx, django_assert_max_num_queries):
    for i in range(30):
        _invitation(ctx) if i % 2 else add_event(ctx.calendar, start=T0)
    with django_assert_max_num_queries(8):
        response = api_get(client, "/v1/events", ctx.token, {"tzid": "Etc/UTC"})
    assert len(response.json()["events"]) == 30


# --- batch -----------------------------------------------------------------------------------


def test_batch_mixes_successes_and_errors_in_order(client, ctx):
    path = events_path(ctx.calendar)
    invitation = _invitation(ctx)
    response = post(
        client,
        "/v1/batch",
        ctx.token,
        {
            "batch": [
                {"method": "POST", "relative_url": path, "data": body(event_id="one")},
                {"method": "POST", "relative_url": path, "data": body(summary=...)},
                {"method": "DELETE", "relative_url": path, "data": {"event_id": "one"}},
                {"method": "POST", "relative_url": "/v1/calendars/cal_nope/events", "data": body()},
                {"method": "GET", "relative_url": "/v1/account"},
                {
                    "method": "POST",
                    "relative_url": participation_path(ctx.calendar, invitation),
                    "data": {"status": "tentative"},
                },
                {"method": "DELETE", "relative_url": "/v1/events?delete_all=true"},
                "not an object",
                {"method": "POST"},
            ]
        },
    )
    assert response.status_code == 207, response.content
    entries = response.json()["batch"]
    assert entries == [
        {"status": 202},
        {
            "status": 422,
            "data": {
                "errors": {
                    "summary": [
                        {"key": "errors.required", "description": "summary must be specified"}
                    ]
                }
            },
        },
        {"status": 202},
        {"status": 404, "data": {"error": "not_found"}},
        {"status": 404, "data": {"error": "not_found"}},
        {"status": 202},
        {"status": 202},
        entries[7],
        entries[8],
    ]
    assert entries[7]["status"] == entries[8]["status"] == 422
    ops = list(ManagedEventWrite.objects.order_by("id").values_list("operation", flat=True))
    assert ops == ["upsert", "delete", "participation"]


def test_batch_checks_scopes_per_entry(client, ctx):
    token = make_access_token(
        account=ctx.account, application=ctx.application, scope="create_event"
    )
    path = events_path(ctx.calendar)
    response = post(
        client,
        "/v1/batch",
        token,
        {
            "batch": [
                {"method": "POST", "relative_url": path, "data": body()},
                {"method": "DELETE", "relative_url": path, "data": {"event_id": "booking-1"}},
            ]
        },
    )
    assert response.status_code == 207
    assert response.json()["batch"] == [
        {"status": 202},
        {"status": 403, "data": {"error": "insufficient_scope"}},
    ]


@pytest.mark.parametrize(
    "payload",
    [{}, {"batch": []}, {"batch": "x"}, [], {"batch": [{"method": "DELETE"}] * 51}],
)
def test_batch_bad_body_is_422(client, ctx, payload):
    response = post(client, "/v1/batch", ctx.token, payload)
    assert response.status_code == 422
    assert "batch" in response.json()["errors"] or "base" in response.json()["errors"]


# --- authentication, scopes, other accounts --------------------------------------------------

ENDPOINTS = [
    ("post", "events", body(), "create_event"),
    ("delete", "events", {"event_id": "booking-1"}, "delete_event"),
    ("delete", "bulk", {"delete_all": True}, "delete_event"),
    ("post", "participation", {"status": "accepted"}, "change_participation_status"),
]


def _path(kind, calendar, event):
    if kind == "events":
        return events_path(calendar)
    if kind == "participation":
        return participation_path(calendar, event)
    return "/v1/events"


@pytest.mark.parametrize(("method", "kind", "payload", "scope"), ENDPOINTS)
def test_write_endpoint_without_token_is_401(client, ctx, method, kind, payload, scope):
    invitation = _invitation(ctx)
    call = post if method == "post" else delete
    response = call(client, _path(kind, ctx.calendar, invitation), None, payload)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    response = call(client, _path(kind, ctx.calendar, invitation), "bogus", payload)
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "kind", "payload", "scope"), ENDPOINTS)
def test_write_endpoint_with_wrong_scope_is_403(client, ctx, method, kind, payload, scope):
    invitation = _invitation(ctx)
    others = " ".join(
        s
        for s in ("read_events", "create_event", "delete_event", "change_participation_status")
        if s != scope
    )
    token = make_access_token(account=ctx.account, application=ctx.application, scope=others)
    call = post if method == "post" else delete
    response = call(client, _path(kind, ctx.calendar, invitation), token, payload)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]
    assert not ManagedEventWrite.objects.exists()


@pytest.mark.parametrize(("method", "kind", "payload", "scope"), ENDPOINTS)
def test_write_endpoint_on_another_accounts_calendar_is_404(
    client, ctx, method, kind, payload, scope
):
    stranger = make_account(email="ada@example.com")  # even with the same address
    foreign_calendar = make_calendar(profile=make_profile(account=stranger))
    foreign_event = add_event(
        foreign_calendar,
        start=T0,
        attendees=[{"email": "ada@example.com"}],
        organizer={"email": "boss@example.com"},
    )
    call = post if method == "post" else delete
    path = _path(kind, foreign_calendar, foreign_event)
    if kind == "bulk":
        response = call(client, path, ctx.token, {"calendar_ids": [foreign_calendar.public_id]})
        assert response.status_code == 422  # errors.invalid_calendar_ids
    else:
        assert call(client, path, ctx.token, payload).status_code == 404
    # An event of another calendar, named through one of ours: 404 too.
    if kind == "participation":
        path = participation_path(ctx.calendar, foreign_event)
        assert call(client, path, ctx.token, payload).status_code == 404
    assert not ManagedEventWrite.objects.exists()
    assert not Event.objects.filter(is_deleted=True).exists()


def test_write_bodies_with_nul_or_deep_nesting_are_422_and_nul_ids_404(client, ctx):
    path = events_path(ctx.calendar)
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    for payload in (body(summary="a\x00b"), body(location={"description": "\x00"}), body(x=deep)):
        assert post(client, path, ctx.token, payload).status_code == 422
    assert delete(client, path, ctx.token, {"event_id": "a\x00"}).status_code == 422
    response = delete(client, "/v1/events", ctx.token, {"calendar_ids": ["cal_\x00"]})
    assert response.status_code == 422
    assert post(client, "/v1/calendars/cal_%00/events", ctx.token, body()).status_code == 404
    batch = {"batch": [{"method": "POST", "relative_url": "/v1/calendars/cal_%00/events"}]}
    assert post(client, "/v1/batch", ctx.token, batch).json() == {
        "batch": [{"status": 404, "data": {"error": "not_found"}}]
    }
    assert not ManagedEventWrite.objects.exists()


def test_one_instance_of_an_external_series_is_writable_only_where_the_provider_can(
    client, ctx, monkeypatch
):
    google = make_calendar(
        profile=make_profile(account=ctx.account, provider=Profile.Provider.GOOGLE)
    )
    microsoft = make_calendar(
        profile=make_profile(account=ctx.account, provider=Profile.Provider.MICROSOFT)
    )
    data = body()
    del data["event_id"]
    for calendar in (ctx.calendar, google, microsoft):
        instance = add_event(calendar, start=T0, is_recurring=True, original_start=T0)
        data["event_uid"] = instance.event_uid
        assert post(client, events_path(calendar), ctx.token, data).status_code == 202

    # A provider that cannot write one instance is refused before anything is queued.
    monkeypatch.setattr(options, "INSTANCE_WRITE_PROVIDERS", frozenset({"caldav"}))
    queued = ManagedEventWrite.objects.count()
    instance = add_event(google, start=T0, is_recurring=True, original_start=T0)
    data["event_uid"] = instance.event_uid
    response = post(client, events_path(google), ctx.token, data)
    assert response.json()["errors"]["event_uid"][0]["key"] == (
        "errors.recurring_event_not_supported"
    )
    response = delete(client, events_path(google), ctx.token, {"event_uid": data["event_uid"]})
    assert response.status_code == 422
    assert ManagedEventWrite.objects.count() == queued
