"""Google Calendar events -> events: series grouping, local expansion, busy rules.

We list with singleEvents=false: a recurring series arrives as its master (with RFC 5545
`recurrence` lines) plus one item per moved or cancelled instance (`recurringEventId`,
`originalStartTime`). singleEvents=true would need a timeMax that a sync token cannot be
combined with, and would make every window roll a provider request; with the masters we expand
locally, like CalDAV, and the roll stays local.

One resource is one series (or one single event): {"master": {...} | null, "exceptions":
{instance id: {...}}, "time_zone": calendar zone}, its id the master's event id. An instance is
identified by (master id, original start in UTC), stable across syncs; the master id is the
event key (EventData.provider_key), so an event we create has a key we know before Google
answers (the id we choose). All-day events stay dates with an exclusive end.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events

from sync.providers import rest
from sync.providers.base import (
    EventData,
    InvalidData,
    NormalizedResource,
    ProviderResource,
    ReadContext,
    Window,
)

_STATUS = {"confirmed": "confirmed", "tentative": "tentative", "cancelled": "cancelled"}
_RESPONSE = {
    "needsAction": "needs_action",
    "accepted": "accepted",
    "tentative": "tentative",
    "declined": "declined",
}
# Google's event types in Cronofy's extended_transparency. A working-location entry says where
# someone works, not that they are busy; out-of-office blocks time.
_EXTENDED_TRANSPARENCY = {"outOfOffice": "out_of_office", "workingLocation": "working_elsewhere"}
_FREE_EVENT_TYPES = {"workingLocation"}
# Instances of one series expanded into one window, at most (a daily series over the default
# 243-day window has 243).
MAX_INSTANCES = 2000


def series_id(item: dict) -> str:
    return item.get("recurringEventId") or item["id"]


def new_group(time_zone: str = "") -> dict:
    return {"master": None, "exceptions": {}, "time_zone": time_zone}


def add_item(group: dict, item: dict) -> None:
    """Put a listed item into its series' group (a later listing of the same item wins)."""
    if item.get("recurringEventId"):
        group["exceptions"][item["id"]] = item
    elif item.get("status") == "cancelled":
        group["master"] = None
        group["exceptions"] = {}
        group["cancelled"] = True
    else:
        group["master"] = item
        group.pop("cancelled", None)


def is_gone(group: dict) -> bool:
    """A cancelled series, or one whose every known item was cancelled: nothing remains."""
    if group.get("cancelled"):
        return True
    if group["master"] is not None:
        return False
    return all(e.get("status") == "cancelled" for e in group["exceptions"].values())


def group_version(group: dict) -> str:
    """The master's etag (what If-Match needs), plus a digest of the exceptions' etags when
    there are any, so that a changed instance changes the resource's version."""
    master = group["master"] or {}
    etag = master.get("etag", "")
    if not group["exceptions"]:
        return etag
    tags = sorted(f"{key}={e.get('etag', '')}" for key, e in group["exceptions"].items())
    digest = hashlib.sha256("\n".join(tags).encode()).hexdigest()[:16]
    return f"{etag}/{digest}"


def master_etag(version: str) -> str:
    return version.split("/", 1)[0]


def dump(group: dict) -> str:
    return json.dumps(group, sort_keys=True, separators=(",", ":"))


def load(payload: str) -> dict:
    try:
        group = json.loads(payload)
    except ValueError as exc:
        raise InvalidData(f"not a Google event group: {exc}") from exc
    if not isinstance(group, dict) or "exceptions" not in group:
        raise InvalidData("not a Google event group")
    return group


# --- reading ---
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def when(value: dict, zone_name: str) -> datetime | date:
    """A Google start/end/originalStartTime: a date, or an aware datetime in its zone."""
    if value.get("date"):
        return date.fromisoformat(value["date"])
    raw = value.get("dateTime")
    if not raw:
        raise InvalidData("an event time has neither date nor dateTime")
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    zone = _zone(value.get("timeZone") or zone_name) or UTC
    if moment.tzinfo is None:
        return moment.replace(tzinfo=zone)
    return moment.astimezone(zone)


def _utc(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(), tzinfo=UTC)


def original_start(exception: dict, zone_name: str) -> datetime:
    """What identifies a moved or cancelled instance: its original start, in UTC (an all-day
    one's date as its UTC midnight)."""
    return _utc(when(exception["originalStartTime"], zone_name))


def _people(item: dict, self_emails: frozenset[str]) -> tuple[list, dict, str]:
    attendees, participation = [], "unknown"
    for person in item.get("attendees") or []:
        email = person.get("email", "")
        status = _RESPONSE.get(person.get("responseStatus", ""), "unknown")
        attendees.append(
            {"email": email, "display_name": person.get("displayName", ""), "status": status}
        )
        if person.get("self") or email.lower() in self_emails:
            participation = status
    organizer = {}
    if item.get("organizer"):
        raw = item["organizer"]
        organizer = {"email": raw.get("email", ""), "display_name": raw.get("displayName", "")}
        is_self = raw.get("self") or raw.get("email", "").lower() in self_emails
        if is_self and participation == "unknown":
            participation = "accepted"
    return attendees, organizer, participation


def _meeting_url(item: dict) -> str:
    for entry in (item.get("conferenceData") or {}).get("entryPoints") or []:
        if entry.get("entryPointType") == "video" and entry.get("uri", "").startswith("https://"):
            return entry["uri"][:2048]
    link = item.get("hangoutLink") or ""
    return link[:2048] if link.startswith("https://") else ""


