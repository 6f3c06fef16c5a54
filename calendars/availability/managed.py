"""Bodies of /v1/availability_rules and /v1/available_periods (docs/api.md, Availability
rules and available periods): parsed into plain values, rendered back in Cronofy's shapes.
Nothing here touches the database."""

from dataclasses import dataclass
from datetime import datetime

from accounts.ids import format_utc
from calendars.availability.request import MAX_ID, parse_ids, parse_instant
from calendars.availability.rules import DAYS, clock_minutes
from calendars.parsing import known_zones
from calendars.writes import FieldErrors, require_object

MAX_WEEKLY_PERIODS = 70  # ten a day


@dataclass(frozen=True)
class RuleContent:
    rule_id: str
    tzid: str
    calendar_ids: tuple[str, ...]
    weekly_periods: tuple[dict, ...]


@dataclass(frozen=True)
class PeriodContent:
    period_id: str
    start: datetime
    end: datetime


def parse_id(errors: FieldErrors, body: dict, key: str) -> str | None:
    value = body.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID:
        errors.add(key, "errors.required", f"{key} must be a string of 1 to {MAX_ID} characters")
        return None
    return value


def _weekly_periods(errors: FieldErrors, value) -> tuple[dict, ...] | None:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_WEEKLY_PERIODS:
        errors.add(
            "weekly_periods",
            "errors.required",
            f"weekly_periods must be a list of 1 to {MAX_WEEKLY_PERIODS} periods",
        )
        return None
    periods, ok = [], True
    for i, item in enumerate(value):
        path = f"weekly_periods[{i}]"
        item = item if isinstance(item, dict) else {}
        day = item.get("day")
        start, end = clock_minutes(item.get("start_time")), clock_minutes(item.get("end_time"))
        if day not in DAYS:
            errors.add(f"{path}.day", "errors.invalid", "day must be a weekday such as monday")
            ok = False
        if start is None or start == 1440:
            errors.add(f"{path}.start_time", "errors.invalid_time", "start_time must be HH:MM")
            ok = False
        if end is None:
            errors.add(f"{path}.end_time", "errors.invalid_time", "end_time must be HH:MM")
            ok = False
        elif start is not None and end <= start:
            errors.add(
                f"{path}.end_time", "errors.must_be_after_start", "end_time after start_time"
            )
            ok = False
        if ok:
            periods.append(
                {"day": day, "start_time": item["start_time"], "end_time": item["end_time"]}
            )
    return tuple(periods) if ok else None


def parse_rule(body) -> RuleContent:
    """POST /v1/availability_rules; raises CronofyValidationError naming every bad field.
    Whether calendar_ids are the account's is the service's question."""
    body = require_object(body)
    errors = FieldErrors()
    rule_id = parse_id(errors, body, "availability_rule_id")
    tzid = body.get("tzid")
    if not isinstance(tzid, str) or tzid not in known_zones():
        errors.add("tzid", "errors.invalid_tzid", "tzid must be an IANA time zone id")
    calendar_ids = parse_ids(errors, body.get("calendar_ids"), "calendar_ids") or ()
    weekly = _weekly_periods(errors, body.get("weekly_periods"))
    errors.raise_any()
    return RuleContent(rule_id, tzid, calendar_ids, weekly)


def parse_available_period(body) -> PeriodContent:
    """POST /v1/available_periods."""
    body = require_object(body)
    errors = FieldErrors()
    period_id = parse_id(errors, body, "available_period_id")
    start = parse_instant(errors, body.get("start"), "start")
    end = parse_instant(errors, body.get("end"), "end")
    if start is not None and end is not None and end <= start:
        errors.add("end", "errors.must_be_after_start", "end must be after start")
    errors.raise_any()
    return PeriodContent(period_id, start, end)


def render_rule(rule) -> dict:
    return {
        "availability_rule_id": rule.rule_id,
        "tzid": rule.tzid,
        "calendar_ids": list(rule.calendar_ids),
        "weekly_periods": list(rule.weekly_periods),
    }


def render_available_period(period) -> dict:
    return {
        "available_period_id": period.period_id,
        "start": format_utc(period.start),
        "end": format_utc(period.end),
    }
