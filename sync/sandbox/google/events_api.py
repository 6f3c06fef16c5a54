"""Calendar API v3 events.* handlers (https://developers.google.com/calendar/api/v3/reference/events).

Each handler runs under the sandbox's lock and returns a Response or raises ApiError.
"""

from __future__ import annotations

import copy
import secrets
import string
from datetime import datetime

from sync.sandbox.google import errors, events
from sync.sandbox.google.calendar_api import (
    EVENTS_READ,
    EVENTS_WRITE,
    HORIZON,
    SYNC_RESTRICTED,
    bool_param,
    check_send_updates,
    check_writer,
    conference_version,
    decode_page,
    decode_sync,
    int_param,
    list_etag,
    open_channel,
    query_hash,
    response_zone,
    take_page,
    time_param,
)
from sync.sandbox.google.server import Response
from sync.sandbox.google.util import EVENT_ID_RE, format_dt, format_ms, new_id, opaque


# --- events.list ---
class _Filters:
    def __init__(self, request, single: bool, show_deleted):
        self.single = single
        self.show_deleted = show_deleted
        self.time_min = time_param(request, "timeMin")
        self.time_max = time_param(request, "timeMax")
        self.updated_min = time_param(request, "updatedMin")
        if self.time_min and self.time_max and self.time_max <= self.time_min:
            raise errors.time_range_empty("timeMax")
        self.tmin = self.time_min.timestamp() if self.time_min else None
        self.tmax = self.time_max.timestamp() if self.time_max else None
        self.updated_min_ms = int(self.updated_min.timestamp() * 1000) if self.updated_min else None
        self.terms = (request.arg("q") or "").lower().split()
        self.ical_uid = request.arg("iCalUID")
        self.event_types = request.args("eventTypes")
        self.private = [p.partition("=") for p in request.args("privateExtendedProperty")]
        self.shared = [p.partition("=") for p in request.args("sharedExtendedProperty")]

    def overlaps(self, start: float, end: float) -> bool:
        # timeMax bounds the start and timeMin the end, both exclusive.
        return (self.tmax is None or start < self.tmax) and (self.tmin is None or end > self.tmin)

    def matches(self, data: dict) -> bool:
        if self.ical_uid is not None and data.get("iCalUID") != self.ical_uid:
            return False
        if self.event_types and data.get("eventType", "default") not in self.event_types:
            return False
        properties = data.get("extendedProperties") or {}
        for scope, wanted in (("private", self.private), ("shared", self.shared)):
            values = properties.get(scope) or {}
            if any(values.get(name) != value for name, _, value in wanted):
                return False
        if self.terms:
            people = [
                data.get("organizer") or {},
                data.get("creator") or {},
                *(data.get("attendees") or []),
            ]
            text = " ".join(
                [str(data.get(f) or "") for f in ("summary", "description", "location")]
                + [f"{p.get('email', '')} {p.get('displayName', '')}" for p in people]
            ).lower()
            if not all(term in text for term in self.terms):
                return False
        return True


def _start_ms(data: dict, zone) -> int:
    if not data.get("start"):
        return 0
    return int(events.span(data, zone)[0] * 1000)


def _series_overlaps(sb, data: dict, zone, filters: _Filters) -> bool:
    if filters.tmin is None and filters.tmax is None:
        return True
    bound = filters.tmax if filters.tmax is not None else filters.tmin + 11 * HORIZON
    for _, start, end in events.occurrences(data, zone, bound, sb.recurrence_engine):
        if filters.overlaps(start, end):
            return True
    return False


