"""Graph event resources: validation, recurrence, calendar views and rendering.

Stored events keep Graph's writable fields as a client sent them (``start``/``end`` as
``dateTimeTimeZone`` in the zone named, Windows or IANA), normalized. A series master's
``recurrence`` (patternedRecurrence) is turned into an RRULE and expanded by the Google
sandbox's recurrence engine; occurrences are never stored. An exception is stored under its
occurrence's id; a cancelled occurrence is a stamp in its master's ``cancelled`` set.
"""

from __future__ import annotations

import base64
import copy
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from sync.sandbox.google.recurrence import RecurrenceError, Series
from sync.sandbox.google.util import b64url, parse_naive_or_aware
from sync.sandbox.microsoft import errors, zones

NULL_TIME = "0001-01-01T00:00:00Z"
OCCURRENCE_PREFIX = "AAMkAGOc"
ICAL_PREFIX = "040000008200E00074C5B7101A82E008"

# What a client may write (a property Graph does not know is refused, as OData does).
WRITABLE = {
    "subject", "body", "start", "end", "isAllDay", "location", "locations", "showAs",
    "sensitivity", "importance", "isReminderOn", "reminderMinutesBeforeStart", "categories",
    "attendees", "recurrence", "isOnlineMeeting", "onlineMeetingProvider", "responseRequested",
    "allowNewTimeProposals", "hideAttendees", "transactionId",
}  # fmt: skip
# Computed or server-set properties: accepted in a body and ignored, as Graph does.
IGNORED = {
    "id", "@odata.etag", "@odata.type", "@odata.context", "changeKey", "createdDateTime",
    "lastModifiedDateTime", "bodyPreview", "iCalUId", "uid", "isOrganizer", "type",
    "seriesMasterId", "webLink", "onlineMeetingUrl", "originalStart", "originalStartTimeZone",
    "originalEndTimeZone", "hasAttachments", "isDraft", "occurrenceId", "organizer",
    "isCancelled", "responseStatus", "onlineMeeting", "singleValueExtendedProperties",
    "multiValueExtendedProperties", "extensions", "attachments",
}  # fmt: skip
# What only the control API may set (an invitation from someone else, a cancelled meeting).
CONTROL_ONLY = {"organizer", "isCancelled", "responseStatus", "onlineMeeting", "iCalUId"}

ENUMS = {
    "showAs": (
        "microsoft.graph.freeBusyStatus",
        ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown"),
    ),
    "sensitivity": (
        "microsoft.graph.sensitivity",
        ("normal", "personal", "private", "confidential"),
    ),
    "importance": ("microsoft.graph.importance", ("low", "normal", "high")),
    "onlineMeetingProvider": (
        "microsoft.graph.onlineMeetingProviderType",
        ("unknown", "teamsForBusiness", "skypeForBusiness", "skypeForConsumer"),
    ),
}
BOOLEANS = (
    "isAllDay",
    "isReminderOn",
    "isOnlineMeeting",
    "responseRequested",
    "allowNewTimeProposals",
    "hideAttendees",
    "isCancelled",
)
RESPONSES = ("none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded")
DAYS = {
    "sunday": "SU",
    "monday": "MO",
    "tuesday": "TU",
    "wednesday": "WE",
    "thursday": "TH",
    "friday": "FR",
    "saturday": "SA",
}
INDEXES = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
PATTERNS = {
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "absoluteMonthly": "MONTHLY",
    "relativeMonthly": "MONTHLY",
    "absoluteYearly": "YEARLY",
    "relativeYearly": "YEARLY",
}
RANGES = ("endDate", "noEnd", "numbered")

FIELD_ORDER = [
    "@odata.etag", "id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories",
    "transactionId", "originalStartTimeZone", "originalEndTimeZone", "iCalUId",
    "reminderMinutesBeforeStart", "isReminderOn", "hasAttachments", "subject", "bodyPreview",
    "importance", "sensitivity", "isAllDay", "isCancelled", "isOrganizer", "responseRequested",
    "seriesMasterId", "showAs", "type", "webLink", "onlineMeetingUrl", "isOnlineMeeting",
    "onlineMeetingProvider", "allowNewTimeProposals", "isDraft", "hideAttendees",
    "originalStart", "responseStatus", "body", "start", "end", "location", "locations",
    "recurrence", "attendees", "organizer", "onlineMeeting",
]  # fmt: skip


