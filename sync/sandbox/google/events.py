"""Google Event resources: validation, rendering, and recurring-series instances.

Stored events keep the start/end a client sent (a ``dateTime`` always with its offset, plus the
``timeZone`` it named); rendering writes date-times in the calendar's zone (or the request's
``timeZone`` parameter), as Google does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo

from sync.sandbox.google import errors
from sync.sandbox.google.model import EVENT_COLORS
from sync.sandbox.google.recurrence import RecurrenceError, Series
from sync.sandbox.google.util import (
    b64url,
    epoch_of,
    format_dt,
    get_zone,
    parse_date,
    parse_naive_or_aware,
    utc_stamp,
    zone_is_known,
)

EVENT_TYPES = ("default", "outOfOffice", "focusTime", "workingLocation", "birthday", "fromGmail")
RESPONSE_STATUSES = ("needsAction", "declined", "tentative", "accepted")
STATUSES = ("confirmed", "tentative", "cancelled")

# What a client may write (anything else in a body is ignored, as the v3 API does).
WRITABLE = {
    "summary", "description", "location", "colorId", "start", "end", "endTimeUnspecified",
    "recurrence", "transparency", "visibility", "attendees", "attendeesOmitted",
    "extendedProperties", "gadget", "anyoneCanAddSelf", "guestsCanInviteOthers",
    "guestsCanModify", "guestsCanSeeOtherGuests", "privateCopy", "locked", "reminders",
    "source", "attachments", "eventType", "status", "sequence", "conferenceData",
    "outOfOfficeProperties", "focusTimeProperties", "workingLocationProperties",
    "birthdayProperties",
}  # fmt: skip
# Objects a PATCH replaces instead of merging (a start switching from dateTime to date).
REPLACED_ON_PATCH = {"start", "end", "originalStartTime"}
# Time-related fields: a change bumps `sequence`.
SEQUENCE_FIELDS = ("start", "end", "recurrence")

FIELD_ORDER = [
    "kind", "etag", "id", "status", "htmlLink", "created", "updated", "summary",
    "description", "location", "colorId", "creator", "organizer", "start", "end",
    "endTimeUnspecified", "recurrence", "recurringEventId", "originalStartTime",
    "transparency", "visibility", "iCalUID", "sequence", "attendees", "attendeesOmitted",
    "extendedProperties", "hangoutLink", "conferenceData", "gadget", "anyoneCanAddSelf",
    "guestsCanInviteOthers", "guestsCanModify", "guestsCanSeeOtherGuests", "privateCopy",
    "locked", "reminders", "source", "workingLocationProperties", "outOfOfficeProperties",
    "focusTimeProperties", "birthdayProperties", "attachments", "eventType",
]  # fmt: skip
TIME_FIELDS = ("start", "end", "originalStartTime")


# --- times ---
def normalize_time(value, which: str) -> dict:
    """Validate one start/end/originalStartTime object; a dateTime gets an explicit offset."""
    if not isinstance(value, dict):
        raise errors.invalid(f"Invalid {which} time.")
    zone_name = value.get("timeZone")
    if zone_name is not None and (not isinstance(zone_name, str) or not zone_is_known(zone_name)):
        raise errors.invalid(f"Invalid time zone definition for {which} time.")
    has_date = value.get("date") is not None
    has_datetime = value.get("dateTime") is not None
    if not has_date and not has_datetime:
        raise errors.required(f"Missing {which} time.")
    if has_date and has_datetime:
        raise errors.invalid(f"Invalid {which} time.")
    if has_date:
        try:
            day = parse_date(value["date"])
        except ValueError as exc:
            raise errors.invalid(f"Invalid {which} time.") from exc
        return {"date": day.isoformat()}
    try:
        moment = parse_naive_or_aware(value["dateTime"])
    except ValueError as exc:
        raise errors.invalid(f"Invalid {which} time.") from exc
    if moment.tzinfo is None:
        zone = get_zone(zone_name)
        if zone is None:
            raise errors.required(f"Missing time zone definition for {which} time.")
        moment = moment.replace(tzinfo=zone)
    result = {"dateTime": format_dt(moment)}
    if zone_name:
        result["timeZone"] = zone_name
    return result


def time_value(value: dict) -> date | datetime:
    """A stored (normalized) time object -> date or aware datetime."""
    if "date" in value:
        return parse_date(value["date"])
    return parse_naive_or_aware(value["dateTime"])


def render_time(value: dict, zone: tzinfo) -> dict:
    if "date" in value:
        return dict(value)
    moment = parse_naive_or_aware(value["dateTime"]).astimezone(zone)
    rendered = {"dateTime": format_dt(moment)}
    if value.get("timeZone"):
        rendered["timeZone"] = value["timeZone"]
    return rendered


def event_zone(data: dict, calendar_zone: tzinfo) -> tzinfo:
    """The zone a series is expanded in: start.timeZone, else the start's offset."""
    start = data.get("start") or {}
    zone = get_zone(start.get("timeZone"))
    if zone is not None:
        return zone
    if "dateTime" in start:
        return parse_naive_or_aware(start["dateTime"]).tzinfo or calendar_zone
    return calendar_zone