def events_list(sb, request, cal):
    token = sb._authenticate(request)
    sb._require(token, EVENTS_READ)
    calendar, entry = sb._calendar_for(token.grant.email, cal)
    out_zone = response_zone(sb, request, calendar)
    zone = sb._zone(calendar)
    max_results = int_param(request, "maxResults", 250, low=1, cap=2500)
    single = bool_param(request, "singleEvents", False)
    show_deleted = bool_param(request, "showDeleted")
    order_by = request.arg("orderBy")
    if order_by not in (None, "startTime", "updated"):
        raise errors.invalid_param("orderBy")
    if order_by == "startTime" and not single:
        raise errors.bad_request(
            "The requested ordering is not available for the particular query."
        )
    filters = _Filters(request, single, show_deleted)
    sync_token = request.arg("syncToken")
    restricted = any(request.arg(name) is not None for name in SYNC_RESTRICTED)
    if sync_token is not None and (restricted or show_deleted is False):
        raise errors.invalid_param(
            "syncToken", "Sync token cannot be used with other request restrictions."
        )
    params_hash = query_hash(request)
    after, snapshot = decode_page(request, params_hash)
    snapshot = calendar.seq if snapshot is None else snapshot
    horizon = (filters.tmin if filters.tmin is not None else sb.now()) + HORIZON
    bound = filters.tmax if filters.tmax is not None else horizon
    items = []
    if sync_token is not None:
        since = decode_sync(sync_token, calendar.id, calendar.generation, calendar.seq)
        for stored in calendar.events.values():
            if not since < stored.seq <= snapshot:
                continue
            if single and stored.is_master and not stored.cancelled:
                for _, instance in events.instances(
                    stored.data, zone, horizon, sb.recurrence_engine
                ):
                    if instance["id"] not in calendar.events:
                        key = (stored.seq, _start_ms(instance, zone), instance["id"])
                        items.append((key, instance, stored.etag, False))
                continue
            key = (stored.seq, _start_ms(stored.data, zone), stored.data["id"])
            items.append((key, stored.data, stored.etag, stored.cancelled))
    else:
        for stored in calendar.events.values():
            data = stored.data
            if single and stored.is_master:
                if stored.cancelled:
                    continue
                expanded = events.instances(
                    data, zone, bound, sb.recurrence_engine, ending_after=filters.tmin
                )
                for _, instance in expanded:
                    if instance["id"] in calendar.events:
                        continue  # an exception, listed on its own
                    if filters.overlaps(*events.span(instance, zone)) and filters.matches(instance):
                        items.append(
                            (_key(order_by, stored, instance, zone), instance, stored.etag, False)
                        )
                continue
            if stored.cancelled:
                deleted_since = (
                    filters.updated_min_ms is not None
                    and stored.updated_ms >= filters.updated_min_ms
                )
                if single:
                    keep = (show_deleted and not stored.is_master) or deleted_since
                else:
                    keep = show_deleted or deleted_since or bool(data.get("recurringEventId"))
                if not keep:
                    continue
            elif filters.updated_min_ms is not None and stored.updated_ms < filters.updated_min_ms:
                continue
            if stored.is_master:
                if not _series_overlaps(sb, data, zone, filters):
                    continue
            elif data.get("start") and not filters.overlaps(*events.span(data, zone)):
                continue
            if not filters.matches(data):
                continue
            items.append((_key(order_by, stored, data, zone), data, stored.etag, stored.cancelled))
    page, more = take_page(items, after, max_results)
    body = _events_envelope(calendar, entry, out_zone, params_hash)
    if more:
        body["nextPageToken"] = opaque({"k": list(page[-1][0]), "h": params_hash, "s": snapshot})
    else:
        body["nextSyncToken"] = opaque({"c": calendar.id, "s": snapshot, "g": calendar.generation})
    body["items"] = [
        events.render(
            data,
            etag=etag,
            calendar_id=calendar.id,
            zone=out_zone,
            minimal=minimal,
            access_role=entry.access_role,
        )
        for _, data, etag, minimal in page
    ]
    return Response.json(200, body)


def _key(order_by, stored, data, zone):
    start = _start_ms(data, zone)
    if order_by == "startTime":
        return (start, stored.order, data["id"])
    if order_by == "updated":
        return (stored.updated_ms, stored.order, data["id"])
    return (stored.order, start, data["id"])


def _events_envelope(calendar, entry, out_zone, *salt) -> dict:
    body = {
        "kind": "calendar#events",
        "etag": list_etag(calendar.id, calendar.seq, *salt),
        "summary": entry.summary_override or calendar.summary,
    }
    if calendar.description:
        body["description"] = calendar.description
    body["updated"] = format_ms((calendar.updated_ms or 0) / 1000)
    body["timeZone"] = calendar.time_zone
    body["accessRole"] = entry.access_role
    body["defaultReminders"] = copy.deepcopy(entry.default_reminders)
    return body


