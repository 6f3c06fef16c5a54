"""Calendar API v3 handlers (https://developers.google.com/calendar/api/v3/reference).

Each handler runs under the sandbox's lock and returns a Response or raises ApiError.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from datetime import UTC, datetime

from sync.sandbox.google import errors, events
from sync.sandbox.google.model import (
    AUTH,
    CALENDAR_COLORS,
    EVENT_COLORS,
    ROLES,
    Channel,
    ListEntry,
    UserList,
)
from sync.sandbox.google.server import Response
from sync.sandbox.google.util import (
    b64url,
    digest,
    format_dt,
    get_zone,
    opaque,
    parse_rfc3339,
    unopaque,
    zone_is_known,
)

CALENDAR = AUTH + "calendar"
READONLY = AUTH + "calendar.readonly"
EVENTS = AUTH + "calendar.events"
EVENTS_READONLY = AUTH + "calendar.events.readonly"
EVENTS_READ = {
    CALENDAR,
    READONLY,
    EVENTS,
    EVENTS_READONLY,
    EVENTS + ".owned",
    EVENTS + ".owned.readonly",
}
EVENTS_WRITE = {CALENDAR, EVENTS, EVENTS + ".owned"}
LIST_READ = {
    CALENDAR,
    READONLY,
    AUTH + "calendar.calendarlist",
    AUTH + "calendar.calendarlist.readonly",
}
LIST_WRITE = {CALENDAR, AUTH + "calendar.calendarlist"}
CALENDARS_READ = EVENTS_READ | {AUTH + "calendar.calendars", AUTH + "calendar.calendars.readonly"}
CALENDARS_WRITE = {CALENDAR, AUTH + "calendar.calendars", AUTH + "calendar.app.created"}
FREEBUSY = EVENTS_READ | {AUTH + "calendar.freebusy", AUTH + "calendar.events.freebusy"}
ANY_CALENDAR = (
    EVENTS_READ | LIST_READ | CALENDARS_READ | FREEBUSY | {AUTH + "calendar.settings.readonly"}
)

# Parameters Google refuses next to a syncToken ("to ensure consistency of the client state").
SYNC_RESTRICTED = (
    "iCalUID", "orderBy", "privateExtendedProperty", "q", "sharedExtendedProperty",
    "timeMin", "timeMax", "updatedMin",
)  # fmt: skip
# Parameters that do not change what a listing returns (left out of a page token's check).
NOT_SEMANTIC = {"pageToken", "alt", "prettyPrint", "fields", "key", "access_token", "quotaUser"}
DEFAULT_TTL = 604800  # one week
MAX_TTL = 2592000
HORIZON = 366 * 86400  # how far singleEvents expands an open-ended series
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --- parameters ---
def bool_param(request, name: str, default=None):
    value = request.arg(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise errors.invalid_param(name)
    return value.lower() == "true"


def int_param(request, name: str, default: int, *, low: int, cap: int) -> int:
    value = request.arg(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise errors.invalid_param(name) from exc
    if number < low:
        raise errors.invalid_param(
            name, f"Invalid value '{value}'. Values must be within the range: [{low}, {cap}]"
        )
    return min(number, cap)


def time_param(request, name: str) -> datetime | None:
    value = request.arg(name)
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise errors.bad_request() from exc


def response_zone(sb, request, calendar):
    name = request.arg("timeZone")
    if name is None:
        return sb._zone(calendar)
    zone = get_zone(name)
    if zone is None:
        raise errors.invalid_param("timeZone")
    return zone


def query_hash(request) -> str:
    items = sorted((k, tuple(v)) for k, v in request.query.items() if k not in NOT_SEMANTIC)
    return digest(repr(items))


def decode_page(request, params_hash: str):
    token = request.arg("pageToken")
    if token is None:
        return None, None
    try:
        payload = unopaque(token)
        if payload.get("h") != params_hash:
            raise ValueError("page token of another query")
        return tuple(payload["k"]), payload["s"]
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.invalid_param("pageToken") from exc


def check_writer(entry: ListEntry) -> None:
    if entry.access_role not in ("owner", "writer"):
        raise errors.writer_access_required()


def check_send_updates(request) -> None:
    value = request.arg("sendUpdates")
    if value is not None and value not in ("all", "externalOnly", "none"):
        raise errors.invalid_param("sendUpdates")
    bool_param(request, "sendNotifications")


def conference_version(request) -> int:
    value = request.arg("conferenceDataVersion", "0")
    if value not in ("0", "1"):
        raise errors.invalid_param("conferenceDataVersion")
    return int(value)


def list_etag(*parts) -> str:
    return f'"p{digest(*parts, length=14)}"'


def take_page(items: list, after, max_results: int):
    items.sort(key=lambda item: item[0])
    if after is not None:
        items = [item for item in items if item[0] > after]
    return items[:max_results], len(items) > max_results


def decode_sync(token: str, owner: str, generation: int, seq: int) -> int:
    try:
        payload = unopaque(token)
    except ValueError as exc:
        raise errors.full_sync_required() from exc
    since = payload.get("s")
    if (
        payload.get("c") != owner
        or payload.get("g") != generation
        or not isinstance(since, int)
        or since > seq
    ):
        raise errors.full_sync_required()
    return since


# --- calendarList ---
def calendar_list(sb, request):
    token = sb._authenticate(request)
    sb._require(token, LIST_READ)
    email = token.grant.email
    user_list = sb._lists.get(email, UserList())
    max_results = int_param(request, "maxResults", 100, low=1, cap=250)
    show_deleted = bool_param(request, "showDeleted")
    show_hidden = bool_param(request, "showHidden")
    min_role = request.arg("minAccessRole")
    if min_role is not None and min_role not in ROLES:
        raise errors.invalid_param("minAccessRole")
    sync_token = request.arg("syncToken")
    since = None
    if sync_token is not None:
        if min_role is not None or show_deleted is False or show_hidden is False:
            raise errors.invalid_param(
                "syncToken", "Sync token cannot be used with other request restrictions."
            )
        since = decode_sync(sync_token, f"list:{email}", user_list.generation, user_list.seq)
    params_hash = query_hash(request)
    after, snapshot = decode_page(request, params_hash)
    snapshot = user_list.seq if snapshot is None else snapshot
    items = []
    for index, (calendar_id, entry) in enumerate(user_list.entries.items()):
        calendar = sb._calendars[calendar_id]
        if since is not None:
            if not since < entry.seq <= snapshot:
                continue
            key = (entry.seq, calendar_id)
        else:
            if entry.deleted and not show_deleted:
                continue
            if entry.hidden and not show_hidden:
                continue
            if min_role and ROLES.index(entry.access_role) < ROLES.index(min_role):
                continue
            key = (index, calendar_id)
        items.append((key, sb._render_entry(entry, calendar)))
    page, more = take_page(items, after, max_results)
    body = {"kind": "calendar#calendarList", "etag": list_etag(email, user_list.seq)}
    if more:
        body["nextPageToken"] = opaque({"k": list(page[-1][0]), "h": params_hash, "s": snapshot})
    else:
        body["nextSyncToken"] = opaque(
            {"c": f"list:{email}", "s": snapshot, "g": user_list.generation}
        )
    body["items"] = [item for _, item in page]
    return Response.json(200, body)


def calendar_list_get(sb, request, cal):
    token = sb._authenticate(request)
    sb._require(token, LIST_READ)
    calendar, entry = sb._calendar_for(token.grant.email, cal)
    if entry.deleted:
        raise errors.not_found()
    return Response.json(200, sb._render_entry(entry, calendar))


def calendar_list_delete(sb, request, cal):
    token = sb._authenticate(request)
    sb._require(token, LIST_WRITE)
    calendar, entry = sb._calendar_for(token.grant.email, cal)
    if entry.primary:
        raise errors.bad_request("Cannot remove the primary calendar from the calendar list.")
    entry.deleted = True
    entry.hidden = False
    sb._touch_entry(token.grant.email, entry)
    return Response.empty()


def calendar_list_watch(sb, request):
    token = sb._authenticate(request)
    sb._require(token, LIST_READ)
    email = token.grant.email
    return open_channel(
        sb, request, token, "calendarList", email, "/calendar/v3/users/me/calendarList"
    )


# --- calendars ---
def calendars_get(sb, request, cal):
    token = sb._authenticate(request)
    sb._require(token, CALENDARS_READ)
    calendar, _ = sb._calendar_for(token.grant.email, cal)
    return Response.json(200, sb._render_calendar(calendar))


def calendars_insert(sb, request):
    token = sb._authenticate(request)
    sb._require(token, CALENDARS_WRITE)
    body = request.json()
    summary = body.get("summary")
    if not summary:
        raise errors.required("Missing title.")
    zone = body.get("timeZone")
    if zone is not None and not zone_is_known(zone):
        raise errors.invalid("Invalid time zone.")
    entry = sb.add_calendar(
        token.grant.email,
        summary=summary,
        access_role="owner",
        time_zone=zone or "UTC",
        description=body.get("description") or None,
    )
    calendar = sb._calendars[entry["id"]]
    if body.get("location"):
        calendar.location = body["location"]
    return Response.json(200, sb._render_calendar(calendar))


def calendars_delete(sb, request, cal):
    token = sb._authenticate(request)
    sb._require(token, CALENDARS_WRITE)
    calendar, entry = sb._calendar_for(token.grant.email, cal)
    if entry.access_role != "owner":
        raise errors.ApiError(
            403, "requiredAccessLevel", "You need to have owner access to this calendar."
        )
    if entry.primary:
        raise errors.bad_request("Cannot delete primary calendar.")
    calendar.deleted = True
    for email, user_list in sb._lists.items():
        if calendar.id in user_list.entries:
            user_list.entries[calendar.id].deleted = True
            sb._touch_entry(email, user_list.entries[calendar.id])
    return Response.empty()


def colors(sb, request):
    token = sb._authenticate(request)
    sb._require(token, ANY_CALENDAR)
    body = {
        "kind": "calendar#colors",
        "updated": "2012-02-14T00:00:00.000Z",
        "calendar": {
            k: {"background": v, "foreground": "#1d1d1d"} for k, v in CALENDAR_COLORS.items()
        },
        "event": {k: {"background": v, "foreground": "#1d1d1d"} for k, v in EVENT_COLORS.items()},
    }
    return Response.json(200, body)


# --- push ---
def open_channel(sb, request, token, kind: str, target: str, path: str):
    body = request.json()
    channel_id = body.get("id")
    if not channel_id or not isinstance(channel_id, str):
        raise errors.required("Required", "id")
    if body.get("type") not in ("web_hook", "webhook"):
        raise errors.ApiError(
            400, "push.channelTypeUnknown", f"Unknown channel type: {body.get('type')}"
        )
    address = body.get("address")
    if not address or not isinstance(address, str):
        raise errors.required("Required", "address")
    parts = urllib.parse.urlsplit(address)
    # Google requires HTTPS; the sandbox also accepts plain HTTP to a loopback receiver.
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
        raise errors.ApiError(
            400, "push.webhookUrlNotHttps", f"WebHook callback must be HTTPS: {address}"
        )
    ttl = (body.get("params") or {}).get("ttl", DEFAULT_TTL)
    try:
        ttl = int(ttl)
        if ttl < 1:
            raise ValueError
    except (TypeError, ValueError) as exc:
        raise errors.invalid_param("params.ttl") from exc
    key = (token.grant.client_id, channel_id)
    now_ms = sb._now_ms()
    existing = sb._channels.get(key)
    if existing is not None and not existing.stopped and existing.expiration_ms > now_ms:
        raise errors.ApiError(400, "channelIdNotUnique", "Channel id not unique")
    resource_id = b64url(hashlib.sha256(f"{kind}:{target}".encode()).digest())[:27]
    channel = Channel(
        id=channel_id,
        resource_id=resource_id,
        resource_uri=sb._resource_uri(path),
        kind=kind,
        target=target,
        address=address,
        token=body.get("token"),
        expiration_ms=now_ms + min(ttl, MAX_TTL) * 1000,
        client_id=token.grant.client_id,
        email=token.grant.email,
        message_number=1,
    )
    sb._channels[key] = channel
    sb._push(channel, "sync")
    result = {
        "kind": "api#channel",
        "id": channel.id,
        "resourceId": channel.resource_id,
        "resourceUri": channel.resource_uri,
    }
    if channel.token:
        result["token"] = channel.token
    result["expiration"] = str(channel.expiration_ms)
    return Response.json(200, result)


def channels_stop(sb, request):
    token = sb._authenticate(request)
    sb._require(token, ANY_CALENDAR)
    body = request.json()
    channel_id, resource_id = body.get("id"), body.get("resourceId")
    channel = sb._channels.get((token.grant.client_id, channel_id))
    if channel is None or channel.stopped or channel.resource_id != resource_id:
        project = token.grant.client_id.split("-")[0].split(".")[0]
        raise errors.ApiError(
            404, "notFound", f"Channel '{channel_id}' not found for project '{project}'"
        )
    channel.stopped = True
    return Response.empty(204)


# --- freeBusy ---
def free_busy(sb, request):
    token = sb._authenticate(request)
    sb._require(token, FREEBUSY)
    body = request.json()
    try:
        time_min = parse_rfc3339(body.get("timeMin") or "")
        time_max = parse_rfc3339(body.get("timeMax") or "")
    except ValueError as exc:
        raise errors.bad_request() from exc
    if time_max <= time_min:
        raise errors.time_range_empty("timeMax")
    low, high = time_min.timestamp(), time_max.timestamp()
    result = {}
    for item in body.get("items") or []:
        calendar_id = (item or {}).get("id", "")
        try:
            calendar, _ = sb._calendar_for(token.grant.email, calendar_id)
        except errors.ApiError:
            result[calendar_id] = {
                "errors": [{"domain": "global", "reason": "notFound"}],
                "busy": [],
            }
            continue
        zone = sb._zone(calendar)
        spans = []
        for stored in calendar.events.values():
            if stored.cancelled or stored.data.get("transparency") == "transparent":
                continue
            if stored.is_master:
                expanded = events.occurrences(stored.data, zone, high, sb.recurrence_engine)
                for start, begins, ends in expanded:
                    if events.instance_id(stored.data["id"], start) not in calendar.events:
                        spans.append((begins, ends))
            else:
                spans.append(events.span(stored.data, zone))
        busy = []
        for start, end in sorted(
            (max(s, low), min(e, high)) for s, e in spans if e > low and s < high
        ):
            if busy and start <= busy[-1][1]:
                busy[-1][1] = max(busy[-1][1], end)
            else:
                busy.append([start, end])
        result[calendar.id if calendar_id != "primary" else "primary"] = {
            "busy": [
                {
                    "start": format_dt(datetime.fromtimestamp(s, UTC)),
                    "end": format_dt(datetime.fromtimestamp(e, UTC)),
                }
                for s, e in busy
            ]
        }
    body = {
        "kind": "calendar#freeBusy",
        "timeMin": format_dt(time_min.astimezone(UTC)),
        "timeMax": format_dt(time_max.astimezone(UTC)),
        "calendars": result,
    }
    return Response.json(200, body)


_CAL = r"^/calendar/v3/calendars/(?P<cal>[^/]+)"
ROUTES = [
    ("GET", r"^/calendar/v3/users/me/calendarList$", calendar_list),
    ("POST", r"^/calendar/v3/users/me/calendarList/watch$", calendar_list_watch),
    ("GET", r"^/calendar/v3/users/me/calendarList/(?P<cal>[^/]+)$", calendar_list_get),
    ("DELETE", r"^/calendar/v3/users/me/calendarList/(?P<cal>[^/]+)$", calendar_list_delete),
    ("POST", r"^/calendar/v3/calendars$", calendars_insert),
    ("GET", _CAL + r"$", calendars_get),
    ("DELETE", _CAL + r"$", calendars_delete),
    ("POST", r"^/calendar/v3/channels/stop$", channels_stop),
    ("GET", r"^/calendar/v3/colors$", colors),
    ("POST", r"^/calendar/v3/freeBusy$", free_busy),
]