# --- times ---
def format_local(moment: datetime) -> str:
    """Graph's dateTime: wall clock, seven fractional digits, no offset."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond:06d}0"


def format_offset(epoch_or_moment, *, fraction: bool = True) -> str:
    """A DateTimeOffset in UTC: '2026-01-05T10:00:00.1234560Z' (or whole seconds)."""
    if isinstance(epoch_or_moment, datetime):
        moment = epoch_or_moment.astimezone(UTC)
    else:
        moment = datetime.fromtimestamp(epoch_or_moment, UTC)
    if not fraction:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond:06d}0Z"


def parse_offset(value: str) -> datetime:
    """A query's or body's date-time; no offset means UTC (as Graph reads startDateTime)."""
    if not isinstance(value, str) or "T" not in value.upper():
        raise ValueError(f"not a date-time: {value!r}")
    text = value.strip()
    if re.search(r"T\d\d:\d\d(:\d\d(\.\d+)?)? \d\d:?\d\d$", text):  # an unescaped '+'
        text = text[:-5].rstrip() + "+" + text[-5:].lstrip()
    moment = parse_naive_or_aware(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def normalize_time(value, which: str) -> dict:
    """Validate a dateTimeTimeZone; the dateTime is rewritten as Graph writes it."""
    if not isinstance(value, dict):
        raise errors.bad_literal(value, "microsoft.graph.dateTimeTimeZone")
    extra = set(value) - {"dateTime", "timeZone", "@odata.type"}
    if extra:
        raise errors.unknown_property(sorted(extra)[0], "microsoft.graph.dateTimeTimeZone")
    zone_name = value.get("timeZone") or "UTC"
    zone = zones.resolve(zone_name)
    if zone is None:
        raise errors.unsupported_zone(zone_name)
    try:
        moment = parse_naive_or_aware(value.get("dateTime"))
    except (ValueError, TypeError) as exc:
        raise errors.bad_literal(value.get("dateTime"), "Edm.DateTime") from exc
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone).replace(tzinfo=None)
    return {"dateTime": format_local(moment), "timeZone": zone_name}


def local_of(value: dict) -> datetime:
    return datetime.fromisoformat(value["dateTime"][:26])


def zone_of(value: dict) -> tzinfo:
    return zones.resolve(value.get("timeZone")) or UTC


def instant(value: dict) -> datetime:
    """A stored dateTimeTimeZone as an aware moment."""
    return local_of(value).replace(tzinfo=zone_of(value))


# --- validation ---
def _bool(body: dict, name: str) -> bool:
    if not isinstance(body[name], bool):
        raise errors.bad_literal(body[name], "Edm.Boolean")
    return body[name]


def _location(value) -> dict:
    if not isinstance(value, dict):
        raise errors.bad_literal(value, "microsoft.graph.location")
    display = value.get("displayName") or ""
    if not isinstance(display, str):
        raise errors.bad_literal(display, "Edm.String")
    location = {"displayName": display, "locationType": value.get("locationType") or "default"}
    if display:
        location["uniqueId"] = value.get("uniqueId") or display
        location["uniqueIdType"] = value.get("uniqueIdType") or "private"
    else:
        location["uniqueIdType"] = "unknown"
    for name in ("address", "coordinates"):
        if value.get(name) or not display:
            location[name] = copy.deepcopy(value.get(name) or {})
    return location


def _email_address(value, what: str) -> dict:
    address = (value or {}).get("emailAddress") if isinstance(value, dict) else None
    if not isinstance(address, dict) or not isinstance(address.get("address"), str):
        raise errors.invalid_request(f"{what} must have an emailAddress with an address.")
    return {"name": address.get("name") or address["address"], "address": address["address"]}


def _attendee(value, control: bool) -> dict:
    kind = value.get("type", "required") if isinstance(value, dict) else None
    if kind not in ("required", "optional", "resource"):
        raise errors.bad_literal(kind, "microsoft.graph.attendeeType")
    status = {"response": "none", "time": NULL_TIME}
    given = value.get("status")
    if control and isinstance(given, dict) and given.get("response") in RESPONSES:
        status = {"response": given["response"], "time": given.get("time") or NULL_TIME}
    return {"type": kind, "status": status, "emailAddress": _email_address(value, "An attendee")}


def _recurrence(value) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("pattern"), dict):
        raise errors.invalid_request("A recurrence must have a pattern and a range.")
    given, span = value["pattern"], value.get("range")
    if not isinstance(span, dict):
        raise errors.invalid_request("A recurrence must have a pattern and a range.")
    kind = given.get("type")
    if kind not in PATTERNS:
        raise errors.bad_literal(kind, "microsoft.graph.recurrencePatternType")
    interval = given.get("interval", 1)
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        raise errors.invalid_request("The recurrence pattern's interval must be at least 1.")
    days = given.get("daysOfWeek") or []
    if not isinstance(days, list) or any(d not in DAYS for d in days):
        raise errors.bad_literal(days, "microsoft.graph.dayOfWeek")
    if kind in ("weekly", "relativeMonthly", "relativeYearly") and not days:
        raise errors.invalid_request(f"A {kind} recurrence pattern needs daysOfWeek.")
    pattern = {
        "type": kind,
        "interval": interval,
        "month": given.get("month") or 0,
        "dayOfMonth": given.get("dayOfMonth") or 0,
        "daysOfWeek": list(days) if kind in ("weekly", "relativeMonthly", "relativeYearly") else [],
        "firstDayOfWeek": given.get("firstDayOfWeek") or "sunday",
        "index": given.get("index") or "first",
    }
    if pattern["firstDayOfWeek"] not in DAYS:
        raise errors.bad_literal(pattern["firstDayOfWeek"], "microsoft.graph.dayOfWeek")
    if pattern["index"] not in INDEXES:
        raise errors.bad_literal(pattern["index"], "microsoft.graph.weekIndex")
    if kind.startswith("absolute") and not 1 <= pattern["dayOfMonth"] <= 31:
        raise errors.invalid_request(f"An {kind} recurrence pattern needs dayOfMonth (1-31).")
    if kind.endswith("Yearly") and not 1 <= pattern["month"] <= 12:
        raise errors.invalid_request(f"A {kind} recurrence pattern needs month (1-12).")
    range_type = span.get("type")
    if range_type not in RANGES:
        raise errors.bad_literal(range_type, "microsoft.graph.recurrenceRangeType")
    normalized = {"type": range_type}
    for name in ("startDate", "endDate"):
        text = span.get(name)
        required = name == "startDate" or range_type == "endDate"
        if text is None and not required:
            normalized[name] = "0001-01-01"
            continue
        try:
            normalized[name] = date.fromisoformat(str(text)).isoformat()
        except ValueError as exc:
            raise errors.bad_literal(text, "Edm.Date") from exc
    count = span.get("numberOfOccurrences") or 0
    if range_type == "numbered" and (not isinstance(count, int) or count < 1):
        raise errors.invalid_request("A numbered recurrence range needs numberOfOccurrences.")
    zone_name = span.get("recurrenceTimeZone")
    if zone_name is not None and zones.resolve(zone_name) is None:
        raise errors.unsupported_zone(zone_name)
    normalized["recurrenceTimeZone"] = zone_name
    normalized["numberOfOccurrences"] = count if range_type == "numbered" else 0
    return {"pattern": pattern, "range": normalized}


def _body(value) -> dict:
    if not isinstance(value, dict):
        raise errors.bad_literal(value, "microsoft.graph.itemBody")
    kind = str(value.get("contentType") or "text").lower()
    if kind not in ("text", "html"):
        raise errors.bad_literal(value.get("contentType"), "microsoft.graph.bodyType")
    content = value.get("content") or ""
    if not isinstance(content, str):
        raise errors.bad_literal(content, "Edm.String")
    return {"contentType": kind, "content": content}


def changes_of(body: dict, *, control: bool = False) -> dict:
    """The writable properties of a POST/PATCH body, each validated and normalized."""
    if not isinstance(body, dict):
        raise errors.unparsable_body()
    changes: dict = {}
    allowed = WRITABLE | CONTROL_ONLY if control else WRITABLE
    for name, value in body.items():
        if name not in allowed:
            if name in IGNORED or name.startswith("@"):
                continue
            raise errors.unknown_property(name)
        if name in ("start", "end"):
            changes[name] = normalize_time(value, name)
        elif name == "body":
            changes[name] = _body(value)
        elif name == "location":
            changes[name] = _location(value if value is not None else {})
        elif name == "locations":
            if not isinstance(value, list):
                raise errors.bad_literal(value, "Collection(microsoft.graph.location)")
            changes[name] = [_location(item) for item in value]
        elif name == "attendees":
            if not isinstance(value, list):
                raise errors.bad_literal(value, "Collection(microsoft.graph.attendee)")
            changes[name] = [_attendee(item, control) for item in value]
        elif name == "recurrence":
            changes[name] = _recurrence(value)
        elif name == "categories":
            if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                raise errors.bad_literal(value, "Collection(Edm.String)")
            changes[name] = list(value)
        elif name in ENUMS:
            type_name, choices = ENUMS[name]
            if value not in choices:
                raise errors.bad_literal(value, type_name)
            changes[name] = value
        elif name in BOOLEANS:
            changes[name] = _bool(body, name)
        elif name == "reminderMinutesBeforeStart":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise errors.bad_literal(value, "Edm.Int32")
            changes[name] = value
        elif name == "organizer":
            changes[name] = {"emailAddress": _email_address(value, "The organizer")}
        elif name == "responseStatus":
            if not isinstance(value, dict) or value.get("response") not in RESPONSES:
                raise errors.bad_literal(value, "microsoft.graph.responseStatus")
            changes[name] = {"response": value["response"], "time": value.get("time") or NULL_TIME}
        elif name in ("subject", "transactionId", "iCalUId"):
            if value is not None and not isinstance(value, str):
                raise errors.bad_literal(value, "Edm.String")
            changes[name] = value if name != "subject" else value or ""
        else:  # onlineMeeting (control API)
            changes[name] = copy.deepcopy(value)
    if "location" in changes and "locations" not in changes:
        display = changes["location"]["displayName"]
        changes["locations"] = [changes["location"]] if display else []
    elif "locations" in changes and "location" not in changes:
        changes["location"] = (
            changes["locations"][0] if changes["locations"] else _location({"displayName": ""})
        )
    return changes


def defaults(owner_email: str, owner_name: str) -> dict:
    """A new event's properties before the client's are applied."""
    return {
        "subject": "",
        "body": {"contentType": "html", "content": ""},
        "isAllDay": False,
        "location": _location({}),
        "locations": [],
        "showAs": "busy",
        "sensitivity": "normal",
        "importance": "normal",
        "isReminderOn": True,
        "reminderMinutesBeforeStart": 15,
        "categories": [],
        "attendees": [],
        "recurrence": None,
        "isOnlineMeeting": False,
        "onlineMeetingProvider": "unknown",
        "onlineMeeting": None,
        "responseRequested": True,
        "allowNewTimeProposals": True,
        "hideAttendees": False,
        "transactionId": None,
        "isCancelled": False,
        "organizer": {"emailAddress": {"name": owner_name, "address": owner_email}},
    }


def check(data: dict, *, is_exception: bool) -> None:
    """Whole-event rules, once the changes are merged (raises GraphError)."""
    if not data.get("start") or not data.get("end"):
        raise errors.invalid_request("An event must have a start and an end.")
    start, end = instant(data["start"]), instant(data["end"])
    if end < start:
        raise errors.GraphError(
            400,
            "ErrorCalendarEndDateIsEarlierThanStartDate",
            "The end date occurs before the start date.",
        )
    if data.get("isAllDay"):
        local_start, local_end = local_of(data["start"]), local_of(data["end"])
        if local_start.time() != datetime.min.time() or local_end.time() != datetime.min.time():
            raise errors.invalid_request(
                "Your request can't be completed. If an event is all-day, its start and end "
                "must be at midnight."
            )
        if local_end <= local_start:
            raise errors.invalid_request("An all-day event must last at least one day.")
    if data.get("recurrence"):
        if is_exception:
            raise errors.invalid_request("An occurrence of a series cannot have a recurrence.")
        span = data["recurrence"]["range"]
        span["recurrenceTimeZone"] = span.get("recurrenceTimeZone") or data["start"]["timeZone"]
        try:
            next(iter(series_of(data).occurrences(datetime.max.replace(year=9000))), None)
        except RecurrenceError as exc:
            raise errors.invalid_request(f"The recurrence pattern is not valid: {exc}") from exc


# --- recurrence ---
def rrule(recurrence: dict) -> str:
    pattern, span = recurrence["pattern"], recurrence["range"]
    parts = [f"FREQ={PATTERNS[pattern['type']]}", f"INTERVAL={pattern['interval']}"]
    days = ",".join(DAYS[d] for d in pattern["daysOfWeek"])
    kind = pattern["type"]
    if kind == "weekly":
        parts += [f"BYDAY={days}", f"WKST={DAYS[pattern['firstDayOfWeek']]}"]
    if kind.endswith("Yearly"):
        parts.append(f"BYMONTH={pattern['month']}")
    if kind.startswith("absolute"):
        parts.append(f"BYMONTHDAY={pattern['dayOfMonth']}")
    if kind.startswith("relative"):
        parts += [f"BYDAY={days}", f"BYSETPOS={INDEXES[pattern['index']]}"]
    if span["type"] == "numbered":
        parts.append(f"COUNT={span['numberOfOccurrences']}")
    elif span["type"] == "endDate":
        parts.append("UNTIL=" + span["endDate"].replace("-", ""))
    return "RRULE:" + ";".join(parts)


def series_zone(data: dict) -> tzinfo:
    span = data["recurrence"]["range"]
    return zones.resolve(span.get("recurrenceTimeZone")) or zone_of(data["start"])


def series_of(data: dict) -> Series:
    """The master's occurrences as wall-clock starts in the series' zone."""
    zone = series_zone(data)
    all_day = bool(data.get("isAllDay"))
    first = local_of(data["start"]) if all_day else instant(data["start"]).astimezone(zone)
    first = first.replace(tzinfo=None)
    begins = date.fromisoformat(data["recurrence"]["range"]["startDate"])
    if begins > first.date():
        first = datetime.combine(begins, first.time())
    return Series([rrule(data["recurrence"])], first, zone, all_day=all_day)


def stamp_of(moment: datetime, all_day: bool) -> str:
    if all_day:
        return moment.strftime("%Y%m%d")
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def occurrences(data: dict, low: datetime, high: datetime) -> Iterator[tuple[datetime, datetime]]:
    """(start, end) of the master's occurrences overlapping [low, high)."""
    series = series_of(data)
    all_day = bool(data.get("isAllDay"))
    duration = instant(data["end"]) - instant(data["start"])
    local_zone = zone_of(data["start"]) if all_day else series.zone
    bound = high.astimezone(local_zone).replace(tzinfo=None) + timedelta(days=1)
    for naive in series.occurrences(bound):
        if all_day:
            days = (local_of(data["end"]) - local_of(data["start"])).days
            start = naive.replace(tzinfo=local_zone)
            end = (naive + timedelta(days=days)).replace(tzinfo=local_zone)
        else:
            start = naive.replace(tzinfo=local_zone)
            end = start + duration
        if start >= high:
            return
        if overlaps(start, end, low, high):
            yield start, end