def events_instances(sb, request, cal, eid):
    token = sb._authenticate(request)
    sb._require(token, EVENTS_READ)
    calendar, entry = sb._calendar_for(token.grant.email, cal)
    out_zone = response_zone(sb, request, calendar)
    zone = sb._zone(calendar)
    stored = calendar.events.get(eid)
    if stored is None:
        raise errors.not_found()
    if stored.cancelled:
        raise errors.gone_deleted()
    max_results = int_param(request, "maxResults", 250, low=1, cap=2500)
    show_deleted = bool_param(request, "showDeleted", False)
    filters = _Filters(request, True, show_deleted)
    original = request.arg("originalStart")
    params_hash = query_hash(request)
    after, _ = decode_page(request, params_hash)
    items = []
    if stored.is_master:
        horizon = (filters.tmin if filters.tmin is not None else sb.now()) + HORIZON
        bound = filters.tmax if filters.tmax is not None else horizon
        for start, instance in events.instances(stored.data, zone, bound, sb.recurrence_engine):
            data, etag, cancelled = instance, stored.etag, False
            exception = calendar.events.get(instance["id"])
            if exception is not None:
                data, etag, cancelled = exception.data, exception.etag, exception.cancelled
                if cancelled and not show_deleted:
                    continue
            if original is not None and original not in (
                events.stamp_of(start),
                format_dt(start) if isinstance(start, datetime) else start.isoformat(),
            ):
                continue
            if not filters.overlaps(*events.span(data, zone)):
                continue
            items.append(((_start_ms(instance, zone), instance["id"]), data, etag, cancelled))
    else:
        items.append(((0, eid), stored.data, stored.etag, False))
    page, more = take_page(items, after, max_results)
    body = _events_envelope(calendar, entry, out_zone, "instances", eid)
    if more:
        body["nextPageToken"] = opaque(
            {"k": list(page[-1][0]), "h": params_hash, "s": calendar.seq}
        )
    body["items"] = [
        events.render(
            d,
            etag=e,
            calendar_id=calendar.id,
            zone=out_zone,
            minimal=m,
            access_role=entry.access_role,
        )
        for _, d, e, m in page
    ]
    return Response.json(200, body)


# --- single events ---
def _lookup(sb, calendar, eid):
    stored, virtual = sb._find(calendar, eid)
    if stored is not None:
        return stored.data, stored.etag, stored
    if virtual is not None:
        return virtual[0], virtual[1].etag, None
    raise errors.not_found()


def _event_response(sb, calendar, stored, out_zone, entry) -> Response:
    rendered = sb._render_stored(calendar, stored, out_zone, entry.access_role)
    return Response.json(200, rendered, {"ETag": stored.etag})


def events_get(sb, request, cal, eid):
    token = sb._authenticate(request)
    sb._require(token, EVENTS_READ)
    calendar, entry = sb._calendar_for(token.grant.email, cal)
    out_zone = response_zone(sb, request, calendar)
    data, etag, _ = _lookup(sb, calendar, eid)
    if request.header("If-None-Match") == etag:
        return Response(304, b"", {"ETag": etag})
    rendered = events.render(
        data, etag=etag, calendar_id=calendar.id, zone=out_zone, access_role=entry.access_role
    )
    return Response.json(200, rendered, {"ETag": etag})


def _apply_conference(
    data: dict, body: dict, version: int, current: dict | None, *, pending: bool = False
) -> None:
    """conferenceData as events.insert/patch/update apply it (conferenceDataVersion=1). A
    createRequest is answered `success` with a Meet at once, or, with `pending` (the sandbox's
    conferences_pending), `pending` without a link: Google creates the conference
    asynchronously, and the event changes again when it is ready (complete_conferences)."""
    if version == 0:  # "Version 0 assumes no conference data support and ignores conference data"
        data.pop("conferenceData", None)
        data.pop("hangoutLink", None)
        for name in ("conferenceData", "hangoutLink"):
            if current is not None and name in current:
                data[name] = copy.deepcopy(current[name])
        return
    conference = body.get("conferenceData")
    if not isinstance(conference, dict):
        return
    create = conference.get("createRequest")
    if not isinstance(create, dict):
        return
    existing = (current or {}).get("conferenceData") or {}
    if existing.get("createRequest", {}).get("requestId") == create.get("requestId") and existing:
        data["conferenceData"] = copy.deepcopy(existing)
        return
    solution = (create.get("conferenceSolutionKey") or {}).get("type", "hangoutsMeet")
    if pending:
        data.pop("hangoutLink", None)
        data["conferenceData"] = {
            "createRequest": {
                "requestId": create.get("requestId"),
                "conferenceSolutionKey": {"type": solution},
                "status": {"statusCode": "pending"},
            }
        }
        return
    complete_conference(data, create.get("requestId"), solution)


