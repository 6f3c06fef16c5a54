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

from sync.providers import recurrence
from sync.providers.base import InvalidData, NotSupported, Rendered, WriteContext
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
    "colorId",
    "recurrence",
    "conferenceData",
)
# Fields a write may clear: a PATCH sends them as null (Google's way to remove a field).
CLEARABLE = ("recurrence", "conferenceData")
# Google's event colours (colors.get, "event"): an integrator's hex colour becomes the nearest.
EVENT_COLORS = {
    "1": "#a4bdfc",
    "2": "#7ae7bf",
    "3": "#dbadff",
    "4": "#ff887c",
    "5": "#fbd75b",
    "6": "#ffb878",
    "7": "#46d6db",
    "8": "#e1e1e1",
    "9": "#5484ed",
    "10": "#51b749",
    "11": "#dc2127",
}
_RESPONSE = {"accepted": "accepted", "tentative": "tentative", "declined": "declined"}
# Key of a rendered group naming the fields its write sends: an answer to an invitation sends
# only the attendees (an invitee may not change anything else: forbiddenForNonOrganizer).
PATCH_FIELDS = "patch_fields"
# Key of a rendered group whose write is only the end-user's answer: the e-mail of the self
# attendee. Its PATCH sends that attendee alone with `attendeesOmitted`, Google's way to
# update one participant, so that another attendee's answer given meanwhile is not
# overwritten by the list as we last read it.
SELF_ANSWER = "self_answer"


def _moment(value: str, tzid: str) -> dict:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    zone = tzid if tzid and tzid not in ("UTC", "Etc/UTC", "GMT") else "UTC"
    instant = parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {"dateTime": instant, "timeZone": zone, "date": None}


def _apply(event: dict, desired: Mapping, *, exists: bool, uid: str = "") -> None:
    # events.patch merges nested objects: a switch between timed and all-day must clear the
    # other kind of time explicitly.
    if desired.get("is_all_day"):
        event["start"] = {"date": desired["start_date"], "dateTime": None, "timeZone": None}
        event["end"] = {"date": desired["end_date"], "dateTime": None, "timeZone": None}
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
    if desired.get("color"):
        event["colorId"] = nearest_color_id(desired["color"])
    reminders = desired.get("reminders")
    if reminders is not None and not (exists and desired.get("reminders_create_only")):
        event["reminders"] = {
            "useDefault": False,
            "overrides": [{"method": "popup", "minutes": int(m)} for m in reminders],
        }
    _apply_attendees(event, desired)
    _apply_recurrence(event, desired)
    _apply_conferencing(event, desired, uid=uid)


def _apply_recurrence(event: dict, desired: Mapping) -> None:
    """A managed series' rule as Google's RFC 5545 `recurrence` lines (None: a single event);
    an external event's desired state has no `recurrence`, and its series is left alone."""
    if "recurrence" not in desired:
        return
    rule = desired["recurrence"]
    if not rule:
        if event.get("recurrence"):
            event["recurrence"] = None  # cleared by the PATCH
        return
    tzid = desired.get("tzid") or "Etc/UTC"
    text = recurrence.rrule(rule, tzid=tzid, is_all_day=bool(desired.get("is_all_day")))
    event["recurrence"] = [f"RRULE:{text}"]


def _apply_conferencing(event: dict, desired: Mapping, *, uid: str) -> None:
    """`explicit`: the integrator's link as a third-party conference (an add-on solution with
    one video entry point); `default`: a Google Meet created by Google (a createRequest keyed
    by the event, so a retried write asks for the same meeting; Google may answer `pending`
    and add the link later, which the next sync reads); `none`: removed."""
    conferencing = desired.get("conferencing")
    if conferencing is None:
        return
    held = event.get("conferenceData") or None
    profile = conferencing.get("profile_id")
    if profile == "none":
        event["conferenceData"] = None
    elif profile == "explicit":
        name = conferencing.get("provider_description") or "Conference"
        wanted = {
            "conferenceSolution": {"key": {"type": "addOn"}, "name": name},
            "entryPoints": [
                {"entryPointType": "video", "uri": conferencing["join_url"], "label": name}
            ],
        }
        if _explicit_view(held) != _explicit_view(wanted):
            event["conferenceData"] = wanted
    elif not (held and (held.get("createRequest") or held.get("entryPoints"))):
        # A meeting Google made (or is making) for this event is kept as it is.
        event["conferenceData"] = {
            "createRequest": {
                "requestId": f"calsync-{uid}"[:64],
                "conferenceSolutionKey": {"type": "hangoutsMeet"},
            }
        }