def overlaps(start: datetime, end: datetime, low: datetime, high: datetime) -> bool:
    """calendarView's rule: the event occurs in or overlaps the window."""
    if start == end:
        return low <= start < high
    return start < high and end > low


def occurrence_id(master_id: str, stamp: str) -> str:
    return OCCURRENCE_PREFIX + b64url(f"{master_id}\x1f{stamp}".encode())


def split_occurrence_id(event_id: str) -> tuple[str, str] | None:
    """(master id, stamp) of an occurrence id; None for any other id."""
    if not event_id.startswith(OCCURRENCE_PREFIX):
        return None
    token = event_id[len(OCCURRENCE_PREFIX) :]
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    master, sep, stamp = text.partition("\x1f")
    return (master, stamp) if sep and master and stamp else None


def parse_stamp(stamp: str, zone: tzinfo) -> datetime:
    if len(stamp) == 8:
        return datetime.strptime(stamp, "%Y%m%d").replace(tzinfo=zone)
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def occurrence_ical(ical_uid: str, day: date) -> str:
    """An occurrence's iCalUId: its master's, with the occurrence date in bytes 16-19 (as in
    Exchange's GlobalObjectId)."""
    return ical_uid[:32] + f"{day.year:04X}{day.month:02X}{day.day:02X}" + ical_uid[40:]


