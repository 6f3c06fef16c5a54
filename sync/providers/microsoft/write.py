"""Desired state -> a Graph event: the fields we manage, merged into what Graph holds. The
rendered payload is the event as we want Graph to hold it; `patch_body` is what goes over the
wire (only the fields of this write), and an answer to an invitation is Graph's own action
(accept / tentativelyAccept / decline), not a PATCH."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sync.providers.base import InvalidData, Rendered, WriteContext
from sync.providers.microsoft.normalize import body_text, iana_zone, parse_time, windows_zone

MANAGED = (
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "location",
    "showAs",
    "sensitivity",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "attendees",
    "recurrence",
    "isOnlineMeeting",
    "onlineMeetingProvider",
)
# Fields a write may clear: a PATCH sends them as null.
CLEARABLE = ("recurrence",)
_PATTERNS = {
    "daily": "daily",
    "weekly": "weekly",
    "monthly": "absoluteMonthly",
    "yearly": "absoluteYearly",
}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Keys of a rendered payload that say what its write sends: the fields of a PATCH, or the
# invitation answer to post.
PATCH_FIELDS, ANSWER = "_patch_fields", "_answer"
_ANSWERS = {"accepted": "accept", "tentative": "tentativelyAccept", "declined": "decline"}


def _zone(tzid: str):
    try:
        return ZoneInfo(tzid) if tzid else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _moment(value: str, tzid: str) -> dict:
    """The instant as local time in the event's zone, so that Outlook shows (and a series
    would recur in) the zone the integrator asked for, not UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    zone = _zone(tzid)
    name = windows_zone(tzid) if zone is not UTC else "UTC"
    local = parsed.astimezone(zone)
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": name}


def _instant(value: dict) -> datetime:
    """A dateTimeTimeZone as an aware UTC instant (Graph answers in UTC for us; what we
    render is local to its zone)."""
    moment = parse_time(value["dateTime"]).replace(tzinfo=None)
    return moment.replace(tzinfo=_zone(iana_zone(value.get("timeZone") or "", "UTC"))).astimezone(
        UTC
    )


def _apply(event: dict, desired: Mapping, *, exists: bool) -> None:
    if desired.get("is_all_day"):
        event["isAllDay"] = True
        event["start"] = {"dateTime": f"{desired['start_date']}T00:00:00", "timeZone": "UTC"}
        event["end"] = {"dateTime": f"{desired['end_date']}T00:00:00", "timeZone": "UTC"}
    else:
        event["isAllDay"] = False
        tzid = desired.get("tzid") or "UTC"
        event["start"], event["end"] = (
            _moment(desired["start"], tzid),
            _moment(desired["end"], tzid),
        )
        # Read-only at Graph (patch_body never sends it): what Graph will report, so that a
        # change of zone alone is a change and the same zone again is none.
        event["originalStartTimeZone"] = event["start"]["timeZone"]
    if "summary" in desired:
        event["subject"] = desired["summary"] or ""
    if "description" in desired:
        event["body"] = {"contentType": "text", "content": desired["description"] or ""}
    if "location_description" in desired:
        event["location"] = {"displayName": desired["location_description"] or ""}
    if "is_private" in desired:
        if desired["is_private"]:
            if event.get("sensitivity") not in ("private", "confidential"):
                event["sensitivity"] = "private"
        elif event.get("sensitivity") in ("private", "confidential"):
            event["sensitivity"] = "normal"
    if desired.get("transparency") in ("opaque", "transparent"):
        event["showAs"] = "busy" if desired["transparency"] == "opaque" else "free"
    reminders = desired.get("reminders")
    if reminders is not None and not (exists and desired.get("reminders_create_only")):
        # Graph holds one reminder per event: the earliest one asked for.
        event["isReminderOn"] = bool(reminders)
        if reminders:
            event["reminderMinutesBeforeStart"] = max(int(m) for m in reminders)
    _apply_attendees(event, desired)
    _apply_recurrence(event, desired)
    _apply_online_meeting(event, desired)