def span(data: dict, calendar_zone: tzinfo) -> tuple[float, float]:
    """(start, end) of a non-expanded event in seconds since the epoch."""
    start = time_value(data["start"])
    end = time_value(data["end"]) if data.get("end") else start
    return epoch_of(start, calendar_zone), epoch_of(end, calendar_zone)


# --- validation ---
def validate(data: dict, *, is_instance: bool) -> None:
    """Check (and normalize in place) an event about to be stored; raises ApiError."""
    if data.get("start") is None:
        raise errors.required("Missing start time.")
    if data.get("end") is None:
        raise errors.required("Missing end time.")
    data["start"] = normalize_time(data["start"], "start")
    data["end"] = normalize_time(data["end"], "end")
    start, end = time_value(data["start"]), time_value(data["end"])
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise errors.bad_request(
            "Start and end times must either both be date or both be dateTime."
        )
    if (end <= start) if not isinstance(start, datetime) else (end < start):
        raise errors.time_range_empty(None)
    if data.get("originalStartTime") is not None:
        data["originalStartTime"] = normalize_time(data["originalStartTime"], "originalStart")
    _check_choice(data, "status", STATUSES)
    _check_choice(data, "transparency", ("opaque", "transparent"))
    _check_choice(data, "visibility", ("default", "public", "private", "confidential"))
    _check_choice(data, "eventType", EVENT_TYPES)
    if data.get("colorId") is not None and str(data["colorId"]) not in EVENT_COLORS:
        raise errors.invalid("Invalid Value")
    sequence = data.get("sequence")
    if sequence is not None and (not isinstance(sequence, int) or sequence < 0):
        raise errors.invalid("Invalid sequence value.")
    recurrence = data.get("recurrence")
    if recurrence:
        if is_instance:
            raise errors.invalid("Invalid recurrence rule.")
        if not isinstance(recurrence, list):
            raise errors.invalid("Invalid recurrence rule.")
        if isinstance(start, datetime) and not data["start"].get("timeZone"):
            raise errors.required("Missing time zone definition for start time.")
        try:
            series_of(data, UTC)
        except RecurrenceError as exc:
            raise errors.invalid("Invalid recurrence rule.") from exc
    elif "recurrence" in data:
        data.pop("recurrence")
    attendees = data.get("attendees")
    if attendees is not None:
        if not isinstance(attendees, list):
            raise errors.invalid("Invalid attendee.")
        for attendee in attendees:
            if not isinstance(attendee, dict) or not attendee.get("email"):
                raise errors.required("Missing attendee email.")
            status = attendee.setdefault("responseStatus", "needsAction")
            if status not in RESPONSE_STATUSES:
                raise errors.invalid("Invalid attendee response status.")
            for computed in ("self", "organizer"):
                attendee.pop(computed, None)
    reminders = data.get("reminders")
    if reminders is not None:
        if not isinstance(reminders, dict):
            raise errors.invalid("Invalid reminder.")
        overrides = reminders.get("overrides") or []
        if reminders.get("useDefault") and overrides:
            raise errors.bad_request(
                "Cannot specify both default reminders and overrides at the same time."
            )
        for override in overrides:
            minutes = override.get("minutes") if isinstance(override, dict) else None
            if (
                not isinstance(override, dict)
                or override.get("method") not in ("email", "popup")
                or not isinstance(minutes, int)
                or not 0 <= minutes <= 40320
            ):
                raise errors.invalid("Invalid reminder.")
        reminders.setdefault("useDefault", False)