# --- calendar views ---
@dataclass
class Item:
    """One event as a listing shows it: a stored event, or an occurrence of a series."""

    id: str
    type: str  # singleInstance, seriesMaster, occurrence, exception
    data: dict
    start: datetime
    end: datetime
    change_key: str
    created: float
    modified: float
    ical_uid: str
    master_id: str | None = None
    original_start: datetime | None = None


def item_of(stored) -> Item:
    data = stored.data
    if stored.master_id is not None:
        kind = "exception"
    else:
        kind = "seriesMaster" if stored.is_master else "singleInstance"
    original = None
    if stored.original_stamp:
        original = parse_stamp(stored.original_stamp, zone_of(data["start"]))
    return Item(
        id=stored.id,
        type=kind,
        data=data,
        start=instant(data["start"]),
        end=instant(data["end"]),
        change_key=stored.change_key,
        created=stored.created,
        modified=stored.modified,
        ical_uid=stored.ical_uid,
        master_id=stored.master_id,
        original_start=original,
    )


def occurrence_of(master, start: datetime, end: datetime) -> Item:
    all_day = bool(master.data.get("isAllDay"))
    stamp = stamp_of(start, all_day)
    return Item(
        id=occurrence_id(master.id, stamp),
        type="occurrence",
        data=master.data,
        start=start,
        end=end,
        change_key=master.change_key,
        created=master.created,
        modified=master.modified,
        ical_uid=occurrence_ical(master.ical_uid, start.date()),
        master_id=master.id,
        original_start=start,
    )