def _apply_recurrence(event: dict, desired: Mapping) -> None:
    """A managed series' rule as Graph's patternedRecurrence: the pattern and the range start
    on the first instance's date in the event's zone (Graph recurs in local time); a weekly
    rule without days recurs on the start's weekday, a monthly or yearly one on its date, as
    RFC 5545 does. None: a single event."""
    if "recurrence" not in desired:
        return
    rule = desired["recurrence"]
    if not rule:
        if event.get("recurrence"):
            event["recurrence"] = None  # cleared by the PATCH
        return
    tzid = "UTC" if desired.get("is_all_day") else desired.get("tzid") or "UTC"
    if desired.get("is_all_day"):
        first = datetime.fromisoformat(desired["start_date"])
    else:
        first = datetime.fromisoformat(desired["start"].replace("Z", "+00:00"))
        first = first.astimezone(_zone(tzid))
    kind = _PATTERNS[rule["frequency"]]
    pattern = {"type": kind, "interval": int(rule.get("interval") or 1)}
    if kind == "weekly":
        pattern["daysOfWeek"] = list(rule.get("by_day") or [_WEEKDAYS[first.weekday()]])
        pattern["firstDayOfWeek"] = "monday"
    if kind.startswith("absolute"):
        pattern["dayOfMonth"] = first.day
    if kind == "absoluteYearly":
        pattern["month"] = first.month
    span = {"startDate": first.date().isoformat(), "recurrenceTimeZone": windows_zone(tzid)}
    if rule.get("count"):
        span.update(type="numbered", numberOfOccurrences=int(rule["count"]))
    elif rule.get("until"):
        span.update(type="endDate", endDate=rule["until"])
    else:
        span["type"] = "noEnd"
    event["recurrence"] = {"pattern": pattern, "range": span}


def _apply_online_meeting(event: dict, desired: Mapping) -> None:
    """`default`: a Teams meeting, which Graph creates for an event with isOnlineMeeting (its
    join URL comes back in onlineMeeting); `none`: no online meeting. Explicit links are
    refused before they get here: Graph has no writable join URL."""
    conferencing = desired.get("conferencing")
    if conferencing is None or conferencing.get("profile_id") == "explicit":
        return
    wanted = conferencing.get("profile_id") != "none"
    if bool(event.get("isOnlineMeeting")) == wanted:
        return  # a meeting Graph made stays as it is
    event["isOnlineMeeting"] = wanted
    if wanted:
        event["onlineMeetingProvider"] = "teamsForBusiness"


def _recurrence_view(value: dict | None):
    """What a rule says, whatever Graph adds to it (zeros, `first`, 0001-01-01)."""
    if not value:
        return None
    pattern, span = value.get("pattern") or {}, value.get("range") or {}
    kind = pattern.get("type")
    return (
        kind,
        pattern.get("interval") or 1,
        tuple(sorted(pattern.get("daysOfWeek") or [])) if kind == "weekly" else (),
        pattern.get("dayOfMonth") or 0 if kind and kind.startswith("absolute") else 0,
        pattern.get("month") or 0 if kind == "absoluteYearly" else 0,
        span.get("type"),
        span.get("startDate"),
        span.get("endDate") if span.get("type") == "endDate" else None,
        span.get("numberOfOccurrences") if span.get("type") == "numbered" else None,
    )


def _apply_attendees(event: dict, desired: Mapping) -> None:
    remove = {(a.get("email") or "").lower() for a in desired.get("attendees_remove") or []}

    def address(person: dict) -> str:
        return ((person.get("emailAddress") or {}).get("address") or "").lower()

    attendees = [a for a in event.get("attendees") or [] if address(a) not in remove]
    present = {address(a) for a in attendees}
    for person in desired.get("attendees_invite") or []:
        email = (person.get("email") or "").strip()
        if not email or email.lower() in present or email.lower() in remove:
            continue
        attendees.append(
            {
                "type": "required",
                "emailAddress": {"address": email, "name": person.get("display_name") or email},
            }
        )
        present.add(email.lower())
    if attendees or event.get("attendees"):
        event["attendees"] = attendees


