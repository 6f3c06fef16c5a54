"""iCalendar -> events: the one place where CalDAV and ICS content is normalized.

Timed events become aware UTC instants plus the original IANA zone (Windows zone names are
mapped by icalendar; X-WR-TIMEZONE and floating times are resolved to a zone); all-day events
become dates with an exclusive end. Recurring series are expanded on our side, never by the
server (docs/providers.md, Server quirks), into the instances inside the sync window, with
EXDATE, RDATE and RECURRENCE-ID overrides applied; an instance is identified by (UID, original
start in UTC), which is stable across syncs.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events
import x_wr_timezone

from sync.providers.base import (
    EventData,
    InvalidData,
    NormalizedResource,
    ProviderResource,
    ReadContext,
    Window,
)


class InvalidCalendarData(InvalidData, ValueError):
    """The resource is not parseable iCalendar."""


_PARTSTAT = {
    "NEEDS-ACTION": "needs_action",
    "ACCEPTED": "accepted",
    "DECLINED": "declined",
    "TENTATIVE": "tentative",
}
_STATUS = {"CONFIRMED": "confirmed", "TENTATIVE": "tentative", "CANCELLED": "cancelled"}
_MEETING_PROPERTIES = (
    "X-GOOGLE-CONFERENCE",
    "X-MICROSOFT-SKYPETEAMSMEETINGURL",
    "X-MICROSOFT-ONLINEMEETINGEXTERNALLINK",
    "CONFERENCE",
)
_MEETING_URL = re.compile(
    r"https://(?:[\w-]+\.)?(?:zoom\.us/j|meet\.google\.com|teams\.microsoft\.com/l/meetup-join"
    r"|meet\.jit\.si|[\w-]+\.webex\.com/(?:meet|join))[^\s<>\"']*",
    re.IGNORECASE,
)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _tzid_of(value: datetime, fallback: str) -> str:
    tz = value.tzinfo
    key = getattr(tz, "key", None)
    if key:
        return "Etc/UTC" if key == "UTC" else key
    if tz is not None and value.utcoffset() == timedelta(0) and str(tz) in ("UTC", "UTC+00:00"):
        return "Etc/UTC"
    return fallback


def _to_utc(value: datetime | date, floating_tz: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=floating_tz)  # floating time: the calendar's/user's zone
    return value.astimezone(UTC)


def uid_of(component) -> str:
    """A component's UID as every reader and writer compares it (surrounding space dropped)."""
    return _text(component, "UID")


def _text(component, name: str) -> str:
    value = component.get(name)
    if value is None:
        return ""
    if isinstance(value, list):
        value = value[0]
    return str(value).strip()


def _address(value) -> str:
    text = str(value).strip()
    return text[7:] if text.lower().startswith("mailto:") else text


def _people(component, self_emails: frozenset[str]) -> tuple[list, dict, str]:
    attendees_raw = component.get("ATTENDEE") or []
    if not isinstance(attendees_raw, list):
        attendees_raw = [attendees_raw]
    attendees = []
    participation = "unknown"
    for attendee in attendees_raw:
        email = _address(attendee)
        status = _PARTSTAT.get(str(attendee.params.get("PARTSTAT", "NEEDS-ACTION")).upper())
        status = status or "unknown"
        attendees.append(
            {"email": email, "display_name": str(attendee.params.get("CN", "")), "status": status}
        )
        if email.lower() in self_emails:
            participation = status
    organizer = {}
    raw_organizer = component.get("ORGANIZER")
    if raw_organizer is not None:
        email = _address(raw_organizer)
        organizer = {"email": email, "display_name": str(raw_organizer.params.get("CN", ""))}
        if email.lower() in self_emails and participation == "unknown":
            participation = "accepted"
    return attendees, organizer, participation


def _categories(component) -> list[str]:
    raw = component.get("CATEGORIES")
    if raw is None:
        return []
    values = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for value in values:
        cats = getattr(value, "cats", None)
        out.extend(str(c) for c in (cats if cats is not None else [value]))
    return out


def _meeting_url(component, description: str, location: str) -> str:
    for name in _MEETING_PROPERTIES:
        value = _text(component, name)
        if value.startswith("https://"):
            return value[:2048]
    match = _MEETING_URL.search(f"{location}\n{description}")
    return match.group(0)[:2048] if match else ""


def _optional_utc(component, name: str) -> datetime | None:
    value = component.get(name)
    if value is None:
        return None
    dt = value.dt
    return _to_utc(dt, UTC) if isinstance(dt, datetime | date) else None