def _check_choice(data: dict, name: str, choices) -> None:
    if data.get(name) is not None and data[name] not in choices:
        raise errors.invalid("Invalid Value")


def merge_patch(base: dict, patch: dict) -> dict:
    """Patch semantics: objects merge recursively, lists replace, null clears."""
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif (
            isinstance(value, dict)
            and isinstance(result.get(key), dict)
            and key not in REPLACED_ON_PATCH
        ):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def merge_attendees(current: list | None, given: list) -> list:
    """`attendeesOmitted` on a write: each attendee given updates the one with its e-mail
    (or joins); the attendees not given are kept as they are."""
    merged = copy.deepcopy(current or [])
    by_email = {(a.get("email") or "").lower(): a for a in merged}
    for attendee in given:
        email = (attendee.get("email") or "").lower() if isinstance(attendee, dict) else ""
        if email in by_email:
            by_email[email].update(copy.deepcopy(attendee))
        elif email:
            merged.append(copy.deepcopy(attendee))
    return merged


def writable(body: dict) -> dict:
    return {k: copy.deepcopy(v) for k, v in body.items() if k in WRITABLE}


# --- rendering ---
def html_link(event_id: str, calendar_id: str) -> str:
    eid = b64url(f"{event_id} {calendar_id}".encode())
    return f"https://www.google.com/calendar/event?eid={eid}"


def render(
    data: dict,
    *,
    etag: str,
    calendar_id: str,
    zone: tzinfo,
    minimal: bool = False,
    access_role: str = "owner",
) -> dict:
    """The Event resource as Google returns it, from the point of view of `calendar_id`."""
    if minimal:  # a cancelled item in a listing: only what identifies it
        item = {"kind": "calendar#event", "etag": etag, "id": data["id"], "status": "cancelled"}
        if data.get("recurringEventId"):
            item["recurringEventId"] = data["recurringEventId"]
            item["originalStartTime"] = render_time(data["originalStartTime"], zone)
        return item
    source = copy.deepcopy(data)
    source["kind"] = "calendar#event"
    source["etag"] = etag
    source["htmlLink"] = html_link(data["id"], calendar_id)
    for name in TIME_FIELDS:
        if source.get(name):
            source[name] = render_time(source[name], zone)
    organizer_email = (source.get("organizer") or {}).get("email")
    for person in ("creator", "organizer"):
        if isinstance(source.get(person), dict):
            source[person].pop("self", None)
            if source[person].get("email") == calendar_id:
                source[person]["self"] = True
    for attendee in source.get("attendees") or []:
        if attendee.get("email") == organizer_email:
            attendee["organizer"] = True
        if attendee.get("email") == calendar_id:
            attendee["self"] = True
    if access_role == "freeBusyReader":
        keep = (
            "kind",
            "etag",
            "id",
            "status",
            "start",
            "end",
            "recurringEventId",
            "originalStartTime",
        )
        source = {k: v for k, v in source.items() if k in keep}
    ordered = {name: source.pop(name) for name in FIELD_ORDER if name in source}
    ordered.update(source)
    return ordered


# --- recurring series ---
def series_of(data: dict, calendar_zone: tzinfo, engine: str | None = None) -> Series:
    zone = event_zone(data, calendar_zone)
    first = time_value(data["start"])
    all_day = not isinstance(first, datetime)
    if all_day:
        naive = datetime(first.year, first.month, first.day)
    else:
        naive = first.astimezone(zone).replace(tzinfo=None)
    return Series(list(data.get("recurrence") or []), naive, zone, all_day=all_day, engine=engine)