def _managed(event: dict | None) -> dict:
    """The fields we manage, in a form that compares equal when Graph holds the same state in
    its own notation (7-digit fractions, an HTML body, a location with Graph's extra keys)."""
    view = {name: (event or {}).get(name) for name in MANAGED}
    for name in ("start", "end"):
        if view[name]:
            view[name] = _instant(view[name])
    if view["start"] and not (event or {}).get("isAllDay"):
        zone = (event or {}).get("originalStartTimeZone") or ""
        view["start"] = (view["start"], iana_zone(zone, "UTC"))
    if view["body"] is not None:
        view["body"] = body_text(view["body"])
    if view["location"] is not None:
        view["location"] = (view["location"] or {}).get("displayName") or ""
    view["recurrence"] = _recurrence_view(view["recurrence"])
    view["isOnlineMeeting"] = bool(view["isOnlineMeeting"])
    view["onlineMeetingProvider"] = None  # follows isOnlineMeeting; Graph may name another
    if view["attendees"]:
        view["attendees"] = sorted(
            ((a.get("emailAddress") or {}).get("address", "").lower(), a.get("type"))
            for a in view["attendees"]
        )
    return view


def _load(current: str) -> dict:
    try:
        return json.loads(current) if current else {}
    except ValueError as exc:
        raise InvalidData(f"not a Graph event: {exc}") from exc


def render_event(*, desired: Mapping, current: str, context: WriteContext) -> Rendered:
    """The event with `desired` applied. A PATCH sends only the fields that differ from what
    Graph holds: resending the rest (times, attendees) would send the organizer's meeting
    updates, or fields an invitee may not change. One instance of a series is its occurrence's
    own resource (calendarView lists each): the PATCH to its id makes it an exception, and the
    rest of the series stays as it is."""
    held = _load(current)
    event = copy.deepcopy(held)
    _apply(event, desired, exists=bool(held))
    before, after = _managed(held), _managed(event)
    changed = [name for name in MANAGED if after[name] != before[name]] if held else list(MANAGED)
    if not changed:
        return Rendered(payload=current, changed=False)
    event[PATCH_FIELDS] = changed
    return Rendered(payload=json.dumps(event, sort_keys=True), changed=True)


def render_participation(*, status: str, current: str, context: WriteContext) -> Rendered:
    """The invitation answer to post; for an occurrence, posted to its id, it answers for
    that occurrence alone."""
    action = _ANSWERS.get(status)
    if action is None:
        raise InvalidData(f"unknown participation status {status!r}")
    event = _load(current)
    if event.get("isOrganizer"):
        raise InvalidData("the calendar owner organizes this event: there is nothing to answer")
    response = (event.get("responseStatus") or {}).get("response")
    wanted = {"accept": "accepted", "tentativelyAccept": "tentativelyAccepted"}.get(
        action, "declined"
    )
    if response == wanted:
        return Rendered(payload=current, changed=False)
    event["responseStatus"] = {"response": wanted}
    event[ANSWER] = action
    return Rendered(payload=json.dumps(event, sort_keys=True), changed=True)


def patch_body(payload: str, *, only_patch_fields: bool = False) -> dict:
    """The fields this write sends (those its render marked; all we manage when unmarked,
    unless `only_patch_fields`)."""
    event = _load(payload)
    fields = event.get(PATCH_FIELDS) or ([] if only_patch_fields else MANAGED)
    body = {name: event[name] for name in fields if event.get(name) is not None}
    for name in CLEARABLE:
        if name in fields and name in event and event[name] is None:
            body[name] = None
    if "isOnlineMeeting" in body and body["isOnlineMeeting"]:
        body.setdefault("onlineMeetingProvider", "teamsForBusiness")
    return body


def without_answer(payload: str) -> str:
    event = _load(payload)
    event.pop(ANSWER, None)
    return json.dumps(event, sort_keys=True)


def answer_of(payload: str) -> str:
    """The invitation answer this payload asks to post ('' for a PATCH)."""
    return _load(payload).get(ANSWER, "")
