"""The body of POST /v1/availability as plain values (docs/api.md, Availability).

`parse_availability` reads a decoded JSON body and returns an `AvailabilityRequest`, or raises
`CronofyValidationError` (422) naming every bad field at once, with paths such as
`participants[0].members[1].sub`. Nothing here touches the database: whether a sub or a
calendar id exists is the query layer's question.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from accounts.rest import CronofyValidationError
from calendars.availability.engine import FORMATS, OVERLAPPING_SLOTS, PERIODS
from calendars.parsing import parse_time
from calendars.writes import MAX_CALENDAR_IDS, TIME_MAX, FieldErrors, require_object

# Cronofy's limits, where it documents them; ours where it does not.
MAX_DURATION_MINUTES = 1440  # a meeting of at most a day
MAX_BUFFER_MINUTES = 1440
START_INTERVALS = (5, 10, 15, 20, 30, 60)
MAX_QUERY_PERIODS = 50
MAX_QUERY_SLOTS = 50
MAX_QUERY_SPAN = timedelta(days=35)  # first start to last end
MAX_GROUPS = 10
MAX_MEMBERS = 50  # in all groups together
MAX_RESULTS = 512
DEFAULT_SLOT_INTERVAL = 30  # start_interval of the slot formats when none is given
MAX_ID = 255


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class MemberRequest:
    sub: str
    calendar_ids: tuple[str, ...] | None = None
    available_periods: tuple[Period, ...] | None = None
    managed_availability: bool = False
    availability_rule_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class GroupRequest:
    members: tuple[MemberRequest, ...]
    required: int  # a count; "all" is len(members)


@dataclass(frozen=True)
class AvailabilityRequest:
    groups: tuple[GroupRequest, ...]
    duration: int  # minutes
    query_periods: tuple[Period, ...]
    query_slots: tuple[datetime, ...] | None = None
    start_interval: int | None = None
    buffer_before: int = 0
    buffer_after: int = 0
    response_format: str = PERIODS
    max_results: int = MAX_RESULTS
    group_paths: tuple[str, ...] | None = None  # where each group is in the body

    @property
    def member_paths(self) -> list[tuple[str, MemberRequest]]:
        """(path for errors, member) of every member as the request lists them."""
        paths = self.group_paths or [f"participants[{g}]" for g in range(len(self.groups))]
        return [
            (f"{paths[g]}.members[{m}]", member)
            for g, group in enumerate(self.groups)
            for m, member in enumerate(group.members)
        ]


def _integer(errors: FieldErrors, value, field: str, *, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(field, "errors.must_be_integer", f"{field} must be a whole number")
        return None
    if not low <= value <= high:
        errors.add(field, "errors.out_of_range", f"{field} must be from {low} to {high}")
        return None
    return value


def _minutes(errors: FieldErrors, value, field: str, *, low: int, high: int) -> int | None:
    """`{"minutes": n}` (or a bare n, as pycronofy also sends) within [low, high]."""
    if isinstance(value, dict):
        return _integer(errors, value.get("minutes"), f"{field}.minutes", low=low, high=high)
    return _integer(errors, value, field, low=low, high=high)


def parse_instant(errors: FieldErrors, value, field: str) -> datetime | None:
    if not isinstance(value, str) or len(value) > TIME_MAX:
        errors.add(
            field, "errors.invalid_time", f"{field} must be a time such as 2026-12-01T09:00:00Z"
        )
        return None
    try:
        parsed = parse_time(value, field)
    except CronofyValidationError as exc:
        errors.merge(exc)
        return None
    if parsed.instant is None:
        errors.add(field, "errors.invalid_time", f"{field} must be a time, not a date")
        return None
    return parsed.instant


def _list(errors: FieldErrors, value, field: str, *, max_items: int, required=True) -> list | None:
    if value is None and not required:
        return None
    if not isinstance(value, list) or not value:
        errors.add(field, "errors.required", f"{field} must be a non-empty list")
        return None
    if len(value) > max_items:
        errors.add(field, "errors.too_many", f"{field} may hold at most {max_items} entries")
        return None
    return value


def parse_periods(errors: FieldErrors, value, field: str, *, required=True):
    """A list of {start, end}: each end after its start, no two overlapping, all of them
    within MAX_QUERY_SPAN."""
    items = _list(errors, value, field, max_items=MAX_QUERY_PERIODS, required=required)
    if items is None:
        return None
    periods, ok = [], True
    for i, item in enumerate(items):
        path = f"{field}[{i}]"
        if not isinstance(item, dict):
            errors.add(path, "errors.invalid", f"{path} must be an object with start and end")
            ok = False
            continue
        start = parse_instant(errors, item.get("start"), f"{path}.start")
        end = parse_instant(errors, item.get("end"), f"{path}.end")
        if start is None or end is None:
            ok = False
        elif end <= start:
            errors.add(
                f"{path}.end", "errors.must_be_after_start", f"{path}.end must be after start"
            )
            ok = False
        else:
            periods.append(Period(start, end))
    if not ok:
        return None
    ordered = sorted(periods, key=lambda p: p.start)
    if any(b.start < a.end for a, b in zip(ordered, ordered[1:], strict=False)):
        errors.add(field, "errors.overlapping_periods", f"{field} must not overlap each other")
        return None
    if ordered[-1].end - ordered[0].start > MAX_QUERY_SPAN:
        errors.add(field, "errors.too_long", f"{field} must lie within {MAX_QUERY_SPAN.days} days")
        return None
    return tuple(ordered)


def parse_ids(errors: FieldErrors, value, field: str) -> tuple[str, ...] | None:
    items = _list(errors, value, field, max_items=MAX_CALENDAR_IDS, required=False)
    if items is None:
        return None
    if not all(isinstance(i, str) and 0 < len(i) <= MAX_ID for i in items):
        errors.add(field, "errors.invalid", f"{field} must be a list of ids")
        return None
    return tuple(dict.fromkeys(items))


def _member(errors: FieldErrors, value, path: str) -> MemberRequest | None:
    if not isinstance(value, dict):  # pycronofy turns a bare sub into {"sub": ...} itself
        errors.add(path, "errors.invalid", f"{path} must be an object with a sub")
        return None
    sub = value.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= MAX_ID:
        errors.add(f"{path}.sub", "errors.required", f"{path}.sub must be an account id")
        return None
    managed = value.get("managed_availability", False)
    if not isinstance(managed, bool):
        errors.add(
            f"{path}.managed_availability", "errors.must_be_boolean", "must be true or false"
        )
        managed = False
    return MemberRequest(
        sub=sub,
        calendar_ids=parse_ids(errors, value.get("calendar_ids"), f"{path}.calendar_ids"),
        available_periods=parse_periods(
            errors, value.get("available_periods"), f"{path}.available_periods", required=False
        ),
        managed_availability=managed,
        availability_rule_ids=parse_ids(
            errors, value.get("availability_rule_ids"), f"{path}.availability_rule_ids"
        ),
    )


def _group(errors: FieldErrors, value, path: str) -> GroupRequest | None:
    if not isinstance(value, dict):
        errors.add(path, "errors.invalid", f"{path} must be an object with members")
        return None
    items = _list(errors, value.get("members"), f"{path}.members", max_items=MAX_MEMBERS)
    if items is None:
        return None
    members = [_member(errors, item, f"{path}.members[{i}]") for i, item in enumerate(items)]
    subs = [m.sub for m in members if m is not None]
    if len(set(subs)) != len(subs):
        errors.add(
            f"{path}.members", "errors.duplicate_sub", "a member may be listed once per group"
        )
    required = value.get("required", "all")
    if required == "all":
        required = len(items)
    elif isinstance(required, bool) or not isinstance(required, int):
        errors.add(f"{path}.required", "errors.invalid", 'required must be "all" or a number')
        required = None
    elif not 1 <= required <= len(items):
        errors.add(f"{path}.required", "errors.out_of_range", f"required must be 1 to {len(items)}")
        required = None
    if None in members or required is None:
        return None
    return GroupRequest(members=tuple(members), required=required)


def _buffer(errors: FieldErrors, value, field: str) -> int:
    """One side of `buffer`: the larger of `minutes` and `minimum.minutes` (pycronofy may send
    either); `maximum` is validated, and only bounds a sequence's gaps."""
    if value is None:
        return 0
    if not isinstance(value, dict):
        return _minutes(errors, value, field, low=0, high=MAX_BUFFER_MINUTES) or 0
    found = [0]
    for key, path in (("minutes", f"{field}.minutes"), ("minimum", f"{field}.minimum")):
        if value.get(key) is not None:
            found.append(_minutes(errors, value[key], path, low=0, high=MAX_BUFFER_MINUTES) or 0)
    if value.get("maximum") is not None:
        _minutes(errors, value["maximum"], f"{field}.maximum", low=0, high=MAX_BUFFER_MINUTES)
    return max(found)


