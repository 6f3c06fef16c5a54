"""Desired state -> Google event (sync.providers.google.write): only the fields we manage are
sent, what Google keeps stays, and a state Google already holds makes no call."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from sync.providers.base import InvalidData, WriteContext
from sync.providers.google import normalize, write
from sync.providers.google.adapter import event_id_for
from tests.sync.writes_helpers import desired

CONTEXT = WriteContext(uid="evt_1", self_emails=frozenset({"ada@example.com"}))
START = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def held(**master) -> str:
    group = normalize.new_group("Europe/Berlin")
    group["master"] = {
        "id": "abc",
        "etag": '"1"',
        "summary": "Old",
        "start": {"dateTime": "2026-12-10T09:00:00Z", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-12-10T10:00:00Z", "timeZone": "Europe/Berlin"},
        "conferenceData": {"conferenceId": "keep-me"},
        **master,
    }
    return normalize.dump(group)


def test_google_write_new_event_body_has_times_reminders_and_invitees():
    data = desired(START, attendees_invite=[{"email": "bob@example.com", "display_name": "Bob"}])
    rendered = write.render_event(desired=data, current="", context=CONTEXT)
    body = write.patch_body(rendered.payload)
    assert rendered.changed
    assert body["start"] == {
        "dateTime": "2026-12-10T09:00:00Z",
        "timeZone": "Europe/Berlin",
        "date": None,  # patch merges nested objects: clear an all-day date explicitly
    }
    assert body["end"]["dateTime"] == "2026-12-10T10:00:00Z"
    assert body["summary"] == "Managed" and body["location"] == "Room 1"
    assert body["reminders"] == {
        "useDefault": False,
        "overrides": [{"method": "popup", "minutes": 15}],
    }
    assert body["attendees"] == [
        {"email": "bob@example.com", "responseStatus": "needsAction", "displayName": "Bob"}
    ]
    assert "id" not in body and "conferenceData" not in body


def test_google_write_merge_keeps_what_we_do_not_manage():
    rendered = write.render_event(
        desired=desired(START, summary="New"), current=held(), context=CONTEXT
    )
    master = json.loads(rendered.payload)["master"]
    assert master["summary"] == "New" and master["conferenceData"] == {"conferenceId": "keep-me"}
    assert "conferenceData" not in write.patch_body(rendered.payload)  # never sent back


def test_google_write_same_state_is_no_change():
    data = desired(START, summary="Old", minutes=60)
    first = write.render_event(desired=data, current=held(), context=CONTEXT)
    again = write.render_event(desired=data, current=first.payload, context=CONTEXT)
    assert first.changed and not again.changed and again.payload == first.payload


def test_google_write_all_day_is_dates_with_an_exclusive_end():
    data = desired(START, is_all_day=True, start_date="2026-12-14", end_date="2026-12-16")
    body = write.patch_body(write.render_event(desired=data, current="", context=CONTEXT).payload)
    assert body["start"] == {"date": "2026-12-14", "dateTime": None, "timeZone": None}
    assert body["end"] == {"date": "2026-12-16", "dateTime": None, "timeZone": None}


def test_google_write_private_and_confidential():
    data = desired(START, is_private=False)
    current = held(visibility="confidential")
    master = json.loads(write.render_event(desired=data, current=current, context=CONTEXT).payload)
    assert master["master"]["visibility"] == "default"
    kept = write.render_event(
        desired=desired(START, is_private=True), current=current, context=CONTEXT
    )
    assert json.loads(kept.payload)["master"]["visibility"] == "confidential"


def test_google_write_participation_sets_the_self_attendees_response():
    current = held(
        attendees=[
            {"email": "boss@example.com", "organizer": True, "responseStatus": "accepted"},
            {"email": "Ada@example.com", "responseStatus": "needsAction"},
        ]
    )
    rendered = write.render_participation(status="tentative", current=current, context=CONTEXT)
    body = write.patch_body(rendered.payload)
    # Only our attendee, marked as a partial list: an invitee may change nothing else, and
    # the other attendees' answers stay Google's.
    assert rendered.changed
    assert body == {
        "attendees": [{"email": "Ada@example.com", "responseStatus": "tentative"}],
        "attendeesOmitted": True,
    }
    with pytest.raises(InvalidData):
        write.render_participation(status="accepted", current=held(), context=CONTEXT)


def test_google_event_ids_are_base32hex_and_stable():
    first, again = event_id_for("evt_1"), event_id_for("evt_1")
    assert first == again and first != event_id_for("evt_2")
    assert 5 <= len(first) <= 1024 and set(first) <= set("0123456789abcdefghijklmnopqrstuv")


def test_google_write_reminders_create_only_leaves_existing_alarms():
    current = held(reminders={"useDefault": True})
    data = desired(START + timedelta(hours=1), reminders=[30], reminders_create_only=True)
    rendered = write.render_event(desired=data, current=current, context=CONTEXT)
    assert json.loads(rendered.payload)["master"]["reminders"] == {"useDefault": True}


def test_google_write_same_state_in_googles_own_notation_is_no_change():
    # Google answers with offsets in the calendar's zone, not the Z times we send.
    current = held(
        summary="Old",
        description="Booked through the API",
        location="Room 1",
        start={"dateTime": "2026-12-10T10:00:00+01:00", "timeZone": "Europe/Berlin"},
        end={"dateTime": "2026-12-10T11:00:00+01:00", "timeZone": "Europe/Berlin"},
        transparency="opaque",
        status="confirmed",
        reminders={"useDefault": False, "overrides": [{"method": "popup", "minutes": 15}]},
    )
    rendered = write.render_event(
        desired=desired(START, summary="Old", minutes=60), current=current, context=CONTEXT
    )
    assert not rendered.changed


def test_google_write_colour_becomes_the_nearest_google_event_colour():
    rendered = write.render_event(
        desired=desired(START, color="#49BED8"), current="", context=CONTEXT
    )
    assert write.patch_body(rendered.payload)["colorId"] == "7"  # peacock, #46d6db
    assert write.nearest_color_id("#dc2127") == "11"


def test_google_write_one_instance_targets_its_own_id_and_keeps_the_series():
    current = held(recurrence=["RRULE:FREQ=DAILY;COUNT=3"])
    second = START + timedelta(days=1)
    context = WriteContext(uid="evt_1", instance_start=second)
    moved = desired(second + timedelta(hours=2), summary="Moved")
    rendered = write.render_event(desired=moved, current=current, context=context)
    group = json.loads(rendered.payload)
    assert group[write.INSTANCE] == "abc_20261211T090000Z"
    assert group["master"] == json.loads(current)["master"]  # the series is not written
    body = write.patch_body(rendered.payload)
    assert body["summary"] == "Moved" and "recurrence" not in body
    assert body["start"]["dateTime"] == "2026-12-11T11:00:00Z"
    # Google's answer becomes the exception; the same write again is no call.
    answer = {**write.target_of(group), "etag": '"2"'}
    group["exceptions"]["abc_20261211T090000Z"] = answer
    for name in (write.INSTANCE, write.PATCH_FIELDS):
        group.pop(name)
    again = write.render_event(desired=moved, current=normalize.dump(group), context=context)
    assert not again.changed

    removed = write.render_event(
        desired={"delete_instance": True}, current=normalize.dump(group), context=context
    )
    assert write.patch_body(removed.payload) == {"status": "cancelled"}


def test_google_write_one_instance_of_an_all_day_series_and_of_no_series():
    current = held(
        start={"date": "2026-12-10"},
        end={"date": "2026-12-11"},
        recurrence=["RRULE:FREQ=DAILY;COUNT=3"],
    )
    # The cache keeps an all-day instance as its UTC midnight; Google names it by its date.
    context = WriteContext(uid="evt_1", instance_start=datetime(2026, 12, 12, tzinfo=UTC))
    rendered = write.render_event(
        desired={"delete_instance": True}, current=current, context=context
    )
    group = json.loads(rendered.payload)
    assert group[write.INSTANCE] == "abc_20261212"
    assert write.target_of(group)["originalStartTime"] == {"date": "2026-12-12"}
    with pytest.raises(InvalidData):
        write.render_event(desired={"delete_instance": True}, current=held(), context=context)
