"""Desired state -> Graph event (sync.providers.microsoft.write): managed fields only, Graph's
own notation compares equal, an invitation answer is Graph's action, not a PATCH."""

import json
from datetime import UTC, datetime

import pytest

from sync.providers.base import InvalidData, WriteContext
from sync.providers.microsoft import write
from tests.sync.writes_helpers import desired

CONTEXT = WriteContext(uid="evt_1", self_emails=frozenset({"ada@example.com"}))
START = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def test_microsoft_write_new_event_body():
    data = desired(START, attendees_invite=[{"email": "bob@example.com", "display_name": "Bob"}])
    body = write.patch_body(write.render_event(desired=data, current="", context=CONTEXT).payload)
    # 09:00 UTC, in the integrator's zone (Europe/Berlin) by Outlook's name for it.
    assert body["start"] == {
        "dateTime": "2026-12-10T10:00:00",
        "timeZone": "W. Europe Standard Time",
    }
    assert "originalStartTimeZone" not in body  # read-only at Graph
    assert body["subject"] == "Managed" and body["location"] == {"displayName": "Room 1"}
    assert body["body"] == {"contentType": "text", "content": "Booked through the API"}
    assert (body["isReminderOn"], body["reminderMinutesBeforeStart"]) == (True, 15)
    assert body["showAs"] == "busy" and body["isAllDay"] is False
    assert body["attendees"] == [
        {"type": "required", "emailAddress": {"address": "bob@example.com", "name": "Bob"}}
    ]


def test_microsoft_write_same_state_in_graphs_notation_is_no_change():
    first = write.render_event(desired=desired(START), current="", context=CONTEXT)
    held = json.loads(first.payload)
    held.pop(write.PATCH_FIELDS)
    held["start"] = {"dateTime": "2026-12-10T09:00:00.0000000", "timeZone": "UTC"}
    held["end"] = {"dateTime": "2026-12-10T10:00:00.0000000", "timeZone": "UTC"}
    held["id"], held["changeKey"] = "AAMk=", "ck"
    again = write.render_event(desired=desired(START), current=json.dumps(held), context=CONTEXT)
    assert not again.changed


def test_microsoft_write_zone_other_than_a_windows_main_city_is_sent_as_iana():
    data = desired(START, tzid="Europe/Amsterdam")
    body = write.patch_body(write.render_event(desired=data, current="", context=CONTEXT).payload)
    assert body["start"] == {"dateTime": "2026-12-10T10:00:00", "timeZone": "Europe/Amsterdam"}
    utc = write.patch_body(
        write.render_event(desired=desired(START, tzid="UTC"), current="", context=CONTEXT).payload
    )
    assert utc["start"] == {"dateTime": "2026-12-10T09:00:00", "timeZone": "UTC"}


def test_microsoft_write_a_new_zone_alone_is_a_change_and_graphs_utc_answer_is_none():
    held = {
        **json.loads(
            write.render_event(desired=desired(START), current="", context=CONTEXT).payload
        ),
        "start": {"dateTime": "2026-12-10T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-10T10:00:00.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": "W. Europe Standard Time",
    }
    held.pop(write.PATCH_FIELDS)
    current = json.dumps(held)
    assert not write.render_event(desired=desired(START), current=current, context=CONTEXT).changed
    moved = write.render_event(
        desired=desired(START, tzid="America/New_York"), current=current, context=CONTEXT
    )
    assert moved.changed
    body = write.patch_body(moved.payload)
    assert body["start"] == {"dateTime": "2026-12-10T04:00:00", "timeZone": "Eastern Standard Time"}


def test_microsoft_write_all_day_uses_midnights_and_is_all_day():
    data = desired(START, is_all_day=True, start_date="2026-12-14", end_date="2026-12-16")
    body = write.patch_body(write.render_event(desired=data, current="", context=CONTEXT).payload)
    assert body["isAllDay"] is True
    assert body["end"] == {"dateTime": "2026-12-16T00:00:00", "timeZone": "UTC"}


def test_microsoft_write_answer_is_an_action():
    current = json.dumps({"id": "AAMk=", "responseStatus": {"response": "notResponded"}})
    rendered = write.render_participation(status="tentative", current=current, context=CONTEXT)
    assert rendered.changed and write.answer_of(rendered.payload) == "tentativelyAccept"
    organized = json.dumps({"id": "AAMk=", "isOrganizer": True})
    with pytest.raises(InvalidData):
        write.render_participation(status="accepted", current=organized, context=CONTEXT)
    same = json.dumps({"id": "AAMk=", "responseStatus": {"response": "declined"}})
    assert not write.render_participation(status="declined", current=same, context=CONTEXT).changed