def parse_common(errors: FieldErrors, body: dict, prefix: str = ""):
    """participants, required_duration, start_interval and buffer: shared with each step of a
    sequenced query. Returns (groups, duration, start_interval, before, after)."""
    groups = None
    items = _list(errors, body.get("participants"), f"{prefix}participants", max_items=MAX_GROUPS)
    if items is not None:
        parsed = [_group(errors, g, f"{prefix}participants[{i}]") for i, g in enumerate(items)]
        if None not in parsed:
            groups = tuple(parsed)
            if sum(len(g.members) for g in groups) > MAX_MEMBERS:
                errors.add(
                    f"{prefix}participants", "errors.too_many", f"at most {MAX_MEMBERS} members"
                )
    duration = None
    if body.get("required_duration") is None:
        errors.add(
            f"{prefix}required_duration", "errors.required", "required_duration must be given"
        )
    else:
        duration = _minutes(
            errors,
            body["required_duration"],
            f"{prefix}required_duration",
            low=1,
            high=MAX_DURATION_MINUTES,
        )
    interval = None
    raw_interval = body.get("start_interval")
    if raw_interval is not None:
        interval = _minutes(errors, raw_interval, f"{prefix}start_interval", low=1, high=1440)
        if interval is not None and interval not in START_INTERVALS:
            allowed = ", ".join(map(str, START_INTERVALS))
            nested = ".minutes" if isinstance(raw_interval, dict) else ""
            errors.add(
                f"{prefix}start_interval{nested}",
                "errors.invalid",
                f"start_interval must be one of {allowed}",
            )
            interval = None
    buffer = body.get("buffer") or {}
    before = after = 0
    if not isinstance(buffer, dict):
        errors.add(f"{prefix}buffer", "errors.invalid", "buffer must be an object")
    else:
        before = _buffer(errors, buffer.get("before"), f"{prefix}buffer.before")
        after = _buffer(errors, buffer.get("after"), f"{prefix}buffer.after")
    return groups, duration, interval, before, after


