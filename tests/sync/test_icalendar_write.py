"""Desired state -> iCalendar (sync.providers.icalendar.write): what we write, what we keep,
what is a no-op."""

import re
from datetime import UTC, datetime, timedelta

import icalendar
import pytest

from sync.providers.base import Window
from sync.providers.icalendar.normalize import normalize_resource
from sync.providers.icalendar.write import ParticipantNotFound, merge_desired, set_participation
from tests.sync.writes_helpers import desired

START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
WINDOW = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 12, 31, tzinfo=UTC))


def _event(ical: str, uid: str = "u1"):
    [event] = [
        c
        for c in icalendar.Calendar.from_ical(ical).walk("VEVENT")
        if str(c["UID"]) == uid and c.get("RECURRENCE-ID") is None
    ]
    return event


def test_merge_desired_new_event_has_every_managed_property():
    data = desired(
        START,
        summary="Interview",
        location_lat="52.52",
        location_long="13.405",
        url="https://example.com/booking/1",
        is_private=True,
        transparency="transparent",
        color="#49BED8",
        reminders=[10, 60],
        attendees_invite=[{"email": "bob@example.com", "display_name": "Bob"}],
    )
    rendered = merge_desired(uid="u1", desired=data, organizer_email="alice@example.com")
    assert rendered.changed
    event = _event(rendered.payload)
    assert event.decoded("DTSTART") == START and str(event["DTSTART"].params["TZID"]) == (
        "Europe/Berlin"
    )
    assert "BEGIN:VTIMEZONE" in rendered.payload and "TZID:Europe/Berlin" in rendered.payload
    assert str(event["SUMMARY"]) == "Interview" and str(event["CLASS"]) == "PRIVATE"
    assert str(event["TRANSP"]) == "TRANSPARENT" and str(event["COLOR"]) == "#49BED8"
    assert (event["GEO"].latitude, event["GEO"].longitude) == (52.52, 13.405)
    assert str(event["URL"]) == "https://example.com/booking/1"
    assert event["SEQUENCE"] == 0 and "DTSTAMP" in event and "LAST-MODIFIED" in event
    triggers = [a.decoded("TRIGGER") for a in event.walk("VALARM")]
    assert triggers == [timedelta(minutes=-10), timedelta(minutes=-60)]
    assert str(event["ATTENDEE"]) == "mailto:bob@example.com"
    assert str(event["ORGANIZER"]) == "mailto:alice@example.com"
    # What we write reads back as what was asked.
    _uids, [data_back] = normalize_resource(rendered.payload, window=WINDOW)
    assert (data_back.start, data_back.end, data_back.tzid) == (
        START,
        START + timedelta(hours=1),
        "Europe/Berlin",
    )
    assert data_back.is_private and data_back.transparency == "transparent"


def test_merge_desired_all_day_uses_dates_and_transp_only_when_set():
    data = desired(
        START, is_all_day=True, start_date="2026-11-28", end_date="2026-11-30", transparency=None
    )
    event = _event(merge_desired(uid="u1", desired=data).payload)
    assert (
        event["DTSTART"].params.get("VALUE") == "DATE" or "VALUE=DATE" in event.to_ical().decode()
    )
    assert event.decoded("DTEND").isoformat() == "2026-11-30"
    assert "TRANSP" not in event


def test_merge_desired_update_keeps_what_we_do_not_manage_and_bumps_sequence():
    created = merge_desired(uid="u1", desired=desired(START, reminders=[30])).payload
    foreign = created.replace(
        "END:VEVENT",
        "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@example.com\r\nEND:VEVENT",
    )
    override = (
        "BEGIN:VEVENT\r\nUID:u1\r\nRECURRENCE-ID:20261205T090000Z\r\n"
        "DTSTART:20261205T100000Z\r\nDTEND:20261205T110000Z\r\nSUMMARY:Moved one\r\n"
        "DTSTAMP:20260101T000000Z\r\nEND:VEVENT\r\n"
    )
    foreign = foreign.replace("END:VCALENDAR", override + "END:VCALENDAR")
    data = desired(
        START,
        summary="Renamed",
        reminders=None,  # leave alarms
        attendees_invite=[{"email": "dan@example.com"}],
        attendees_remove=[{"email": "nobody@example.com"}],
    )
    rendered = merge_desired(uid="u1", desired=data, current=foreign)
    event = _event(rendered.payload)
    assert str(event["SUMMARY"]) == "Renamed" and event["SEQUENCE"] == 1
    assert str(event["X-APPLE-TRAVEL-ADVISORY-BEHAVIOR"]) == "AUTOMATIC"
    assert [a.decoded("TRIGGER") for a in event.walk("VALARM")] == [timedelta(minutes=-30)]
    assert sorted(str(a) for a in event["ATTENDEE"]) == [
        "mailto:carol@example.com",
        "mailto:dan@example.com",
    ]
    assert "SUMMARY:Moved one" in rendered.payload  # the overridden instance is kept

    removed = merge_desired(
        uid="u1",
        desired=desired(
            START,
            summary="Renamed",
            reminders=[],
            attendees_remove=[{"email": "CAROL@example.com"}],
        ),
        current=rendered.payload,
    )
    event = _event(removed.payload)
    assert [str(a) for a in [event["ATTENDEE"]]] == ["mailto:dan@example.com"]
    assert list(event.walk("VALARM")) == [] and event["SEQUENCE"] == 2


