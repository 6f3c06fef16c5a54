"""Desired state -> a Google event: the fields we manage, merged into what Google holds.

The rendered payload is a series group (see normalize), so that the reconciler can cache what
it wrote like any synced resource; `patch_body` is what goes over the wire: only the fields we
manage, so that everything else (conference data, extended properties, other attendees'
answers) stays as Google has it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

from sync.providers import recurrence
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
# Key of a rendered group whose write changes one instance of the series: that instance's
# Google event id (`<series id>_<original start>`), the target of its PATCH; the instance's
# content is in the group's exceptions under that id.
INSTANCE = "instance_id"


def _moment(value: str, tzid: str) -> dict:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    zone = tzid if tzid and tzid not in ("UTC", "Etc/UTC", "GMT") else "UTC"
    return {"dateTime": _utc_text(parsed), "timeZone": zone, "date": None}


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
    """The group whose master holds `desired` (for one instance of a series, whose exception
    for that instance does, see _render_instance). Raises InvalidData, KeyError/ValueError (a
    desired state without valid times)."""
    if context.instance_start is not None:
        return _render_instance(desired, current, context)
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
    """The self attendee's responseStatus set on the master (for one instance, on that
    instance's exception alone). Raises InvalidData (not invited, unknown status)."""
    answer = _RESPONSE.get(status)
    if answer is None:
        raise InvalidData(f"unknown participation status {status!r}")
    group = normalize.load(current)
    if context.instance_start is not None:
        instance_id, _held, master = _instance(group, context.instance_start)
    else:
        instance_id, master = "", copy.deepcopy(group.get("master") or {})
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
    rendered = _with_target(group, instance_id, master, fields)
    if not folded and found:
        rendered[SELF_ANSWER] = found
    return Rendered(payload=normalize.dump(rendered), changed=True)


def _render_instance(desired: Mapping, current: str, context: WriteContext) -> Rendered:
    """One instance of the series in `current`: its exception gets the desired content and
    times (made from the master's occurrence when Google holds none yet), or, for
    `delete_instance`, status cancelled, Google's way to remove one occurrence. The PATCH goes
    to the instance's own id; the master and the other instances are untouched."""
    group = normalize.load(current)
    instance_id, held, item = _instance(group, context.instance_start)
    if desired.get("delete_instance"):
        if held is not None and held.get("status") == "cancelled":
            return Rendered(payload=current, changed=False)
        item["status"] = "cancelled"
        fields = ["status"]
    else:
        before = _managed(item)
        _apply(item, desired, exists=True, uid=context.uid)
        if _managed(item) == before:
            return Rendered(payload=current, changed=False)
        fields = [n for n in MANAGED if n not in CLEARABLE or item.get(n) != before.get(n)]
    rendered = _with_target(group, instance_id, item, fields)
    return Rendered(payload=normalize.dump(rendered), changed=True)


def _with_target(group: dict, instance_id: str, event: dict, fields: list) -> dict:
    """The rendered group: `event` as its master, or as the exception `instance_id`."""
    if not instance_id:
        return {**group, "master": event, PATCH_FIELDS: fields}
    exceptions = {**group["exceptions"], instance_id: event}
    return {**group, "exceptions": exceptions, PATCH_FIELDS: fields, INSTANCE: instance_id}


def _instance(group: dict, original: datetime) -> tuple[str, dict | None, dict]:
    """(instance id, the exception Google holds for it or None, a copy of its content to
    change): the instance starting originally at `original` (UTC, as the cache keeps it)."""
    master = group.get("master")
    if not master or not master.get("recurrence"):
        raise InvalidData("the series of this instance is not in the resource")
    zone = group.get("time_zone") or "UTC"
    instance_id = _instance_id(master, original)
    for key, held in group["exceptions"].items():
        moved = held.get("originalStartTime") and normalize.original_start(held, zone)
        if key == instance_id or moved == original.astimezone(UTC):
            return key, held, copy.deepcopy(held)
    return instance_id, None, _occurrence(master, instance_id, original, zone)


def _instance_id(master: dict, original: datetime) -> str:
    """Google's id of an instance: the series id and the original start in UTC (the date for
    an all-day series; the cache keeps an all-day instance as its UTC midnight)."""
    if master["start"].get("date"):
        return f"{master['id']}_{_all_day(original):%Y%m%d}"
    return f"{master['id']}_{original.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _occurrence(master: dict, instance_id: str, original: datetime, zone: str) -> dict:
    """The instance as Google shows one it holds no exception for: the master's content at
    the instance's times, no rule, no etag of its own."""
    item = copy.deepcopy(master)
    for name in ("recurrence", "etag"):
        item.pop(name, None)
    item.update(id=instance_id, recurringEventId=master["id"])
    length = normalize.when(master["end"], zone) - normalize.when(master["start"], zone)
    if master["start"].get("date"):
        day = _all_day(original)
        item["start"] = item["originalStartTime"] = {"date": day.isoformat()}
        item["end"] = {"date": (day + length).isoformat()}
        return item
    start_zone = master["start"].get("timeZone")
    start = {"dateTime": _utc_text(original), **({"timeZone": start_zone} if start_zone else {})}
    end_zone = master.get("end", {}).get("timeZone")
    end = {
        "dateTime": _utc_text(original + length),
        **({"timeZone": end_zone} if end_zone else {}),
    }
    item.update(start=start, end=end, originalStartTime=dict(start))
    return item


def _all_day(original: datetime) -> date:
    """The date of an all-day instance the cache keeps as its midnight (UTC midnight for
    Google; within half a day of it whatever the zone)."""
    return (original.astimezone(UTC) + timedelta(hours=12)).date()


def patch_body(payload: str) -> dict:
    """The fields this write sends, from the rendered master, as events.patch takes them."""
    group = normalize.load(payload)
    master = target_of(group)
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


def target_of(group: dict) -> dict:
    """The item a rendered group's write changes: the instance it names, else the master."""
    if group.get(INSTANCE):
        return group["exceptions"][group[INSTANCE]]
    return group.get("master") or {}