def complete_conference(data: dict, request_id, solution: str = "hangoutsMeet") -> None:
    """A created Meet: the link, its video entry point, `success`."""
    letters = string.ascii_lowercase
    code = "-".join("".join(secrets.choice(letters) for _ in range(n)) for n in (3, 4, 3))
    link = f"https://meet.google.com/{code}"
    data["hangoutLink"] = link
    data["conferenceData"] = {
        "createRequest": {
            "requestId": request_id,
            "conferenceSolutionKey": {"type": solution},
            "status": {"statusCode": "success"},
        },
        "entryPoints": [
            {"entryPointType": "video", "uri": link, "label": f"meet.google.com/{code}"}
        ],
        "conferenceSolution": {
            "key": {"type": solution},
            "name": "Google Meet",
            "iconUri": "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png",
        },
        "conferenceId": code,
    }


def events_insert(sb, request, cal):
    token = sb._authenticate(request)
    sb._require(token, EVENTS_WRITE)
    calendar, entry = sb._calendar_for(token.grant.email, cal)
    check_writer(entry)
    check_send_updates(request)
    version = conference_version(request)
    out_zone = response_zone(sb, request, calendar)
    body = request.json()
    event_id = body.get("id")
    if event_id is not None:
        if not isinstance(event_id, str) or not EVENT_ID_RE.match(event_id):
            raise errors.invalid("Invalid resource id value.")
        if event_id in calendar.events:
            raise errors.duplicate()
    else:
        event_id = new_id()
    ical_uid = body.get("iCalUID")
    if ical_uid and any(s.data.get("iCalUID") == ical_uid for s in calendar.events.values()):
        raise errors.duplicate()
    data = sb._new_event_data(calendar, body, token.grant.email, event_id)
    _apply_conference(data, body, version, None, pending=sb.conferences_pending)
    events.validate(data, is_instance=False)
    stored = sb._commit(calendar, data)
    return _event_response(sb, calendar, stored, out_zone, entry)


def events_import(sb, request, cal):
    """events.import: an event by its iCalUID; importing it again updates it."""
    token = sb._authenticate(request)
    sb._require(token, EVENTS_WRITE)
    calendar, entry = sb._calendar_for(token.grant.email, cal)
    check_writer(entry)
    version = conference_version(request)
    out_zone = response_zone(sb, request, calendar)
    body = request.json()
    ical_uid = body.get("iCalUID")
    if not ical_uid:
        raise errors.required("Missing iCalUID.")
    existing = next(
        (
            s
            for s in calendar.events.values()
            if s.data.get("iCalUID") == ical_uid and not s.data.get("recurringEventId")
        ),
        None,
    )
    if existing is not None:
        kept = {
            k: v for k, v in existing.data.items() if k in ("id", "creator", "iCalUID", "sequence")
        }
        data = {**kept, **events.writable(body)}
        data.setdefault("status", "confirmed")
        data["organizer"] = copy.deepcopy(body.get("organizer") or existing.data.get("organizer"))
        current = existing.data
    else:
        event_id = body.get("id") or new_id()
        if not EVENT_ID_RE.match(str(event_id)):
            raise errors.invalid("Invalid resource id value.")
        if event_id in calendar.events:
            raise errors.duplicate()
        data = sb._new_event_data(calendar, body, token.grant.email, event_id)
        if isinstance(body.get("organizer"), dict) and body["organizer"].get("email"):
            data["organizer"] = copy.deepcopy(body["organizer"])
        current = None
    _apply_conference(data, body, version, current, pending=sb.conferences_pending)
    events.validate(data, is_instance=False)
    if current is not None:
        sb._bump_sequence(current, data)
    stored = sb._commit(calendar, data)
    return _event_response(sb, calendar, stored, out_zone, entry)