def _explicit_view(conference: dict | None):
    if not conference:
        return None
    points = [(p.get("entryPointType"), p.get("uri")) for p in conference.get("entryPoints") or []]
    return ((conference.get("conferenceSolution") or {}).get("name"), points)


def nearest_color_id(hex_color: str) -> str:
    """The Google event colour closest to `#rrggbb` (in RGB); Google offers eleven."""

    def rgb(value: str) -> tuple[int, int, int]:
        value = value.lstrip("#")
        return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)

    wanted = rgb(hex_color)
    return min(
        EVENT_COLORS,
        key=lambda cid: sum(
            (a - b) ** 2 for a, b in zip(rgb(EVENT_COLORS[cid]), wanted, strict=True)
        ),
    )


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
    """The fields we manage, in a form that compares equal when Google holds the same state in
    its own notation (offsets instead of Z, absent instead of null)."""
    view = {name: (event or {}).get(name) for name in MANAGED}
    for name in ("start", "end"):
        view[name] = _time_view(view[name])
    return view


def _time_view(value: dict | None):
    if not value:
        return None
    if value.get("date"):
        return ("date", value["date"])
    moment = datetime.fromisoformat(value["dateTime"].replace("Z", "+00:00"))
    return ("dateTime", moment.astimezone(UTC), value.get("timeZone") or "UTC")


def render_event(*, desired: Mapping, current: str, context: WriteContext) -> Rendered:
    """The group whose master holds `desired`. Raises InvalidData, KeyError/ValueError (a
    desired state without valid times)."""
    _refuse_instances(context)
    group = normalize.load(current) if current else normalize.new_group()
    master = copy.deepcopy(group.get("master")) if group.get("master") else None
    if current and master is None:
        raise InvalidData("the event's series master is not visible in this calendar")
    before = _managed(master)
    event = master or {}
    _apply(event, desired, exists=master is not None, uid=context.uid)
    changed = _managed(event) != before or master is None
    if not changed:
        return Rendered(payload=current, changed=False)
    # A series rule or a conference goes over the wire only when this write changes it.
    fields = [
        name for name in MANAGED if name not in CLEARABLE or event.get(name) != before.get(name)
    ]
    rendered = {**group, "master": event, PATCH_FIELDS: fields}
    return Rendered(payload=normalize.dump(rendered), changed=True)


def render_participation(*, status: str, current: str, context: WriteContext) -> Rendered:
    """The self attendee's responseStatus set on the master. Raises InvalidData (not invited,
    unknown status)."""
    _refuse_instances(context)
    answer = _RESPONSE.get(status)
    if answer is None:
        raise InvalidData(f"unknown participation status {status!r}")
    group = normalize.load(current)
    master = copy.deepcopy(group.get("master") or {})
    found = changed = None
    for attendee in master.get("attendees") or []:
        if attendee.get("self") or (attendee.get("email") or "").lower() in context.self_emails:
            found = attendee.get("email") or ""
            if attendee.get("responseStatus") != answer:
                attendee["responseStatus"] = answer
                changed = True
    if found is None:
        raise InvalidData("the calendar owner is not an attendee of this event")
    if not changed:
        return Rendered(payload=current, changed=False)
    folded = group.get(PATCH_FIELDS, [])  # an upsert folded in sends its fields too
    fields = sorted({*folded, "attendees"})
    rendered = {**group, "master": master, PATCH_FIELDS: fields}
    if not folded and found:
        rendered[SELF_ANSWER] = found
    return Rendered(payload=normalize.dump(rendered), changed=True)


def patch_body(payload: str) -> dict:
    """The fields this write sends, from the rendered master, as events.patch takes them."""
    group = normalize.load(payload)
    master = group.get("master") or {}
    if group.get(SELF_ANSWER) and group.get(PATCH_FIELDS) == ["attendees"]:
        me = group[SELF_ANSWER].lower()
        mine = [a for a in master.get("attendees") or [] if (a.get("email") or "").lower() == me]
        return {"attendees": mine, "attendeesOmitted": True}
    fields = group.get(PATCH_FIELDS) or MANAGED
    body = {name: master[name] for name in fields if master.get(name) is not None}
    for name in CLEARABLE:
        if name in fields and name in master and master[name] is None:
            body[name] = None
    return body


def _refuse_instances(context: WriteContext) -> None:
    """Writes to one instance of a series are not made here yet (the API refuses them first)."""
    if context.instance_start is not None:
        raise NotSupported("writing one instance of a recurring series")
