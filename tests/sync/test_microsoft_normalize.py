"""Graph events -> cached events (sync.providers.microsoft.normalize), from a recorded
calendarView/delta page: keys, times and zones, occurrences, busy rules."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sync.providers.base import InvalidData, ProviderResource, ReadContext, Window
from sync.providers.microsoft import normalize

PAGE = json.loads(
    (Path(__file__).parents[1] / "fixtures/microsoft/calendar_view_delta.json").read_text()
)
WINDOW = Window.around(date(2026, 12, 2), past_days=42, future_days=201)
CONTEXT = ReadContext(default_tzid="Etc/UTC", self_emails=frozenset({"ada@example.com"}))


def event(item_id: str):
    item = next(i for i in PAGE["value"] if i["id"] == item_id)
    resource = ProviderResource(item["id"], item["@odata.etag"], json.dumps(item))
    [data] = normalize.normalize(resource, window=WINDOW, context=CONTEXT).events
    return data


def test_microsoft_normalize_single_event_zone_people_and_meeting():
    data = event("AAMkADsingle=")
    assert (data.provider_key, data.original_start) == ("AAMkADsingle=", None)
    assert data.start == datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    assert data.end == datetime(2026, 12, 10, 10, 30, tzinfo=UTC)
    assert data.tzid == "Europe/Berlin"  # from the Windows zone name
    assert data.description == "Quarterly planning"  # HTML body as text
    assert data.participation_status == "tentative"
    assert (data.transparency, data.extended_transparency) == ("opaque", "tentative")
    assert data.meeting_url.startswith("https://teams.microsoft.com/")
    assert data.provider_etag == 'W/"DwAAABYAAAB1"'
    assert data.provider_created_at == datetime(2026, 11, 20, 8, 0, 0, 123456, tzinfo=UTC)


def test_microsoft_normalize_occurrence_is_keyed_by_its_series():
    data = event("AAMkADoccurrence1=")
    assert data.provider_key == "AAMkADmaster=" and data.is_recurring
    assert data.original_start == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert data.participation_status == "accepted"  # the organizer


def test_microsoft_normalize_all_day_out_of_office():
    data = event("AAMkADallday=")
    assert data.is_all_day and (data.start_date, data.end_date) == (
        date(2026, 12, 14),
        date(2026, 12, 16),
    )
    assert (data.transparency, data.extended_transparency) == ("opaque", "out_of_office")
    assert data.is_private


def test_microsoft_normalize_event_we_created_is_keyed_by_our_transaction_id():
    item = {**PAGE["value"][0], "transactionId": "evt_managed_1"}
    resource = ProviderResource(item["id"], "v", json.dumps(item))
    [data] = normalize.normalize(resource, window=WINDOW, context=CONTEXT).events
    assert data.provider_key == "evt_managed_1" and data.provider_resource == "AAMkADsingle="


def test_microsoft_normalize_unreadable_payload_is_invalid_data():
    with pytest.raises(InvalidData):
        normalize.normalize(ProviderResource("x", "v", "{}"), window=WINDOW, context=CONTEXT)


def test_microsoft_normalize_only_our_transaction_ids_key_an_event():
    theirs = {**PAGE["value"][0], "transactionId": "crm-4711"}
    resource = ProviderResource(theirs["id"], "v", json.dumps(theirs))
    [data] = normalize.normalize(resource, window=WINDOW, context=CONTEXT).events
    assert data.provider_key == "AAMkADsingle="  # another app's id is not our key


def test_microsoft_normalize_original_start_in_any_rfc3339_form():
    item = {**PAGE["value"][1], "originalStart": "2026-12-07T09:00:00.5+01:00"}
    resource = ProviderResource(item["id"], "v", json.dumps(item))
    [data] = normalize.normalize(resource, window=WINDOW, context=CONTEXT).events
    assert data.original_start == datetime(2026, 12, 7, 8, 0, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    "name, tzid",
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("America/Chicago", "America/Chicago"),
        ("tzone://Microsoft/Utc", "Etc/UTC"),
        ("Customized Time Zone", "Asia/Tokyo"),
        ("tzone://Microsoft/Custom", "Asia/Tokyo"),
        ("Mars Standard Time", "Asia/Tokyo"),
        ("", "Asia/Tokyo"),
    ],
)
def test_microsoft_zone_names_graph_reports_become_iana_or_the_default(name, tzid):
    assert normalize.iana_zone(name, "Asia/Tokyo") == tzid


@pytest.mark.parametrize(
    "moment, tzid, day",
    [
        (datetime(2026, 12, 14, 0, 0, tzinfo=UTC), "Europe/Berlin", date(2026, 12, 14)),
        (datetime(2026, 12, 13, 23, 0, tzinfo=UTC), "Europe/Berlin", date(2026, 12, 14)),
        (datetime(2026, 12, 14, 5, 0, tzinfo=UTC), "America/Chicago", date(2026, 12, 14)),
        (datetime(2026, 12, 13, 23, 30, tzinfo=UTC), "Etc/UTC", date(2026, 12, 14)),
    ],
)
def test_microsoft_all_day_boundaries_floating_or_shifted_to_utc(moment, tzid, day):
    assert normalize.all_day_date(moment, tzid) == day