def test_merge_desired_reminders_create_only_leaves_existing_alarms():
    created = merge_desired(uid="u1", desired=desired(START, reminders=[30])).payload
    data = desired(START, summary="x", reminders=[5], reminders_create_only=True)
    event = _event(merge_desired(uid="u1", desired=data, current=created).payload)
    assert [a.decoded("TRIGGER") for a in event.walk("VALARM")] == [timedelta(minutes=-30)]


def test_merge_desired_same_state_is_unchanged():
    data = desired(START, attendees_invite=[{"email": "bob@example.com"}], reminders=[10])
    created = merge_desired(uid="u1", desired=data, organizer_email="a@example.com").payload
    again = merge_desired(uid="u1", desired=data, current=created, organizer_email="a@example.com")
    assert not again.changed and again.payload == created


def test_set_participation_changes_only_the_owner_partstat():
    ical = merge_desired(
        uid="u1",
        desired=desired(
            START,
            attendees_invite=[{"email": "me@example.com"}, {"email": "other@example.com"}],
        ),
    ).payload
    rendered = set_participation(
        uid="u1",
        current=ical,
        self_emails=frozenset({"me@example.com"}),
        participation_status="declined",
    )
    partstats = {str(a): str(a.params["PARTSTAT"]) for a in _event(rendered.payload)["ATTENDEE"]}
    assert partstats == {
        "mailto:me@example.com": "DECLINED",
        "mailto:other@example.com": "NEEDS-ACTION",
    }
    same = set_participation(
        uid="u1",
        current=rendered.payload,
        self_emails=frozenset({"me@example.com"}),
        participation_status="declined",
    )
    assert not same.changed
    with pytest.raises(ParticipantNotFound):
        set_participation(
            uid="u1",
            current=ical,
            self_emails=frozenset({"x@example.com"}),
            participation_status="accepted",
        )


def test_merge_desired_finds_the_master_whatever_space_surrounds_its_uid():
    created = merge_desired(uid="u1", desired=desired(START)).payload
    spaced = created.replace("UID:u1", "UID: u1 ")

    merged = merge_desired(uid="u1", desired=desired(START, summary="Moved"), current=spaced)

    masters = icalendar.Calendar.from_ical(merged.payload).walk("VEVENT")
    assert len(masters) == 1 and str(masters[0]["SUMMARY"]) == "Moved"


def _zone(ical: str):
    [vtimezone] = icalendar.Calendar.from_ical(ical).walk("VTIMEZONE")
    return vtimezone


def _first_year(ical: str) -> int:
    observances = [c for c in _zone(ical).walk() if c.name in ("STANDARD", "DAYLIGHT")]
    return min(c["DTSTART"].dt.year for c in observances)


def _summer_offset(ical: str, year: int) -> timedelta:
    """The UTC offset the VTIMEZONE itself gives in July of `year` (not zoneinfo's: the
    component is what the server and other clients read)."""
    zone = _zone(ical).to_tz(lookup_tzid=False)
    return datetime(year, 7, 1, 9, 0, tzinfo=UTC).astimezone(zone).utcoffset()


BERLIN_SUMMER = timedelta(hours=2)


@pytest.mark.parametrize(
    ("start", "recurrence", "summer"),
    [
        (START, None, 2026),
        (datetime(2045, 1, 10, 9, 0, tzinfo=UTC), None, 2045),  # past icalendar's default end
        (START, {"frequency": "weekly"}, 2037),  # a series: years ahead
    ],
)
def test_merge_desired_vtimezone_covers_the_event_and_not_the_past_decades(
    start, recurrence, summer
):
    ical = merge_desired(uid="u1", desired=desired(start, recurrence=recurrence)).payload

    assert _first_year(ical) == start.year - 1  # not 1970: 2.6 KB parsed on every read
    assert _summer_offset(ical, summer) == BERLIN_SUMMER
    [event] = normalize_resource(
        ical,
        window=Window(start - timedelta(1), start + timedelta(1)),
        href="/u1.ics",
        etag="e",
        default_tzid="UTC",
        self_emails=frozenset(),
    )[1][:1]
    assert event.start == start