def view(calendar, low: datetime, high: datetime) -> list[Item]:
    """calendarView: singles, occurrences and exceptions in [low, high), by start."""
    items = []
    for stored in calendar.events.values():
        if stored.is_master:
            for start, end in occurrences(stored.data, low, high):
                stamp = stamp_of(start, bool(stored.data.get("isAllDay")))
                if stamp in stored.cancelled:
                    continue
                item = occurrence_of(stored, start, end)
                if item.id not in calendar.events:  # else an exception, listed on its own
                    items.append(item)
            continue
        item = item_of(stored)
        if overlaps(item.start, item.end, low, high):
            items.append(item)
    items.sort(key=lambda item: (item.start, item.id))
    return items


def find(calendar, event_id: str):
    """(stored event or None, Item or None) for any id: stored, or an occurrence's."""
    stored = calendar.events.get(event_id)
    if stored is not None:
        return stored, item_of(stored)
    parts = split_occurrence_id(event_id)
    if not parts:
        return None, None
    master = calendar.events.get(parts[0])
    if master is None or not master.is_master or parts[1] in master.cancelled:
        return None, None
    try:
        moment = parse_stamp(parts[1], zone_of(master.data["start"]))
    except ValueError:
        return None, None
    for start, end in occurrences(master.data, moment - timedelta(days=1), moment + timedelta(1)):
        if stamp_of(start, bool(master.data.get("isAllDay"))) == parts[1]:
            return None, occurrence_of(master, start, end)
    return None, None