def event_data(
    item: dict,
    *,
    key: str,
    original_start: datetime | None,
    is_recurring: bool,
    zone_name: str,
    context: ReadContext,
    resource: ProviderResource,
    start: datetime | date | None = None,
) -> EventData:
    """One event (or instance) from a Google item; `start` overrides the item's own start for
    an expanded instance (the item's duration is kept)."""
    own_start = when(item["start"], zone_name)
    own_end = when(item["end"], zone_name) if item.get("end") else own_start
    start = own_start if start is None else start
    end = start + (own_end - own_start)
    attendees, organizer, participation = _people(item, context.self_emails)
    transparent = (
        item.get("transparency") == "transparent" or item.get("eventType") in _FREE_EVENT_TYPES
    )
    fields: dict = {}
    if isinstance(start, datetime):
        tzid = item["start"].get("timeZone") or zone_name or context.default_tzid
        utc_start, utc_end = _utc(start), max(_utc(end), _utc(start))
    else:
        end = max(end, start + timedelta(days=1))
        tzid = zone_name or context.default_tzid
        utc_start, utc_end = _utc(start), _utc(end)
        fields.update(is_all_day=True, start_date=start, end_date=end)
    return EventData(
        provider_key=key,
        original_start=original_start,
        start=utc_start,
        end=utc_end,
        summary=item.get("summary", ""),
        description=item.get("description", ""),
        location_description=item.get("location", ""),
        meeting_url=_meeting_url(item),
        tzid=tzid,
        status=_STATUS.get(item.get("status", ""), "confirmed"),
        transparency="transparent" if transparent else "opaque",
        extended_transparency=_EXTENDED_TRANSPARENCY.get(item.get("eventType", ""), ""),
        participation_status=participation,
        attendees=attendees,
        organizer=organizer,
        is_recurring=is_recurring,
        is_private=item.get("visibility") in ("private", "confidential"),
        ical_uid=item.get("iCalUID", ""),
        provider_created_at=rest.timestamp(item.get("created")),
        provider_updated_at=rest.timestamp(item.get("updated")),
        provider_resource=resource.resource_id,
        provider_etag=resource.version,
        raw=resource.payload,
        **fields,
    )


def _occurrences(master: dict, zone_name: str, window: Window) -> list[datetime | date]:
    """Starts of the master's instances whose span overlaps the window.

    Google's `recurrence` lines are RFC 5545 properties, so the series is expanded by the same
    machinery as CalDAV's (recurring_ical_events), which copes with what Google sends and bare
    dateutil does not: UNTIL in UTC on an all-day series, a date-only UNTIL on a timed one,
    floating EXDATEs, RDATE with TZID."""
    first = when(master["start"], zone_name)
    last = when(master["end"], zone_name) if master.get("end") else first
    lines = [line.strip() for line in master.get("recurrence") or [] if line.strip()]
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//google//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:series\r\nDTSTAMP:20000101T000000Z\r\n{_ical_time('DTSTART', first)}\r\n"
        f"{_ical_time('DTEND', last)}\r\n"
        + "".join(f"{line}\r\n" for line in lines)
        + "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    try:
        calendar = icalendar.Calendar.from_ical(text)
        instances = recurring_ical_events.of(calendar).between(window.start, window.end)
    except Exception as exc:  # noqa: BLE001 - bad RRULEs raise assorted errors
        raise InvalidData(f"cannot expand recurrence: {exc}"[:200]) from exc
    starts = []
    for instance in instances[:MAX_INSTANCES]:
        value = instance.decoded("DTSTART")
        if isinstance(value, datetime):
            value = value.astimezone(first.tzinfo) if isinstance(first, datetime) else value
        starts.append(value)
    return starts


def _ical_time(name: str, value: datetime | date) -> str:
    if not isinstance(value, datetime):
        return f"{name};VALUE=DATE:{value:%Y%m%d}"
    zone = str(value.tzinfo)
    if zone in ("UTC", "Etc/UTC") or value.utcoffset() is None:
        return f"{name}:{value.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"{name};TZID={zone}:{value:%Y%m%dT%H%M%S}"


def normalize(
    resource: ProviderResource, *, window: Window, context: ReadContext
) -> NormalizedResource:
    """A series group (or single event) as events in `window`. Raises InvalidData."""
    group = load(resource.payload)
    zone_name = group.get("time_zone") or context.default_tzid
    master = group.get("master")
    key = resource.resource_id
    common = {"key": key, "zone_name": zone_name, "context": context, "resource": resource}
    try:
        if master is not None and not master.get("recurrence"):
            uids = [key]
            return NormalizedResource(
                uids=uids,
                events=[event_data(master, original_start=None, is_recurring=False, **common)],
            )
        instances: dict[datetime, EventData] = {}
        if master is not None:
            for start in _occurrences(master, zone_name, window):
                original = _utc(start)
                instances[original] = event_data(
                    master, original_start=original, is_recurring=True, start=start, **common
                )
        for exception in group["exceptions"].values():
            original = original_start(exception, zone_name)
            instances.pop(original, None)
            if exception.get("status") == "cancelled" or "start" not in exception:
                continue
            data = event_data(exception, original_start=original, is_recurring=True, **common)
            if data.end > window.start and data.start < window.end:
                instances[original] = data
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidData(f"unreadable Google event {key}: {exc}"[:200]) from exc
    return NormalizedResource(uids=[key], events=list(instances.values()), series=resource.payload)
