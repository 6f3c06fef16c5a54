"""Microsoft Graph v1.0 handlers: the user, calendars, events, calendarView and its delta
(https://learn.microsoft.com/graph/api/resources/calendar-overview).

Each handler runs under the sandbox's lock (unless marked ``unlocked``) and returns a
Response or raises GraphError. Paths are matched case-insensitively, as Graph does, under
``/v1.0/me`` or ``/v1.0/users/{id | userPrincipalName}``.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from datetime import datetime

from sync.sandbox.google import errors as google_errors
from sync.sandbox.google.server import Response
from sync.sandbox.google.util import opaque, random_token, unopaque
from sync.sandbox.microsoft import errors, events, zones
from sync.sandbox.microsoft.model import (
    CALENDARS_READ,
    CALENDARS_WRITE,
    SETTINGS_READ,
    USER_READ,
)

JSON_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
MAX_PAGE = 1000
_PREFERENCE = re.compile(r'([A-Za-z][\w.\-]*)\s*(?:=\s*("([^"]*)"|[^,;\s]+))?')


# --- request helpers ---
def ok(payload, status: int = 200, headers: dict | None = None) -> Response:
    body = (json.dumps(payload, indent=2) + "\n").encode()
    return Response(status, body, {"Content-Type": JSON_TYPE, **(headers or {})})


def read_json(request) -> dict:
    """The JSON object of a body (the shared Request's parser), or Graph's 400."""
    try:
        return request.json()
    except google_errors.ApiError as exc:
        raise errors.unparsable_body() from exc


def preferences(request) -> dict[str, str]:
    """The Prefer header(s) as {lower-cased name: value}."""
    values = request.headers.get_all("Prefer") or []
    found = {}
    for match in _PREFERENCE.finditer(", ".join(values)):
        value = match.group(3) if match.group(3) is not None else (match.group(2) or "")
        found[match.group(1).lower()] = value
    return found


def rendering(sb, request, calendar, applied: list[str] | None = None) -> events.Rendering:
    """How this request wants events rendered (Prefer: outlook.timezone, body type, $select)."""
    prefs = preferences(request)
    out = events.Rendering(owner_email=calendar.owner_email)
    owner = sb._users.get(calendar.owner_email)
    out.personal = bool(owner and owner.personal)
    zone_name = prefs.get("outlook.timezone")
    zone = zones.resolve(zone_name) if zone_name else None
    if zone is not None:
        out.zone, out.zone_name = zone, zone_name
    kind = (prefs.get("outlook.body-content-type") or "").lower()
    out.body_type = kind if kind in ("text", "html") else None
    select = request.arg("$select")
    if select:
        out.select = [name.strip() for name in select.split(",") if name.strip()]
    if applied is not None:
        if kind in ("text", "html"):
            applied.append(f'outlook.body-content-type="{kind}"')
        if prefs.get("idtype", "").lower() == "immutableid":
            applied.append('IdType="ImmutableId"')
    return out


def applied_header(applied: list[str]) -> dict:
    return {"Preference-Applied": ", ".join(applied)} if applied else {}


def _int_arg(request, name: str, default: int, cap: int) -> int:
    value = request.arg(name)
    if value is None:
        return default
    if not value.isdigit():
        raise errors.bad_request(f"Invalid value '{value}' for query option '{name}'.")
    return min(int(value), cap)


def _unsupported_queries(request) -> None:
    for name in ("$filter", "$search", "$expand"):
        if request.arg(name) is not None:
            raise errors.bad_request(
                f"The query option '{name}' is not supported by the sandbox.",
                "ErrorInvalidUrlQuery",
            )


def link(sb, request, **params) -> str:
    """A nextLink/deltaLink: this request's path with `params` as its query."""
    # request.path is as the client sent it (percent-encoded): decode before encoding once.
    path = urllib.parse.quote(urllib.parse.unquote(request.path), safe="/=()'-_.")
    return f"{sb.url}{path}?" + urllib.parse.urlencode(params, safe="$:")


def page(sb, request, items: list, default: int, cap: int = MAX_PAGE) -> tuple[list, dict]:
    """$top/$skip paging; the envelope's @odata.nextLink when more is left."""
    top = _int_arg(request, "$top", default, cap) or default
    skip = _int_arg(request, "$skip", 0, 10**9)
    chunk = items[skip : skip + top]
    extra = {}
    if skip + top < len(items):
        params = {k: v[0] for k, v in request.query.items() if k not in ("$skip", "$top")}
        extra["@odata.nextLink"] = link(sb, request, **params, **{"$top": top, "$skip": skip + top})
    return chunk, extra


def window(request) -> tuple[datetime, datetime]:
    low, high = request.arg("startDateTime"), request.arg("endDateTime")
    if not low or not high:
        raise errors.invalid_parameter(
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime."
        )
    try:
        return events.parse_offset(low), events.parse_offset(high)
    except ValueError as exc:
        raise errors.invalid_parameter(
            "The value of the 'StartDateTime' or 'EndDateTime' parameter is not a valid date-time."
        ) from exc


# --- the user ---
def mailbox(sb, request, uid: str | None, scopes: set[str] = CALENDARS_READ):
    """(access token, user) for /me or /users/{uid}: only one's own mailbox."""
    token = sb._authenticate(request)
    sb._require(token, scopes)
    user = sb._users[token.grant.email]
    if uid is not None and uid.lower() not in (user.id.lower(), user.email, user.oid):
        raise errors.access_denied()
    return token, user


def render_user(sb, user) -> dict:
    context = {"@odata.context": f"{sb.url}/v1.0/$metadata#users/$entity"}
    if user.personal:
        return {
            **context,
            "displayName": user.name,
            "surname": user.surname or None,
            "givenName": user.given_name or None,
            "id": user.id,
            "userPrincipalName": user.email,
            "businessPhones": [],
            "jobTitle": None,
            "mail": user.mail,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
        }
    return {
        **context,
        "businessPhones": [],
        "displayName": user.name,
        "givenName": user.given_name or None,
        "jobTitle": None,
        "mail": user.mail,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "surname": user.surname or None,
        "userPrincipalName": user.email,
        "id": user.id,
    }


def me(sb, request, uid=None):
    _, user = mailbox(sb, request, uid, USER_READ)
    return ok(render_user(sb, user))


def mailbox_settings(sb, request, uid=None):
    _, user = mailbox(sb, request, uid, SETTINGS_READ)
    body = {
        "@odata.context": f"{sb.url}/v1.0/$metadata#users('{user.id}')/mailboxSettings",
        "timeZone": zones.windows_name(user.time_zone),
        "dateFormat": "yyyy-MM-dd",
        "timeFormat": "HH:mm",
        "language": {"locale": "en-US", "displayName": "English (United States)"},
        "workingHours": {
            "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "startTime": "08:00:00.0000000",
            "endTime": "17:00:00.0000000",
            "timeZone": {"name": zones.windows_name(user.time_zone)},
        },
    }
    return ok(body)


def userinfo(sb, request):
    token = sb._authenticate(request)
    user = sb._users[token.grant.email]
    body = {"sub": user.oid, "name": user.name, "family_name": user.surname}
    body.update({"given_name": user.given_name, "email": user.email})
    return ok(body)


# --- calendars ---
def calendars_list(sb, request, uid=None):
    _unsupported_queries(request)
    _, user = mailbox(sb, request, uid)
    items = [sb._render_calendar(c, user.email) for c in sb._calendars_of(user.email)]
    chunk, extra = page(sb, request, items, 10)
    context = f"{sb.url}/v1.0/$metadata#users('{user.id}')/calendars"
    return ok({"@odata.context": context, "value": chunk, **extra})


def calendar_get(sb, request, uid=None, cid=None):
    _, user = mailbox(sb, request, uid)
    calendar, _ = sb._calendar_for(user.email, cid)
    context = f"{sb.url}/v1.0/$metadata#users('{user.id}')/calendars/$entity"
    return ok({"@odata.context": context, **sb._render_calendar(calendar, user.email)})


def calendar_create(sb, request, uid=None):
    _, user = mailbox(sb, request, uid, CALENDARS_WRITE)
    body = read_json(request)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise errors.invalid_request("The calendar must have a name.")
    if any(c.name == name for c in sb._calendars_of(user.email) if c.owner_email == user.email):
        raise errors.GraphError(
            409, "ErrorFolderExists", "A folder with the specified name already exists."
        )
    known = {"name", "color", "hexColor"}
    extra = set(body) - known - {"@odata.type"}
    if extra:
        raise errors.unknown_property(sorted(extra)[0], "microsoft.graph.calendar")
    rendered = sb.add_calendar(user.email, name=name, color=body.get("color"))
    context = f"{sb.url}/v1.0/$metadata#users('{user.id}')/calendars/$entity"
    return ok({"@odata.context": context, **rendered}, 201)


# --- events ---
def _context(sb, user) -> str:
    return f"{sb.url}/v1.0/$metadata#users('{user.id}')/events/$entity"


def _check_if_match(request, item) -> None:
    wanted = request.header("If-Match")
    if wanted is None or wanted.strip() == "*":
        return
    tags = [t.strip().removeprefix("W/").strip('"') for t in wanted.split(",")]
    if item.change_key not in tags:
        raise errors.precondition_failed()


def events_list(sb, request, uid=None, cid=None):
    _unsupported_queries(request)
    _, user = mailbox(sb, request, uid)
    calendar, _ = sb._calendar_for(user.email, cid)  # /me/events: the default calendar
    out = rendering(sb, request, calendar)
    stored = sorted(calendar.events.values(), key=lambda s: s.order)
    items = [events.render(events.item_of(s), out) for s in stored if s.master_id is None]
    chunk, extra = page(sb, request, items, 10)
    context = f"{sb.url}/v1.0/$metadata#users('{user.id}')/events"
    return ok({"@odata.context": context, "value": chunk, **extra})


def event_create(sb, request, uid=None, cid=None):
    _, user = mailbox(sb, request, uid, CALENDARS_WRITE)
    calendar, member = sb._calendar_for(user.email, cid)
    if not member.can_edit:
        raise errors.access_denied()
    body = read_json(request)
    applied: list[str] = []
    out = rendering(sb, request, calendar, applied)
    transaction = body.get("transactionId")
    if isinstance(transaction, str) and transaction:
        found = sb._by_transaction(user.email, transaction)
        if found is not None:
            owner_calendar, stored = found
            out = rendering(sb, request, owner_calendar)
            item = events.item_of(stored)
            return ok(
                {"@odata.context": _context(sb, user), **events.render(item, out)},
                201,
                applied_header(applied),
            )
    stored = sb._create(calendar, events.changes_of(body))
    payload = {"@odata.context": _context(sb, user), **events.render(events.item_of(stored), out)}
    return ok(payload, 201, applied_header(applied))


def event_get(sb, request, uid=None, cid=None, eid=None):
    _, user = mailbox(sb, request, uid)
    calendar, _, _, item = sb._locate(user.email, cid, eid)
    applied: list[str] = []
    out = rendering(sb, request, calendar, applied)
    payload = {"@odata.context": _context(sb, user), **events.render(item, out)}
    return ok(payload, headers=applied_header(applied))


def _writable(sb, request, uid, cid, eid, *, if_match: bool = True):
    """(user, calendar, stored, item) of an event this request may change: write scope,
    an editable calendar, and a matching If-Match when one is sent."""
    _, user = mailbox(sb, request, uid, CALENDARS_WRITE)
    calendar, member, stored, item = sb._locate(user.email, cid, eid)
    if not member.can_edit:
        raise errors.access_denied()
    if if_match:
        _check_if_match(request, item)
    return user, calendar, stored, item


def event_patch(sb, request, uid=None, cid=None, eid=None):
    user, calendar, stored, item = _writable(sb, request, uid, cid, eid)
    changes = events.changes_of(read_json(request))
    updated = sb._update(calendar, stored, item, changes)
    applied: list[str] = []
    out = rendering(sb, request, calendar, applied)
    payload = {"@odata.context": _context(sb, user), **events.render(updated, out)}
    return ok(payload, headers=applied_header(applied))


def event_delete(sb, request, uid=None, cid=None, eid=None):
    _, calendar, stored, item = _writable(sb, request, uid, cid, eid)
    sb._delete(calendar, stored, item)
    return Response.empty(204)


RESPONSES = {
    "accept": "accepted",
    "tentativelyaccept": "tentativelyAccepted",
    "decline": "declined",
}


def event_respond(sb, request, uid=None, cid=None, eid=None, action=None):
    _, calendar, stored, item = _writable(sb, request, uid, cid, eid, if_match=False)
    body = read_json(request)
    extra = set(body) - {"comment", "sendResponse", "proposedNewTime"}
    if extra:
        raise errors.bad_request(f"The parameter '{sorted(extra)[0]}' is not in scope.")
    if "sendResponse" in body and not isinstance(body["sendResponse"], bool):
        raise errors.bad_literal(body["sendResponse"], "Edm.Boolean")
    organizer = item.data["organizer"]["emailAddress"]["address"].lower()
    if organizer == calendar.owner_email.lower():
        raise errors.invalid_request(
            "Your request can't be completed. You can't respond to a meeting you organized."
        )
    sb._respond(calendar, stored, item, RESPONSES[action.lower()])
    return Response(202, b"", {})


def event_instances(sb, request, uid=None, cid=None, eid=None):
    _, user = mailbox(sb, request, uid)
    calendar, _, stored, item = sb._locate(user.email, cid, eid)
    low, high = window(request)
    out = rendering(sb, request, calendar)
    items = []
    if item.type == "seriesMaster":
        items = [
            events.render(i, out)
            for i in events.view(calendar, low, high)
            if i.master_id == stored.id
        ]
    chunk, extra = page(sb, request, items, 10)
    context = f"{sb.url}/v1.0/$metadata#Collection(event)"
    return ok({"@odata.context": context, "value": chunk, **extra})


# --- calendarView ---
def calendar_view(sb, request, uid=None, cid=None):
    _unsupported_queries(request)
    _, user = mailbox(sb, request, uid)
    calendar, _ = sb._calendar_for(user.email, cid)
    low, high = window(request)
    applied: list[str] = []
    out = rendering(sb, request, calendar, applied)
    items = [events.render(item, out) for item in events.view(calendar, low, high)]
    chunk, extra = page(sb, request, items, 10)
    context = f"{sb.url}/v1.0/$metadata#users('{user.id}')/calendarView"
    body = {"@odata.context": context, "value": chunk, **extra}
    return ok(body, headers=applied_header(applied))


def _bad_token(name: str) -> errors.GraphError:
    return errors.bad_request(
        f"The value of the '{name}' parameter is not valid.", "ErrorInvalidUrlQuery"
    )


def _decode_token(value: str, name: str, kind: str, calendar) -> dict:
    """A skip/delta token's payload; 400 when it is not one of ours (for this calendar)."""
    try:
        payload = unopaque(value)
    except ValueError as exc:
        raise _bad_token(name) from exc
    keys = {"t", "c", "g", "w", "k"}
    if not keys <= set(payload) or payload["t"] != kind or payload["c"] != calendar.id:
        raise _bad_token(name)
    if not isinstance(payload["g"], int) or not isinstance(payload["w"], list):
        raise _bad_token(name)
    if payload["g"] != calendar.generation:
        raise errors.sync_state_not_found(payload["g"], calendar.generation)
    return payload


def calendar_view_delta(sb, request, uid=None, cid=None):
    _, user = mailbox(sb, request, uid)
    calendar, _ = sb._calendar_for(user.email, cid)
    prefs = preferences(request)
    applied: list[str] = []
    size = sb.delta_page_size
    wanted = prefs.get("odata.maxpagesize", "")
    if wanted.isdigit() and int(wanted) > 0:
        size = min(int(wanted), MAX_PAGE)
        applied.append(f"odata.maxpagesize={size}")
    out = rendering(sb, request, calendar, applied)
    applied.insert(0, "odata.track-changes")
    skip, delta = request.arg("$skiptoken"), request.arg("$deltatoken")
    if skip is not None:
        payload = _decode_token(skip, "$skiptoken", "skip", calendar)
        offset = payload.get("o")
        round_ = sb._delta_rounds.get(payload["k"])
        if round_ is None or not isinstance(offset, int):
            raise errors.sync_state_not_found(payload["g"], calendar.generation)
    else:
        if delta is not None:
            payload = _decode_token(delta, "$deltatoken", "delta", calendar)
            snapshot = sb._delta_states.get(payload["k"])
            if snapshot is None:
                raise errors.sync_state_not_found(payload["g"], calendar.generation)
            low, high = (events.parse_offset(v) for v in payload["w"])
        else:
            low, high = window(request)
            snapshot = None
        round_ = _new_round(sb, calendar, low, high, snapshot)
        offset = 0
    entries = round_["entries"][offset : offset + size]
    base = {"t": "skip", "c": calendar.id, "g": calendar.generation, "w": round_["w"]}
    body: dict = {"@odata.context": f"{sb.url}/v1.0/$metadata#Collection(event)"}
    if offset + size < len(round_["entries"]):
        token = opaque({**base, "k": round_["key"], "o": offset + size})
        body["@odata.nextLink"] = link(sb, request, **{"$skiptoken": token})
    else:
        token = opaque({**base, "t": "delta", "k": round_["state"]})
        body["@odata.deltaLink"] = link(sb, request, **{"$deltatoken": token})
    partial = sb.delta_partial_updates and round_["incremental"]
    body["value"] = [
        (events.partial(entry) if partial else events.render(entry, out))
        if isinstance(entry, events.Item)
        else events.removed(entry)
        for entry in entries
    ]
    return ok(body, headers=applied_header(applied))


def _new_round(sb, calendar, low, high, snapshot: dict | None) -> dict:
    """One sync round: what changed in the window since `snapshot` (everything when None),
    stored so that its pages are stable, and the state its deltaLink will compare with."""
    items = events.view(calendar, low, high)
    current = {item.id: item.change_key for item in items}
    if snapshot is None:
        entries: list = list(items)
    else:
        entries = [item for item in items if snapshot.get(item.id) != item.change_key]
        entries += [event_id for event_id in snapshot if event_id not in current]
    state_key = random_token("", 12)
    sb._delta_states[state_key] = current
    round_ = {
        "key": random_token("", 12),
        "state": state_key,
        "entries": entries,
        "incremental": snapshot is not None,
        "w": [
            events.format_offset(low, fraction=False),
            events.format_offset(high, fraction=False),
        ],
    }
    sb._delta_rounds[round_["key"]] = round_
    return round_


_ME = r"(?i)^/v1\.0/(?:me|users/(?P<uid>[^/]+))"
_CAL = r"(?:/calendars/(?P<cid>[^/]+)|/calendar)?"
_EVENT = _ME + _CAL + r"/events/(?P<eid>[^/]+)"
ROUTES = [
    ("GET", _ME + r"$", me),
    ("GET", _ME + r"/mailboxSettings$", mailbox_settings),
    ("GET", r"(?i)^/oidc/userinfo$", userinfo),
    ("GET", _ME + r"/calendars$", calendars_list),
    ("POST", _ME + r"/calendars$", calendar_create),
    ("GET", _ME + r"(?:/calendars/(?P<cid>[^/]+)|/calendar)$", calendar_get),
    ("GET", _ME + _CAL + r"/events$", events_list),
    ("POST", _ME + _CAL + r"/events$", event_create),
    ("GET", _EVENT + r"$", event_get),
    ("PATCH", _EVENT + r"$", event_patch),
    ("DELETE", _EVENT + r"$", event_delete),
    ("POST", _EVENT + r"/(?P<action>accept|tentativelyAccept|decline)$", event_respond),
    ("GET", _EVENT + r"/instances$", event_instances),
    ("GET", _ME + _CAL + r"/calendarView$", calendar_view),
    ("GET", _ME + _CAL + r"/calendarView/delta$", calendar_view_delta),
]