def instance_id(master_id: str, start: date | datetime) -> str:
    if isinstance(start, datetime):
        return f"{master_id}_{utc_stamp(start)}"
    return f"{master_id}_{start.strftime('%Y%m%d')}"


def split_instance_id(event_id: str) -> tuple[str, str] | None:
    """'<master>_<stamp>' -> (master, stamp), when it has that form."""
    master, sep, stamp = event_id.rpartition("_")
    if not sep or not master:
        return None
    if len(stamp) == 8 and stamp.isdigit():
        return master, stamp
    if len(stamp) == 16 and stamp[8] == "T" and stamp.endswith("Z"):
        return master, stamp
    return None


def stamp_of(value: date | datetime) -> str:
    if isinstance(value, datetime):
        return utc_stamp(value)
    return value.strftime("%Y%m%d")


def occurrences(
    master: dict, calendar_zone: tzinfo, bound: float, engine: str | None = None
) -> Iterator[tuple[date | datetime, float, float]]:
    """(original start, start, end in epoch seconds) of each occurrence starting no later
    than `bound`; cheap (no instance is built)."""
    series = series_of(master, calendar_zone, engine)
    zone = series.zone
    duration = time_value(master["end"]) - time_value(master["start"])
    limit = datetime.fromtimestamp(bound, zone).replace(tzinfo=None)
    for naive in series.occurrences(limit):
        if series.all_day:
            day = naive.date()
            yield day, epoch_of(day, calendar_zone), epoch_of(day + duration, calendar_zone)
        else:
            moment = naive.replace(tzinfo=zone)
            yield moment, moment.timestamp(), moment.timestamp() + duration.total_seconds()


def instances(
    master: dict,
    calendar_zone: tzinfo,
    bound: float,
    engine: str | None = None,
    *,
    ending_after: float | None = None,
) -> Iterator[tuple[date | datetime, dict]]:
    """(original start, instance data) of each occurrence starting no later than `bound`
    (and, with `ending_after`, ending after it)."""
    duration = time_value(master["end"]) - time_value(master["start"])
    for start, _, end in occurrences(master, calendar_zone, bound, engine):
        if ending_after is None or end > ending_after:
            yield start, make_instance(master, start, duration)


def make_instance(master: dict, start: date | datetime, duration: timedelta) -> dict:
    data = copy.deepcopy(master)
    data.pop("recurrence", None)
    data["id"] = instance_id(master["id"], start)
    data["recurringEventId"] = master["id"]
    if isinstance(start, datetime):
        end = (start.astimezone(UTC) + duration).astimezone(start.tzinfo)
        data["start"] = {"dateTime": format_dt(start)}
        data["end"] = {"dateTime": format_dt(end)}
        for name in ("start", "end"):
            if master.get(name, {}).get("timeZone"):
                data[name]["timeZone"] = master[name]["timeZone"]
        data["originalStartTime"] = dict(data["start"])
    else:
        data["start"] = {"date": start.isoformat()}
        data["end"] = {"date": (start + duration).isoformat()}
        data["originalStartTime"] = {"date": start.isoformat()}
    return data


def find_instance(
    master: dict, stamp: str, calendar_zone: tzinfo, engine: str | None = None
) -> dict | None:
    """The virtual instance `<master>_<stamp>` if the series has that occurrence."""
    try:
        if len(stamp) == 8:
            target = datetime.strptime(stamp, "%Y%m%d").replace(tzinfo=calendar_zone)
        else:
            target = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    bound = target.timestamp() + 2 * 86400  # all-day dates are local: allow a day either side
    for start, _, _ in occurrences(master, calendar_zone, bound, engine):
        if stamp_of(start) == stamp:
            duration = time_value(master["end"]) - time_value(master["start"])
            return make_instance(master, start, duration)
    return None