def _query_slots(errors: FieldErrors, value) -> tuple[datetime, ...] | None:
    items = _list(errors, value, "query_slots", max_items=MAX_QUERY_SLOTS)
    if items is None:
        return None
    starts = []
    for i, item in enumerate(items):
        start = parse_instant(
            errors, item.get("start") if isinstance(item, dict) else None, f"query_slots[{i}].start"
        )
        if start is not None:
            starts.append(start)
    if len(starts) != len(items):
        return None
    if max(starts) - min(starts) > MAX_QUERY_SPAN:
        errors.add(
            "query_slots",
            "errors.too_long",
            f"query_slots must lie within {MAX_QUERY_SPAN.days} days",
        )
        return None
    return tuple(sorted(set(starts)))


def parse_availability(body) -> AvailabilityRequest:
    """The body of POST /v1/availability (see the module docstring)."""
    body = require_object(body)
    errors = FieldErrors()
    groups, duration, interval, before, after = parse_common(errors, body)

    periods_key = "query_periods" if body.get("query_periods") is not None else "available_periods"
    has_periods = body.get(periods_key) is not None
    slots = periods = None
    if has_periods and body.get("query_slots") is not None:
        errors.add("query_slots", "errors.invalid", f"give {periods_key} or query_slots, not both")
    elif body.get("query_slots") is not None:
        slots = _query_slots(errors, body["query_slots"])
    else:
        periods = parse_periods(errors, body.get(periods_key), periods_key)

    response_format = body.get("response_format") or PERIODS
    if response_format not in FORMATS:
        errors.add(
            "response_format",
            "errors.invalid",
            f"response_format must be one of {', '.join(FORMATS)}",
        )
    max_results = MAX_RESULTS
    if body.get("max_results") is not None:
        max_results = _integer(errors, body["max_results"], "max_results", low=1, high=MAX_RESULTS)
    errors.raise_any()
    if slots is not None:
        periods = tuple(Period(s, s + timedelta(minutes=duration)) for s in slots)
    if interval is None and response_format != PERIODS and slots is None:
        interval = DEFAULT_SLOT_INTERVAL
    return AvailabilityRequest(
        groups=groups,
        duration=duration,
        query_periods=periods,
        query_slots=slots,
        start_interval=interval,
        buffer_before=before,
        buffer_after=after,
        response_format=response_format,
        max_results=max_results,
    )


