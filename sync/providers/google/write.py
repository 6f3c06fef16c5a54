"""Desired state -> a Google event: the fields we manage, merged into what Google holds.

The rendered payload is a series group (see normalize), so that the reconciler can cache what
it wrote like any synced resource; `patch_body` is what goes over the wire: only the fields we
manage, so that everything else (conference data, extended properties, other attendees'
answers) stays as Google has it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime

from sync.providers.base import InvalidData, Rendered, WriteContext
from sync.providers.google import normalize

# The fields of an event we write; the rest is Google's.
MANAGED = (
    "summary",
    "description",
    "location",
    "start",
    "end",
    "transparency",
    "visibility",
    "status",
    "reminders",
    "attendees",
)
_RESPONSE = {"accepted": "accepted", "tentative": "tentative", "declined": "declined"}


def _moment(value: str, tzid: str) -> dict:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    zone = tzid if tzid and tzid not in ("UTC", "Etc/UTC", "GMT") else "UTC"
    return {"dateTime": parsed.astimezone(UTC).isoformat().replace("+00:00", "Z"), "timeZone": zone}


def _apply(event: dict, desired: Mapping, *, exists: bool) -> None:
    if desired.get("is_all_day"):
        event["start"] = {"date": desired["start_date"]}
        event["end"] = {"date": desired["end_date"]}  # exclusive, as Google's
    else:
        tzid = desired.get("tzid") or "Etc/UTC"
        event["start"] = _moment(desired["start"], tzid)
        event["end"] = _moment(desired["end"], tzid)
    for ours, theirs in (
        ("summary", "summary"),
        ("description", "description"),
        ("location_description", "location"),
    ):
        if ours in desired:
            event[theirs] = desired[ours] or ""
    if "is_private" in desired:
        # We manage only "private or not": a confidential event stays confidential.
        if desired["is_private"]:
            if event.get("visibility") not in ("private", "confidential"):
                event["visibility"] = "private"
        elif event.get("visibility") in ("private", "confidential"):
            event["visibility"] = "default"
    if desired.get("transparency") in ("opaque", "transparent"):
        event["transparency"] = desired["transparency"]
    if desired.get("status") in ("confirmed", "tentative", "cancelled"):
        event["status"] = desired["status"]
    reminders = desired.get("reminders")
    if reminders is not None and not (exists and desired.get("reminders_create_only")):
        event["reminders"] = {
            "useDefault": False,
            "overrides": [{"method": "popup", "minutes": int(m)} for m in reminders],
        }
    _apply_attendees(event, desired)


def _apply_attendees(event: dict, desired: Mapping) -> None:
    remove = {(a.get("email") or "").lower() for a in desired.get("attendees_remove") or []}
    attendees = [
        a for a in event.get("attendees") or [] if (a.get("email") or "").lower() not in remove
    ]
    present = {(a.get("email") or "").lower() for a in attendees}
    for person in desired.get("attendees_invite") or []:
        email = (person.get("email") or "").strip()
        if not email or email.lower() in present or email.lower() in remove:
            continue
        invited = {"email": email, "responseStatus": "needsAction"}
        if person.get("display_name"):
            invited["displayName"] = person["display_name"]
        attendees.append(invited)
        present.add(email.lower())
    if attendees or event.get("attendees"):
        event["attendees"] = attendees


def _managed(event: dict | None) -> dict:
    return {name: (event or {}).get(name) for name in MANAGED}


def render_event(*, desired: Mapping, current: str, context: WriteContext) -> Rendered:
    """The group whose master holds `desired`. Raises InvalidData, KeyError/ValueError (a
    desired state without valid times)."""
    group = normalize.load(current) if current else normalize.new_group()
    master = copy.deepcopy(group.get("master")) if group.get("master") else None
    if current and master is None:
        raise InvalidData("the event's series master is not visible in this calendar")
    before = _managed(master)
    event = master or {}
    _apply(event, desired, exists=master is not None)
    changed = _managed(event) != before or master is None
    if not changed:
        return Rendered(payload=current, changed=False)
    return Rendered(payload=normalize.dump({**group, "master": event}), changed=True)


def render_participation(*, status: str, current: str, context: WriteContext) -> Rendered:
    """The self attendee's responseStatus set on the master. Raises InvalidData (not invited,
    unknown status)."""
    answer = _RESPONSE.get(status)
    if answer is None:
        raise InvalidData(f"unknown participation status {status!r}")
    group = normalize.load(current)
    master = copy.deepcopy(group.get("master") or {})
    found = changed = False
    for attendee in master.get("attendees") or []:
        if attendee.get("self") or (attendee.get("email") or "").lower() in context.self_emails:
            found = True
            if attendee.get("responseStatus") != answer:
                attendee["responseStatus"] = answer
                changed = True
    if not found:
        raise InvalidData("the calendar owner is not an attendee of this event")
    if not changed:
        return Rendered(payload=current, changed=False)
    return Rendered(payload=normalize.dump({**group, "master": master}), changed=True)


def patch_body(payload: str) -> dict:
    """The managed fields of the rendered master, as Google's events.patch takes them."""
    master = normalize.load(payload).get("master") or {}
    return {name: master[name] for name in MANAGED if master.get(name) is not None}
