"""Tolerant parsing of API input (docs/api.md, Conventions), shared by the read and write paths.

Every parser takes the raw value and the request key it came from, and raises
`CronofyValidationError` (422, Cronofy's shape) naming that key on bad input. None of them
touches the database.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from accounts.rest import CronofyValidationError

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# 2014-08-05T15:30:00Z, 2014-08-05 15:30:00Z (.NET "u"), 2014-08-05T15:30Z, fractions,
# +01:00 / +0100 offsets, a trailing "UTC" (pycronofy's validator accepts it), or no zone.
_TIME_RE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<clock>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)"
    r"\s*(?P<zone>Z|UTC|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)

# Years we accept in times and dates (as written, before any offset or zone): any other is a
# 422 (errors.invalid_time for a time, errors.invalid_date for a bare date). Far wider than any
# real event or query window, yet narrow enough that applying an offset or time zone (±1 day),
# the reads' window padding (hours) and default windows (days) can never leave datetime's range
# (years 1–9999), which would be an OverflowError, i.e. a 500. Event times and read windows
# (from, to, last_modified) share these bounds.
MIN_YEAR = 1900
MAX_YEAR = 2200


def _invalid(field: str, key: str, description: str) -> CronofyValidationError:
    return CronofyValidationError.single(field, key, description)


def parse_bool(value, field: str, *, default: bool = False) -> bool:
    """A boolean in any case (`True`, `true`, `1`…); None means `default`."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return default if text == "" else False
    raise _invalid(field, "errors.must_be_boolean", f"{field} must be true or false")


_ZONES: frozenset[str] | None = None


def known_zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC", "Etc/UTC"}
    return _ZONES


def parse_tzid(value, field: str = "tzid", *, required: bool = True) -> ZoneInfo | None:
    """An IANA time zone id (422 `errors.required` when missing, `errors.invalid_tzid` when
    unknown). Only ids in the IANA database are accepted, never file paths."""
    if value is None or str(value).strip() == "":
        if required:
            raise _invalid(field, "errors.required", f"{field} must be specified")
        return None
    name = str(value).strip()
    if name not in known_zones():
        raise _invalid(field, "errors.invalid_tzid", f"{name!r} is not a known IANA time zone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _invalid(field, "errors.invalid_tzid", f"{name!r} is not a known time zone") from exc


def _parse_date(text: str, field: str, *, range_key: str = "errors.invalid_date") -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise _invalid(field, "errors.invalid_date", f"{field} is not a valid date") from exc
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise _invalid(
            field, range_key, f"{field} is out of range (years {MIN_YEAR} to {MAX_YEAR})"
        )
    return day


def _parse_offset(zone: str) -> timedelta:
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    return sign * timedelta(hours=hours, minutes=minutes)


@dataclass(frozen=True)
class ParsedTime:
    """A point in time (`instant`, aware UTC) or a calendar date (`day`), never both."""

    instant: datetime | None = None
    day: date | None = None

    @property
    def is_date(self) -> bool:
        return self.day is not None


def parse_time(value, field: str, *, tz: ZoneInfo | None = None) -> ParsedTime:
    """A time in any of the forms the SDKs send, or a bare date.

    Accepts `T` or a space between date and clock, `Z`, `UTC`, `±HH:MM`, `±HHMM` and `±HH`
    offsets; a time without a zone is read in `tz` (422 if there is none). A bare date stays a
    date: the caller decides what it means (a window boundary, an all-day event).
    """
    if value is None or str(value).strip() == "":
        raise _invalid(field, "errors.required", f"{field} must be specified")
    text = str(value).strip()
    if _DATE_RE.match(text):
        return ParsedTime(day=_parse_date(text, field))
    match = _TIME_RE.match(text)
    if not match:
        raise _invalid(field, "errors.invalid_time", f"{field} is not a valid time: {text!r}")
    day = _parse_date(match["date"], field, range_key="errors.invalid_time")
    try:
        clock = time.fromisoformat(match["clock"][:15])
    except ValueError as exc:
        raise _invalid(field, "errors.invalid_time", f"{field} is not a valid time") from exc
    local = datetime.combine(day, clock)
    zone = (match["zone"] or "").upper()
    if zone in ("Z", "UTC"):
        return ParsedTime(instant=local.replace(tzinfo=UTC))
    if zone:
        try:
            offset = _parse_offset(zone)
        except ValueError as exc:
            raise _invalid(field, "errors.invalid_time", f"{field} has a bad offset") from exc
    elif tz is None:
        raise _invalid(field, "errors.invalid_time", f"{field} needs a time zone")
    try:  # cannot overflow within MIN_YEAR..MAX_YEAR: a safety net should the bounds change
        if zone:
            return ParsedTime(instant=(local - offset).replace(tzinfo=UTC))
        return ParsedTime(instant=local.replace(tzinfo=tz).astimezone(UTC))
    except OverflowError as exc:
        raise _invalid(field, "errors.invalid_time", f"{field} is out of range") from exc


def parse_event_time(value, field: str, *, default_tz: ZoneInfo | None = None):
    """An event time as in upsert bodies: a time/date string or a `{time, tzid}` object.

    Returns (ParsedTime, ZoneInfo | None): the zone is the object's `tzid`, else `default_tz`.
    """
    if isinstance(value, dict):
        tz = parse_tzid(value.get("tzid"), f"{field}.tzid", required=False) or default_tz
        return parse_time(value.get("time"), field, tz=tz), tz
    return parse_time(value, field, tz=default_tz), default_tz


def start_of_day(day: date, tz: ZoneInfo) -> datetime:
    """The instant (UTC) at which `day` begins in `tz`."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def window_boundary(value, field: str, *, tz: ZoneInfo) -> datetime:
    """A from/to query boundary as a UTC instant: dates are midnight in `tz`."""
    parsed = parse_time(value, field, tz=tz)
    return parsed.instant if parsed.instant is not None else start_of_day(parsed.day, tz)


def get_list(query, name: str) -> list[str]:
    """A repeatable query parameter given as `name[]=a&name[]=b`, `name=a&name=b` or
    `name=a,b`; empty values are dropped."""
    values = [*query.getlist(f"{name}[]"), *query.getlist(name)]
    items: list[str] = []
    for value in values:
        items.extend(part.strip() for part in str(value).split(",") if part.strip())
    return list(dict.fromkeys(items))