MAX_STEPS = 10
MAX_SEQUENCES = 20


@dataclass(frozen=True)
class StepRequest:
    sequence_id: str
    request: AvailabilityRequest  # the step's groups, duration, windows, buffers and grid
    min_gap: int  # buffer.before.minimum: minutes from the previous step's end
    max_gap: int | None  # buffer.before.maximum


def _gap(errors: FieldErrors, buffer, prefix: str, key: str) -> int | None:
    before = buffer.get("before") if isinstance(buffer, dict) else None
    value = before.get(key) if isinstance(before, dict) else None
    if value is None:
        return None
    return _minutes(errors, value, f"{prefix}buffer.before.{key}", low=0, high=MAX_BUFFER_MINUTES)


def _step(errors: FieldErrors, item, k: int, shared_periods) -> tuple[int, StepRequest] | None:
    prefix = f"sequence[{k}]."
    if not isinstance(item, dict):
        errors.add(f"sequence[{k}]", "errors.invalid", "each step must be an object")
        return None
    sequence_id = item.get("sequence_id")
    if isinstance(sequence_id, int) and not isinstance(sequence_id, bool):
        sequence_id = str(sequence_id)
    if not isinstance(sequence_id, str) or not 0 < len(sequence_id) <= MAX_ID:
        errors.add(f"{prefix}sequence_id", "errors.required", "sequence_id must be given")
    ordinal = item.get("ordinal")
    if isinstance(ordinal, bool) or not isinstance(ordinal, int):
        errors.add(f"{prefix}ordinal", "errors.must_be_integer", "ordinal must be a number")
    groups, duration, interval, before, after = parse_common(errors, item, prefix)
    periods = shared_periods
    if item.get("available_periods") is not None:
        periods = parse_periods(errors, item["available_periods"], f"{prefix}available_periods")
    elif shared_periods is None:
        errors.add(f"{prefix}available_periods", "errors.required", "give available_periods")
    min_gap = _gap(errors, item.get("buffer"), prefix, "minimum") or 0
    max_gap = _gap(errors, item.get("buffer"), prefix, "maximum")
    if max_gap is not None and max_gap < min_gap:
        errors.add(f"{prefix}buffer.before.maximum", "errors.out_of_range", "below the minimum")
    if None in (groups, duration, periods) or errors.errors:
        return None
    request = AvailabilityRequest(
        groups=groups,
        duration=duration,
        query_periods=periods,
        start_interval=interval or DEFAULT_SLOT_INTERVAL,
        buffer_before=before,
        buffer_after=after,
        response_format=OVERLAPPING_SLOTS,
        group_paths=tuple(f"{prefix}participants[{g}]" for g in range(len(groups))),
    )
    return (ordinal, StepRequest(sequence_id, request, min_gap, max_gap))


def parse_sequenced(body) -> tuple[StepRequest, ...]:
    """The body of POST /v1/sequenced_availability: steps in ordinal order."""
    body = require_object(body)
    errors = FieldErrors()
    shared = None
    if body.get("available_periods") is not None:
        shared = parse_periods(errors, body["available_periods"], "available_periods")
    items = _list(errors, body.get("sequence"), "sequence", max_items=MAX_STEPS)
    steps = []
    for k, item in enumerate(items or []):
        step = _step(errors, item, k, shared)
        if step is not None:
            steps.append(step)
    errors.raise_any()
    ordered = [step for _, step in sorted(steps, key=lambda pair: pair[0])]
    every = [p for step in ordered for p in step.request.query_periods]
    if max(p.end for p in every) - min(p.start for p in every) > MAX_QUERY_SPAN:
        errors.add("available_periods", "errors.too_long", "the periods span more than 35 days")
    errors.raise_any()
    return tuple(ordered)