@pytest.mark.parametrize(
    "change",
    [
        {"start": "2029-07-01T09:00:00Z", "end": "2029-07-01T10:00:00Z"},  # moved years ahead
        {"recurrence": {"frequency": "weekly"}},  # became a series
    ],
)
def test_merge_desired_rebuilds_the_vtimezone_it_wrote_when_the_event_outgrows_it(change):
    created = merge_desired(uid="u1", desired=desired(START)).payload
    assert _summer_offset(created, 2026) == BERLIN_SUMMER

    updated = merge_desired(uid="u1", desired={**desired(START), **change}, current=created)

    assert updated.payload.count("BEGIN:VTIMEZONE") == 1
    assert _summer_offset(updated.payload, 2029) == BERLIN_SUMMER
    if "recurrence" in change:
        assert _summer_offset(updated.payload, 2037) == BERLIN_SUMMER


def test_merge_desired_drops_the_vtimezone_it_wrote_when_the_event_leaves_its_zone():
    created = merge_desired(uid="u1", desired=desired(START)).payload

    updated = merge_desired(
        uid="u1", desired={**desired(START), "tzid": "America/New_York"}, current=created
    )

    zones = [str(z["TZID"]) for z in icalendar.Calendar.from_ical(updated.payload).timezones]
    assert zones == ["America/New_York"]


def test_merge_desired_keeps_an_unused_vtimezone_the_provider_wrote():
    created = merge_desired(uid="u1", desired=desired(START)).payload
    theirs = created.replace("COMMENT:This timezone only works", "X-NOTE:Ours, once")

    updated = merge_desired(
        uid="u1", desired={**desired(START), "tzid": "America/New_York"}, current=theirs
    )

    zones = {str(z["TZID"]) for z in icalendar.Calendar.from_ical(updated.payload).timezones}
    assert zones == {"Europe/Berlin", "America/New_York"}


def test_merge_desired_keeps_a_vtimezone_the_provider_wrote():
    provider_zone = (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nX-LIC-LOCATION:Europe/Berlin\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n"
        "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n"
        "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n"
        "END:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    created = merge_desired(uid="u1", desired=desired(START)).payload
    theirs = re.sub(r"BEGIN:VTIMEZONE.*?END:VTIMEZONE\r\n", provider_zone, created, flags=re.S)

    # Made a series, so that a zone we had built would be rebuilt (see the test above).
    series = desired(START, recurrence={"frequency": "weekly"})
    updated = merge_desired(uid="u1", desired=series, current=theirs)

    assert "X-LIC-LOCATION:Europe/Berlin" in updated.payload
    assert updated.payload.count("BEGIN:VTIMEZONE") == 1


def test_merge_desired_keeps_an_outgrown_built_zone_it_cannot_build_again():
    """A zone icalendar built under a name tzdata does not know: rebuilding it would take
    icalendar's cached, partial definition; it is kept as the provider sent it, for the moved
    instance that still uses it."""
    created = merge_desired(uid="u1", desired=desired(START)).payload
    moved_instance = (
        "BEGIN:VEVENT\r\nUID:u1\r\nRECURRENCE-ID;TZID=Custom/Zone:20260309T100000\r\n"
        "DTSTART;TZID=Custom/Zone:20260309T120000\r\nDTEND;TZID=Custom/Zone:20260309T130000\r\n"
        "DTSTAMP:20260101T000000Z\r\nSUMMARY:Moved\r\nEND:VEVENT\r\n"
    )
    custom = created.replace("Europe/Berlin", "Custom/Zone").replace(
        "END:VCALENDAR", moved_instance + "END:VCALENDAR"
    )

    updated = merge_desired(
        uid="u1", desired={**desired(START), "recurrence": {"frequency": "weekly"}}, current=custom
    )

    zones = {str(z["TZID"]): z for z in icalendar.Calendar.from_ical(updated.payload).timezones}
    assert "only works from 2025-01-01 to 2028-01-01" in str(zones["Custom/Zone"]["COMMENT"])


def test_merge_desired_renders_an_event_at_the_end_of_the_calendar():
    """Far-future dates (some exports end series on 9999-12-31) must not overflow the span."""
    rendered = merge_desired(uid="u1", desired=desired(datetime(9998, 6, 1, 9, tzinfo=UTC)))

    assert "DTSTART;TZID=Europe/Berlin:99980601T110000" in rendered.payload