def _event_data(
    component,
    *,
    uid: str,
    original_start: datetime | None,
    is_recurring: bool,
    floating_tz: ZoneInfo,
    default_tzid: str,
    self_emails: frozenset[str],
    href: str,
    etag: str,
    raw: str,
) -> EventData | None:
    if component.get("DTSTART") is None:
        return None
    start_value = component.decoded("DTSTART")
    if component.get("DTEND") is not None:
        end_value = component.decoded("DTEND")
    elif component.get("DURATION") is not None:
        end_value = start_value + component.decoded("DURATION")
    elif isinstance(start_value, datetime):
        end_value = start_value
    else:
        end_value = start_value + timedelta(days=1)

    description = _text(component, "DESCRIPTION")
    location = _text(component, "LOCATION")
    attendees, organizer, participation = _people(component, self_emails)
    fields: dict = {}
    if isinstance(start_value, datetime):
        start = _to_utc(start_value, floating_tz)
        end = max(_to_utc(end_value, floating_tz), start)
        tzid = _tzid_of(start_value, default_tzid) if start_value.tzinfo else default_tzid
    else:
        # All-day: dates with an exclusive end (RFC 5545 §3.6.1); never shifted by a zone.
        start_date = start_value
        end_date = end_value.date() if isinstance(end_value, datetime) else end_value
        end_date = max(end_date, start_date + timedelta(days=1))
        start, end = _to_utc(start_date, UTC), _to_utc(end_date, UTC)
        tzid = default_tzid
        fields.update(is_all_day=True, start_date=start_date, end_date=end_date)
    geo = component.get("GEO")
    url = _text(component, "URL")
    return EventData(
        provider_key=uid,
        original_start=original_start,
        start=start,
        end=end,
        summary=_text(component, "SUMMARY"),
        description=description,
        location_description=location,
        location_lat=str(geo.latitude) if geo is not None else "",
        location_long=str(geo.longitude) if geo is not None else "",
        url=url[:2048] if url.startswith(("http://", "https://")) else "",
        meeting_url=_meeting_url(component, description, location),
        tzid=tzid,
        status=_STATUS.get(_text(component, "STATUS").upper(), "confirmed"),
        transparency="transparent"
        if _text(component, "TRANSP").upper() == "TRANSPARENT"
        else "opaque",
        participation_status=participation,
        attendees=attendees,
        organizer=organizer,
        categories=_categories(component),
        is_recurring=is_recurring,
        is_private=_text(component, "CLASS").upper() in ("PRIVATE", "CONFIDENTIAL"),
        ical_uid=uid,
        provider_created_at=_optional_utc(component, "CREATED"),
        provider_updated_at=_optional_utc(component, "LAST-MODIFIED"),
        provider_resource=href,
        provider_etag=etag,
        raw=raw,
        **fields,
    )


def normalize_resource(
    ical: str,
    *,
    window: Window,
    href: str = "",
    etag: str = "",
    default_tzid: str = "Etc/UTC",
    self_emails: frozenset[str] = frozenset(),
) -> tuple[list[str], list[EventData]]:
    """Parse one iCalendar resource into (its UIDs, the EventData to cache).

    Single events are kept whatever their date; recurring series yield their instances that
    overlap `window`. `default_tzid` is the zone of floating times when the resource names
    none (X-WR-TIMEZONE wins). `self_emails` (lower case) identify the end-user among
    attendees. Raises InvalidCalendarData.
    """
    try:
        calendar = icalendar.Calendar.from_ical(ical)
    except Exception as exc:  # noqa: BLE001 - icalendar raises assorted errors on bad input
        raise InvalidCalendarData(str(exc)[:200]) from exc
    calendar_tzid = _text(calendar, "X-WR-TIMEZONE")
    if _zone(calendar_tzid) is None:
        calendar_tzid = ""
    tzid = calendar_tzid or default_tzid
    floating_tz = _zone(tzid) or UTC
    groups: dict[str, list] = defaultdict(list)
    for component in calendar.walk("VEVENT"):
        uid = uid_of(component)
        if uid:
            groups[uid].append(component)
    events: list[EventData] = []
    common = {
        "floating_tz": floating_tz,
        "default_tzid": tzid,
        "self_emails": self_emails,
        "href": href,
        "etag": etag,
        "raw": ical,
    }
    recurring_uids = [
        uid
        for uid, comps in groups.items()
        if any(c.get("RRULE") or c.get("RDATE") or c.get("RECURRENCE-ID") for c in comps)
    ]
    for uid, comps in groups.items():
        if uid in recurring_uids:
            continue
        data = _event_data(comps[0], uid=uid, original_start=None, is_recurring=False, **common)
        if data is not None:
            events.append(data)
    if recurring_uids:
        if calendar_tzid:
            # Rewrites floating/UTC times into X-WR-TIMEZONE (Google's published feeds).
            calendar = x_wr_timezone.to_standard(calendar)
        try:
            instances = recurring_ical_events.of(calendar).between(window.start, window.end)
        except Exception as exc:  # noqa: BLE001 - bad RRULEs raise assorted errors
            raise InvalidCalendarData(f"cannot expand recurrence: {exc}"[:200]) from exc
        wanted = set(recurring_uids)
        for instance in instances:
            uid = uid_of(instance)
            if uid not in wanted:
                continue
            recurrence_id = instance.get("RECURRENCE-ID") or instance.get("DTSTART")
            original_start = _to_utc(recurrence_id.dt, floating_tz)
            data = _event_data(
                instance, uid=uid, original_start=original_start, is_recurring=True, **common
            )
            if data is not None:
                events.append(data)
    return list(groups), events


_VEVENT = re.compile(r"^BEGIN:VEVENT\r?$(.*?)^END:VEVENT\r?$", re.MULTILINE | re.DOTALL)
_RECURRENCE = re.compile(r"^(RRULE|RDATE|RECURRENCE-ID)[;:]", re.MULTILINE)


def normalize(
    resource: ProviderResource, *, window: Window, context: ReadContext
) -> NormalizedResource:
    """One iCalendar resource (href, etag, text) as events; a recurring one keeps its text as
    the series to re-expand when the window rolls. Raises InvalidCalendarData."""
    uids, events = normalize_resource(
        resource.payload,
        window=window,
        href=resource.resource_id,
        etag=resource.version,
        default_tzid=context.default_tzid,
        self_emails=context.self_emails,
    )
    series = resource.payload if has_recurrence(resource.payload) else ""
    return NormalizedResource(uids=uids, events=events, series=series)


def has_recurrence(ical: str) -> bool:
    """Whether a VEVENT of the resource belongs to a recurring series (RRULE, RDATE, or an
    override's RECURRENCE-ID, as an invitation to one instance has): its instances depend on
    the window, so the window roll must re-expand it. RRULEs of VTIMEZONE rules do not count."""
    return any(_RECURRENCE.search(body) for body in _VEVENT.findall(ical))