# Kept by a PUT (events.update) whatever the body says.
SERVER_KEPT = ("id", "creator", "organizer", "iCalUID", "recurringEventId", "originalStartTime")
SERVER_KEPT += ("sequence", "eventType", "conferenceData", "hangoutLink")


def _modify(sb, request, cal, eid, *, patch: bool):
    token = sb._authenticate(request)
    sb._require(token, EVENTS_WRITE)
    calendar, entry = sb._calendar_for(token.grant.email, cal)
    check_writer(entry)
    check_send_updates(request)
    version = conference_version(request)
    out_zone = response_zone(sb, request, calendar)
    body = request.json()
    current, etag, _ = _lookup(sb, calendar, eid)
    if_match = request.header("If-Match")
    if if_match and if_match != "*" and if_match != etag:
        raise errors.precondition_failed()
    sequence = body.get("sequence")
    if isinstance(sequence, int) and sequence < current.get("sequence", 0):
        raise errors.invalid(
            "Invalid sequence value. The specified sequence number is below the current "
            "sequence number of the resource."
        )
    if patch:
        data = events.merge_patch(current, events.writable(body))
        if body.get("attendeesOmitted") and isinstance(body.get("attendees"), list):
            # Only the attendees given are updated; the others stay (an answer alone).
            data["attendees"] = events.merge_attendees(current.get("attendees"), body["attendees"])
    else:
        data = {k: copy.deepcopy(current[k]) for k in SERVER_KEPT if k in current}
        data.update(events.writable(body))
        data.setdefault("status", "confirmed")
        data.setdefault("reminders", {"useDefault": True})
        data.setdefault("eventType", current.get("eventType", "default"))
    data.pop("attendeesOmitted", None)  # about a representation, never stored
    _apply_conference(data, body, version, current, pending=sb.conferences_pending)
    events.validate(data, is_instance=bool(data.get("recurringEventId")))
    sb._bump_sequence(current, data)
    stored = sb._commit(calendar, data)
    return _event_response(sb, calendar, stored, out_zone, entry)


def events_patch(sb, request, cal, eid):
    return _modify(sb, request, cal, eid, patch=True)


def events_update(sb, request, cal, eid):
    return _modify(sb, request, cal, eid, patch=False)


def events_delete(sb, request, cal, eid):
    token = sb._authenticate(request)
    sb._require(token, EVENTS_WRITE)
    calendar, entry = sb._calendar_for(token.grant.email, cal)
    check_writer(entry)
    check_send_updates(request)
    data, etag, stored = _lookup(sb, calendar, eid)
    if stored is not None and stored.cancelled:
        raise errors.gone_deleted()
    if_match = request.header("If-Match")
    if if_match and if_match != "*" and if_match != etag:
        raise errors.precondition_failed()
    sb._cancel(calendar, data)
    return Response.empty(204)


# --- push ---
def events_watch(sb, request, cal):
    token = sb._authenticate(request)
    sb._require(token, EVENTS_READ)
    calendar, _ = sb._calendar_for(token.grant.email, cal)
    path = f"/calendar/v3/calendars/{cal}/events"
    return open_channel(sb, request, token, "events", calendar.id, path)


_CAL = r"^/calendar/v3/calendars/(?P<cal>[^/]+)"
ROUTES = [
    ("GET", _CAL + r"/events$", events_list),
    ("POST", _CAL + r"/events$", events_insert),
    ("POST", _CAL + r"/events/import$", events_import),
    ("POST", _CAL + r"/events/watch$", events_watch),
    ("GET", _CAL + r"/events/(?P<eid>[^/]+)/instances$", events_instances),
    ("GET", _CAL + r"/events/(?P<eid>[^/]+)$", events_get),
    ("PATCH", _CAL + r"/events/(?P<eid>[^/]+)$", events_patch),
    ("PUT", _CAL + r"/events/(?P<eid>[^/]+)$", events_update),
    ("DELETE", _CAL + r"/events/(?P<eid>[^/]+)$", events_delete),
]