# --- rendering ---
@dataclass
class Rendering:
    """How a request wants events written (Prefer headers, $select) and whose they are."""

    zone: tzinfo = UTC
    zone_name: str = "UTC"
    owner_email: str = ""
    personal: bool = False
    body_type: str | None = None
    select: list[str] | None = None


def _text_of(content: str) -> str:
    content = re.sub(r"(?is)<(head|style|script)\b.*?</\1>", "", content)
    content = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", content)
    return html.unescape(re.sub(r"<[^>]+>", "", content))


def _html_of(text: str) -> str:
    escaped = html.escape(text).replace("\r\n", "\n").replace("\n", "<br>\r\n")
    return (
        '<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        f"\r\n</head>\r\n<body>\r\n{escaped}\r\n</body>\r\n</html>\r\n"
    )


def render_body(body: dict, wanted: str | None) -> dict:
    """The body as Graph returns it: HTML unless `Prefer: outlook.body-content-type="text"`."""
    kind, content = body["contentType"], body["content"]
    if wanted == "text" and kind == "html":
        return {"contentType": "text", "content": _text_of(content).strip()}
    if wanted != "text" and kind == "text" and content:
        return {"contentType": "html", "content": _html_of(content)}
    return {"contentType": "html" if wanted != "text" else kind, "content": content}


