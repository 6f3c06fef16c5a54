"""Tolerant parsing of query and body values (docs/api.md, Conventions)."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.http import QueryDict

from accounts.rest import CronofyValidationError
from calendars.parsing import (
    get_list,
    parse_bool,
    parse_event_time,
    parse_time,
    parse_tzid,
    window_boundary,
)

NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("True", True),
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("False", False),
        ("false", False),
        ("0", False),
        (None, False),
        (True, True),
    ],
)
def test_parse_bool_any_case(raw, expected):
    assert parse_bool(raw, "flag") is expected


def test_parse_bool_rejects_other_words():
    with pytest.raises(CronofyValidationError) as caught:
        parse_bool("perhaps", "include_deleted")
    assert caught.value.errors["include_deleted"][0]["key"] == "errors.must_be_boolean"


@pytest.mark.parametrize(
    "raw",
    [
        "2014-08-05T15:30:00Z",
        "2014-08-05 15:30:00Z",
        "2014-08-05T15:30:00UTC",
        "2014-08-05T15:30:00+00:00",
        "2014-08-05T17:30:00+02:00",
        "2014-08-05T17:30:00+0200",
        "2014-08-05T10:30:00-05",
        "2014-08-05T15:30Z",
        "2014-08-05T15:30:00.000Z",
        "2014-08-05t15:30:00z",
    ],
)
def test_parse_time_accepts_every_sdk_form(raw):
    assert parse_time(raw, "from").instant == datetime(2014, 8, 5, 15, 30, tzinfo=UTC)


def test_parse_time_bare_date_and_zone_less_times():
    assert parse_time("2014-08-05", "from").day == date(2014, 8, 5)
    local = parse_time("2014-08-05T11:30:00", "from", tz=NY).instant
    assert local == datetime(2014, 8, 5, 15, 30, tzinfo=UTC)
    with pytest.raises(CronofyValidationError):
        parse_time("2014-08-05T11:30:00", "from")


@pytest.mark.parametrize(
    "raw", ["tomorrow", "2014-02-30", "2014-08-05T25:00:00Z", "2014-08-05T10:00:00+25:00", ""]
)
def test_parse_time_rejects_garbage(raw):
    with pytest.raises(CronofyValidationError):
        parse_time(raw, "from")


def test_window_boundary_dates_are_midnight_in_zone():
    assert window_boundary("2026-11-23", "from", tz=NY) == datetime(2026, 11, 23, 5, tzinfo=UTC)


def test_parse_event_time_object_form():
    parsed, zone = parse_event_time(
        {"time": "2026-11-23T10:00:00", "tzid": "Europe/Paris"}, "start"
    )
    assert parsed.instant == datetime(2026, 11, 23, 9, tzinfo=UTC)
    assert zone.key == "Europe/Paris"


def test_parse_tzid():
    assert parse_tzid("Europe/London").key == "Europe/London"
    assert parse_tzid("UTC").key == "UTC"
    for bad in ("Not/AZone", "/etc/localtime", "../UTC"):
        with pytest.raises(CronofyValidationError) as caught:
            parse_tzid(bad)
        assert caught.value.errors["tzid"][0]["key"] == "errors.invalid_tzid"
    assert parse_tzid(None, required=False) is None


def test_get_list_accepts_brackets_repeats_and_commas():
    query = QueryDict(
        "calendar_ids%5B%5D=cal_a@x-1&calendar_ids%5B%5D=cal_b&calendar_ids=cal_c,cal_a@x-1"
    )
    assert get_list(query, "calendar_ids") == ["cal_a@x-1", "cal_b", "cal_c"]
