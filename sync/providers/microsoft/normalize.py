"""Graph events -> events.

We read a calendar with calendarView/delta, which returns the occurrences inside our window,
already expanded: each occurrence, exception and single event is a resource of its own (its
Graph id), and a series exists only as the occurrences that share a seriesMasterId. An event is
keyed by the transactionId we gave it when we created it (so the key is known before Graph
answers), else by its series master's id or its own; an instance by that key and its original
start. Times come in UTC (Prefer: outlook.timezone="UTC"); the zone the organizer used is the
Windows name in originalStartTimeZone, mapped to IANA.
"""

from __future__ import annotations

import functools
import html
import json
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from sync.providers import rest
from sync.providers.base import (
    EventData,
    InvalidData,
    NormalizedResource,
    ProviderResource,
    ReadContext,
    Window,
)

_RESPONSE = {
    "accepted": "accepted",
    "tentativelyAccepted": "tentative",
    "declined": "declined",
    "notResponded": "needs_action",
    "organizer": "accepted",
    "none": "unknown",
}
# showAs -> (transparency, Cronofy's extended_transparency)
_SHOW_AS = {
    "free": ("transparent", ""),
    "tentative": ("opaque", "tentative"),
    "busy": ("opaque", ""),
    "oof": ("opaque", "out_of_office"),
    "workingElsewhere": ("transparent", "working_elsewhere"),
}
_TAGS = re.compile(r"<[^>]+>")


def event_key(item: dict) -> str:
    """An occurrence or exception: its series master's id. A single event we created: the
    transactionId we gave it (our event id, `evt_…`; another app's transactionId is not
    ours to key by). Otherwise the Graph id."""
    if item.get("seriesMasterId"):
        return item["seriesMasterId"]
    transaction = item.get("transactionId") or ""
    if transaction.startswith("evt_") and item.get("type", "singleInstance") == "singleInstance":
        return transaction
    return item["id"]


def parse_time(value: str) -> datetime:
    """Graph's dateTime ("2026-12-10T09:00:00.0000000", zone given apart: UTC here)."""
    main, _, fraction = value.partition(".")
    moment = datetime.fromisoformat(main)
    if fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# Names Graph reports that are neither Windows nor IANA zones: Outlook's UTC, and the zone of
# an event made with a custom zone definition (no name we could map; its times are exact in
# UTC all the same).
_GRAPH_ZONES = {"tzone://Microsoft/Utc": "Etc/UTC", "tzone://Microsoft/Custom": ""}


def iana_zone(name: str, default: str) -> str:
    """A Windows zone name as IANA (W. Europe Standard Time -> Europe/Berlin); IANA names are
    kept; empty, custom ("Customized Time Zone") and unknown ones get `default`, so that no
    name a client cannot parse reaches the API."""
    if not name:
        return default
    mapped = WINDOWS_TO_OLSON.get(name) or _GRAPH_ZONES.get(name, name)
    return mapped if _is_zone(mapped) else default


@functools.lru_cache(maxsize=512)
def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# Graph shows Outlook's own (Windows) zone names in its clients; an IANA zone that is a
# Windows zone's main city is written by that name, any other as IANA, which Graph accepts.
_WINDOWS_BY_IANA = {iana: windows for windows, iana in WINDOWS_TO_OLSON.items()}


def windows_zone(tzid: str) -> str:
    """The zone name to write (Europe/Berlin -> W. Europe Standard Time); UTC for none."""
    if not tzid or tzid in ("UTC", "Etc/UTC"):
        return "UTC"
    return _WINDOWS_BY_IANA.get(tzid, tzid)


def body_text(body: dict | None) -> str:
    if not body or not body.get("content"):
        return ""
    content = body["content"]
    if body.get("contentType", "").lower() == "html":
        content = html.unescape(_TAGS.sub(" ", content)).replace("\xa0", " ")
        content = re.sub(r"[ \t]+", " ", content)
    return content.strip()[:8192]


def _address(person: dict | None) -> dict:
    email = (person or {}).get("emailAddress") or {}
    return {"email": email.get("address", ""), "display_name": email.get("name", "")}


def normalize(
    resource: ProviderResource, *, window: Window, context: ReadContext
) -> NormalizedResource:
    """One Graph event (a single event or one occurrence) as an event; a series master as no
    event. Raises InvalidData."""
    try:
        item = json.loads(resource.payload)
        key = event_key(item)
        start, end = parse_time(item["start"]["dateTime"]), parse_time(item["end"]["dateTime"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidData(f"unreadable Graph event {resource.resource_id}: {exc}"[:200]) from exc
    if item.get("type") == "seriesMaster":
        # Only a write's answer holds a series master (calendarView lists occurrences): the
        # series is its occurrences, which the next listing brings.
        return NormalizedResource(uids=[key], events=[])
    tzid = iana_zone(item.get("originalStartTimeZone", ""), context.default_tzid)
    fields: dict = {}
    if item.get("isAllDay"):
        first, last = all_day_date(start, tzid), all_day_date(end, tzid)
        last = max(last, first + timedelta(days=1))
        start, end = _midnight(first), _midnight(last)
        fields.update(is_all_day=True, start_date=first, end_date=last)
    transparency, extended = _SHOW_AS.get(item.get("showAs", ""), ("opaque", ""))
    attendees = [
        {
            **_address(person),
            "status": _RESPONSE.get((person.get("status") or {}).get("response", ""), "unknown"),
        }
        for person in item.get("attendees") or []
    ]
    participation = _RESPONSE.get((item.get("responseStatus") or {}).get("response", ""), "unknown")
    if participation == "unknown" and item.get("isOrganizer"):
        participation = "accepted"
    recurring = item.get("type") in ("occurrence", "exception")
    original = item.get("originalStart")
    event = EventData(
        provider_key=key,
        original_start=rest.timestamp(original) if recurring and original else None,
        start=start,
        end=max(end, start),
        summary=item.get("subject", "") or "",
        description=body_text(item.get("body")),
        location_description=((item.get("location") or {}).get("displayName") or ""),
        meeting_url=((item.get("onlineMeeting") or {}).get("joinUrl") or "")[:2048],
        tzid=tzid,
        status="cancelled" if item.get("isCancelled") else "confirmed",
        transparency=transparency,
        extended_transparency=extended,
        participation_status=participation,
        attendees=attendees,
        organizer=_address(item.get("organizer")),
        categories=list(item.get("categories") or []),
        is_recurring=recurring,
        is_private=item.get("sensitivity") in ("private", "confidential"),
        ical_uid=item.get("iCalUId", ""),
        provider_created_at=rest.timestamp(item.get("createdDateTime")),
        provider_updated_at=rest.timestamp(item.get("lastModifiedDateTime")),
        provider_resource=resource.resource_id,
        provider_etag=resource.version,
        raw=resource.payload,
        **fields,
    )
    return NormalizedResource(uids=[key], events=[event])


def all_day_date(moment: datetime, tzid: str) -> date:
    """The date an all-day boundary stands for. Graph gives all-day events as midnights; we
    ask for UTC, and whether a service shifts them into UTC (23:00 the day before, for Berlin)
    or keeps them floating is not something to bet on: a midnight in UTC is that date, a
    midnight in the event's zone is that date, anything else the nearest date."""
    if moment.time() == time():
        return moment.date()
    try:
        local = moment.astimezone(ZoneInfo(tzid))
    except (ZoneInfoNotFoundError, ValueError):
        local = moment
    if local.time() == time():
        return local.date()
    return (moment + timedelta(hours=12)).date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)