def _render_time(moment: datetime, all_day: bool, data_zone: tzinfo, out: Rendering) -> dict:
    if all_day:  # all-day events float: midnight, whatever zone they are read in
        local = moment.astimezone(data_zone).replace(tzinfo=None)
    else:
        local = moment.astimezone(out.zone).replace(tzinfo=None)
    return {"dateTime": format_local(local), "timeZone": out.zone_name}


def web_link(event_id: str, personal: bool) -> str:
    host = "outlook.live.com" if personal else "outlook.office365.com"
    quoted = event_id.replace("=", "%3D").replace("+", "%2B").replace("/", "%2F")
    return f"https://{host}/owa/?itemid={quoted}&exvsurl=1&path=/calendar/item"


def render(item: Item, out: Rendering) -> dict:
    """The event resource as Graph v1.0 returns it."""
    data = item.data
    all_day = bool(data.get("isAllDay"))
    data_zone = zone_of(data["start"])
    organizer = data["organizer"]["emailAddress"]["address"]
    body = render_body(data["body"], out.body_type)
    preview = _text_of(data["body"]["content"]) if data["body"]["contentType"] == "html" else ""
    preview = data["body"]["content"] if data["body"]["contentType"] == "text" else preview
    is_organizer = organizer.lower() == out.owner_email.lower()
    default_response = "organizer" if is_organizer else "notResponded"
    response = data.get("responseStatus") or {"response": default_response, "time": NULL_TIME}
    result = {
        "@odata.etag": f'W/"{item.change_key}"',
        "id": item.id,
        "createdDateTime": format_offset(item.created),
        "lastModifiedDateTime": format_offset(item.modified),
        "changeKey": item.change_key,
        "categories": list(data["categories"]),
        "transactionId": data["transactionId"] if item.type != "occurrence" else None,
        "originalStartTimeZone": zones.windows_name(data["start"]["timeZone"]),
        "originalEndTimeZone": zones.windows_name(data["end"]["timeZone"]),
        "iCalUId": item.ical_uid,
        "reminderMinutesBeforeStart": data["reminderMinutesBeforeStart"],
        "isReminderOn": data["isReminderOn"],
        "hasAttachments": False,
        "subject": data["subject"],
        "bodyPreview": " ".join(preview.split())[:255],
        "importance": data["importance"],
        "sensitivity": data["sensitivity"],
        "isAllDay": all_day,
        "isCancelled": data["isCancelled"],
        "isOrganizer": is_organizer,
        "responseRequested": data["responseRequested"],
        "seriesMasterId": item.master_id,
        "showAs": data["showAs"],
        "type": item.type,
        "webLink": web_link(item.id, out.personal),
        "onlineMeetingUrl": None,
        "isOnlineMeeting": data["isOnlineMeeting"],
        "onlineMeetingProvider": data["onlineMeetingProvider"],
        "allowNewTimeProposals": data["allowNewTimeProposals"],
        "isDraft": False,
        "hideAttendees": data["hideAttendees"],
        "responseStatus": dict(response),
        "body": body,
        "start": _render_time(item.start, all_day, data_zone, out),
        "end": _render_time(item.end, all_day, data_zone, out),
        "location": copy.deepcopy(data["location"]),
        "locations": copy.deepcopy(data["locations"]),
        "recurrence": copy.deepcopy(data["recurrence"]) if item.type == "seriesMaster" else None,
        "attendees": copy.deepcopy(data["attendees"]),
        "organizer": copy.deepcopy(data["organizer"]),
        "onlineMeeting": copy.deepcopy(data["onlineMeeting"]),
    }
    if item.original_start is not None:
        result["originalStart"] = format_offset(item.original_start, fraction=False)
    ordered = {name: result[name] for name in FIELD_ORDER if name in result}
    if out.select:
        keep = {"@odata.etag", "id", *out.select}
        ordered = {name: value for name, value in ordered.items() if name in keep}
    return ordered


def partial(item: Item) -> dict:
    """A delta's entry for a changed item that carries none of its properties."""
    return {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": f'W/"{item.change_key}"',
        "id": item.id,
    }


def removed(event_id: str) -> dict:
    """A delta's entry for an item that left the view."""
    return {
        "@odata.type": "#microsoft.graph.event",
        "id": event_id,
        "@removed": {"reason": "deleted"},
    }
