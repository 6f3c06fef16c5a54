"""`MicrosoftSandbox`: the state, the control API tests use, and the server's lifecycle."""

from __future__ import annotations

import copy
import secrets
import threading
import uuid
from datetime import datetime

from sync.sandbox.google.model import Fault
from sync.sandbox.google.sandbox import GoogleSandbox
from sync.sandbox.google.server import Request, Response, compile_routes
from sync.sandbox.google.util import digest, random_token
from sync.sandbox.microsoft import errors, events, graph, oauth, server, subscriptions
from sync.sandbox.microsoft.model import (
    DEFAULT_SCOPES,
    MSA_TENANT,
    OIDC_SCOPES,
    USER_READ,
    AccessToken,
    Calendar,
    Delivery,
    Membership,
    StoredEvent,
    User,
    is_personal,
    scope_list,
)

_UNSET = object()
_NAMESPACE = uuid.UUID("5f0c6c3e-7d55-4a8e-9d59-0b6f3c1a2e77")
# Outlook's calendar colours (calendarColor) and the hex codes shown for them.
CALENDAR_COLORS = {
    "auto": "",
    "lightBlue": "#a6d1f5",
    "lightGreen": "#87d28e",
    "lightOrange": "#fcab73",
    "lightGray": "#c0c0c0",
    "lightYellow": "#f4d07a",
    "lightTeal": "#6adbe0",
    "lightPink": "#f4a7cf",
    "lightBrown": "#d9b38c",
    "lightRed": "#f09999",
}
_COLOR_CYCLE = [name for name in CALENDAR_COLORS if name != "auto"]


def _new_id() -> str:
    """An Outlook-style item id: base64 (URL-safe alphabet) ending in '='."""
    return "AAMkAGI2" + random_token("", 30).replace("-", "a").replace("_", "b") + "AAA="


def _change_key() -> str:
    return "DwAAABYAAAA" + random_token("", 21).replace("-", "+").replace("_", "/")


def _ical_uid() -> str:
    return events.ICAL_PREFIX + "00000000" + secrets.token_hex(28).upper()


class MicrosoftSandbox:
    """An in-memory Microsoft identity platform (OAuth 2.0 v2.0) + Microsoft Graph v1.0
    calendar API served over HTTP on 127.0.0.1.

    Point MICROSOFT_LOGIN_URL and MICROSOFT_GRAPH_URL at `url`: one server answers both hosts,
    by path. Every control method is thread-safe.

    Settings (attributes, may be changed at any time):
      `auto_approve_as`: an email; the consent page is skipped and that user approves at once.
      `access_token_lifetime`: seconds (Microsoft: 3599, randomized between 60 and 90 minutes
        in reality).
      `revoke_rotated_refresh_tokens`: a refresh kills the refresh token it used (Microsoft's
        documented behaviour, the default False, keeps it valid until it expires or the
        grant is revoked; a new one is returned every time either way).
      `max_concurrent_per_mailbox`: Graph's Outlook limit of concurrent requests per app and
        mailbox (4); the next one answers 429 ApplicationThrottled. None disables it.
      `throttle_retry_after`: the Retry-After (seconds) of those 429s.
      `delta_page_size`: a calendarView delta page without `Prefer: odata.maxpagesize`.
      `delta_partial_updates`: incremental delta rounds list a changed item by its id and
        etag only (Graph documents that an updated item may carry only some properties; a
        client must then read the event).
      `max_subscription_minutes`: the longest event subscription (4230).
      `validation_timeout`: seconds a subscription's validation handshake may take (10).
    """

    # Lifecycle, clock, clients, grants, faults, the request log and the push queue's
    # accessors are the Google sandbox's own: the same attributes, a different protocol.
    start = GoogleSandbox.start
    stop = GoogleSandbox.stop
    __enter__ = GoogleSandbox.__enter__
    __exit__ = GoogleSandbox.__exit__
    now = GoogleSandbox.now
    advance = GoogleSandbox.advance
    add_client = GoogleSandbox.add_client
    _user = GoogleSandbox._user
    expire_access_tokens = GoogleSandbox.expire_access_tokens
    revoke = GoogleSandbox.revoke
    _live_grant = GoogleSandbox._live_grant
    clear_faults = GoogleSandbox.clear_faults
    _take_fault = GoogleSandbox._take_fault
    _log = GoogleSandbox._log
    _holding = GoogleSandbox._holding
    held_requests = GoogleSandbox.held_requests
    requests_log = GoogleSandbox.requests_log
    requests = GoogleSandbox.requests
    clear_requests_log = GoogleSandbox.clear_requests_log
    deliveries = GoogleSandbox.deliveries
    wait_for_push_idle = GoogleSandbox.wait_for_push_idle
    clear_deliveries = GoogleSandbox.clear_deliveries
    pause_push = GoogleSandbox.pause_push

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_concurrent_per_mailbox: int | None = 4,
        auto_approve_as: str | None = None,
        access_token_lifetime: int = 3599,
        revoke_rotated_refresh_tokens: bool = False,
        throttle_retry_after: float = 1,
        delta_page_size: int = 10,
        delta_partial_updates: bool = False,
        max_subscription_minutes: int = 4230,
        validation_timeout: float = 10.0,
        notification_timeout: float = 3.0,
        verbose: bool = False,
    ):
        self.host, self.port, self.verbose = host, port, verbose
        self.max_concurrent_per_mailbox = max_concurrent_per_mailbox
        self.auto_approve_as = auto_approve_as
        self.access_token_lifetime = access_token_lifetime
        self.revoke_rotated_refresh_tokens = revoke_rotated_refresh_tokens
        self.throttle_retry_after = throttle_retry_after
        self.delta_page_size = delta_page_size
        self.delta_partial_updates = delta_partial_updates
        self.max_subscription_minutes = max_subscription_minutes
        self.validation_timeout = validation_timeout
        self._lock = threading.RLock()
        self._offset = 0.0
        self._clients: dict = {}
        self._users: dict[str, User] = {}
        self._calendars: dict[str, Calendar] = {}
        self._grants: list = []
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict = {}
        self._codes: dict = {}
        self._subscriptions: dict[str, subscriptions.Subscription] = {}
        self._validations: list[dict] = []
        self._delta_states: dict[str, dict] = {}
        self._delta_rounds: dict[str, dict] = {}
        self._inflight: dict[tuple[str, str], int] = {}
        self._faults: list[Fault] = []
        self._log_entries: list = []
        self._held: list = []
        self._pusher = subscriptions.Notifier(notification_timeout)
        self._routes = compile_routes(oauth.ROUTES, graph.ROUTES, subscriptions.ROUTES)
        self._server = None
        self._thread = None

    @property
    def url(self) -> str:
        """The base URL of both hosts, login and Graph (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("MicrosoftSandbox is not started")
        return f"http://{self.host}:{self.port}"

    # --- users ---
    def add_user(
        self,
        email: str,
        name: str | None = None,
        *,
        personal: bool | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        mail=_UNSET,
        time_zone: str = "UTC",
        default_calendar: bool = True,
    ) -> User:
        """A Microsoft account with its default calendar ("Calendar").

        Personal accounts (outlook.com, hotmail.*, live.*, msn.com; or personal=True) sign in
        from the consumers tenant, have a 16-hex-digit id and, as Graph answers for most of
        them, no `mail` (userPrincipalName is the address). Work accounts get a GUID id and a
        tenant derived from their domain unless told.
        """
        with self._lock:
            email = email.lower()
            personal = is_personal(email) if personal is None else personal
            name = name or email.split("@")[0].replace(".", " ").title()
            given, _, surname = name.partition(" ")
            domain = email.rpartition("@")[2]
            if personal:
                uid = user_id or digest("cid", email, length=16)
                tenant = MSA_TENANT
            else:
                uid = user_id or str(uuid.uuid5(_NAMESPACE, f"user:{email}"))
                tenant = tenant_id or str(uuid.uuid5(_NAMESPACE, f"tenant:{domain}"))
            user = User(
                email=email,
                name=name,
                given_name=given,
                surname=surname,
                id=uid,
                tenant_id=tenant,
                personal=personal,
                mail=(None if personal else email) if mail is _UNSET else mail,
                time_zone=time_zone,
            )
            self._users[email] = user
            if default_calendar:
                self.add_calendar(email, name="Calendar", is_default=True)
            return user

    # --- calendars ---
    def add_calendar(
        self,
        email: str,
        calendar_id: str | None = None,
        name: str | None = None,
        *,
        can_edit: bool | None = None,
        can_share: bool | None = None,
        can_view_private_items: bool | None = None,
        is_default: bool | None = None,
        color: str | None = None,
        owner_email: str | None = None,
        owner_name: str | None = None,
    ) -> dict:
        """Put a calendar in `email`'s calendars and return it as Graph lists it for them.

        A new calendar (calendar_id None, or an id not seen yet) belongs to `email` unless
        `owner_email` says otherwise (a calendar shared by someone outside the sandbox, e.g.
        holidays). An existing calendar id shares that calendar with `email`, read-only unless
        can_edit=True. On a calendar `email` already has, the arguments given update it.
        """
        with self._lock:
            user = self._user(email)
            calendar = self._calendars.get(calendar_id) if calendar_id else None
            if color is not None and color not in CALENDAR_COLORS:
                raise ValueError(f"color must be one of {sorted(CALENDAR_COLORS)}")
            if calendar is None:
                owner = (owner_email or user.email).lower()
                owner_user = self._users.get(owner)
                if color is None:
                    count = len(self._calendars_of(user.email))
                    color = "auto" if is_default else _COLOR_CYCLE[count % len(_COLOR_CYCLE)]
                calendar = Calendar(
                    id=calendar_id or _new_id(),
                    name=name or "Calendar",
                    owner_email=owner,
                    owner_name=owner_name or (owner_user.name if owner_user else owner),
                    color=color,
                    hex_color=CALENDAR_COLORS[color],
                    change_key=_change_key(),
                )
                self._calendars[calendar.id] = calendar
            elif name is not None or color is not None:
                calendar.name = name if name is not None else calendar.name
                if color is not None:
                    calendar.color, calendar.hex_color = color, CALENDAR_COLORS[color]
                calendar.change_key = _change_key()
            member = calendar.members.get(user.email)
            if member is None:
                own = calendar.owner_email == user.email
                member = Membership(can_edit=own, can_share=own, can_view_private_items=own)
                calendar.members[user.email] = member
            flags = {
                "can_edit": can_edit,
                "can_share": can_share,
                "can_view_private_items": can_view_private_items,
                "is_default": is_default,
            }
            for attribute, value in flags.items():
                if value is not None:
                    setattr(member, attribute, value)
            if is_default:
                member.is_removable = False
                for other in self._calendars_of(user.email):
                    if other is not calendar:
                        other.members[user.email].is_default = False
            return self._render_calendar(calendar, user.email)

    def _calendars_of(self, email: str) -> list[Calendar]:
        """The calendars `email` sees, the default one first."""
        found = [c for c in self._calendars.values() if email in c.members]
        return sorted(found, key=lambda c: not c.members[email].is_default)

    def _calendar_for(self, email: str, calendar_id: str | None) -> tuple[Calendar, Membership]:
        """`email`'s calendar (their default one when None), or 404 ErrorItemNotFound."""
        if calendar_id is None:
            for calendar in self._calendars_of(email):
                if calendar.members[email].is_default:
                    return calendar, calendar.members[email]
            raise errors.item_not_found()
        calendar = self._calendars.get(calendar_id)
        if calendar is None or email not in calendar.members:
            raise errors.item_not_found()
        return calendar, calendar.members[email]

    def _render_calendar(self, calendar: Calendar, email: str) -> dict:
        member = calendar.members[email]
        owner = self._users.get(calendar.owner_email)
        providers = ["skypeForConsumer"] if owner and owner.personal else ["teamsForBusiness"]
        return {
            "id": calendar.id,
            "name": calendar.name,
            "color": calendar.color,
            "hexColor": calendar.hex_color,
            "groupClassId": "0006f0b7-0000-0000-c000-000000000046",
            "isDefaultCalendar": member.is_default,
            "changeKey": calendar.change_key,
            "canShare": member.can_share,
            "canViewPrivateItems": member.can_view_private_items,
            "canEdit": member.can_edit,
            "allowedOnlineMeetingProviders": providers,
            "defaultOnlineMeetingProvider": providers[0],
            "isTallyingResponses": True,
            "isRemovable": member.is_removable,
            "owner": {"name": calendar.owner_name, "address": calendar.owner_email},
        }

    # --- events (control API: edits "made by the user in Outlook") ---
    def put_event(self, email_or_calendar: str, calendar_id=None, event: dict | None = None):
        """Create or edit an event as if the user did it in Outlook; returns the event as
        GET /me/events/{id} renders it (in UTC).

        `put_event(email, calendar_id, event)` (calendar_id None: the default calendar) or
        `put_event(calendar_id_or_email, event)`. The body is a Graph event; an `id` that
        exists is patched (properties given replace), an occurrence's id (or a body with
        seriesMasterId + originalStart) makes that occurrence an exception, a new `id` is
        used as given. `organizer`, `responseStatus`, `isCancelled`, `iCalUId` and
        `onlineMeeting` may be set too (an invitation from someone else). Bumps the change key
        and notifies the calendar's subscriptions.
        """
        if isinstance(calendar_id, dict) and event is None:
            calendar_id, event = None, calendar_id
        with self._lock:
            calendar = self._target(email_or_calendar, calendar_id)
            body = copy.deepcopy(event or {})
            event_id = body.pop("id", None)
            master_id, original = body.pop("seriesMasterId", None), body.pop("originalStart", None)
            try:
                if event_id is None and master_id and original:
                    master = calendar.events.get(master_id)
                    if master is None:
                        raise KeyError(f"no series {master_id!r} in {calendar.id!r}")
                    stamp = events.stamp_of(
                        events.parse_offset(original), bool(master.data.get("isAllDay"))
                    )
                    event_id = events.occurrence_id(master_id, stamp)
                changes = events.changes_of(body, control=True)
                stored, item = events.find(calendar, event_id) if event_id else (None, None)
                if item is not None:
                    item = self._update(calendar, stored, item, changes)
                else:
                    item = events.item_of(self._create(calendar, changes, event_id=event_id))
            except errors.GraphError as exc:
                raise ValueError(exc.message) from exc
            return self._render(calendar, item)

    def delete_event(self, email_or_calendar: str, calendar_id=None, event_id=None) -> None:
        """Delete an event as the user would in Outlook: `delete_event(email, calendar_id,
        event_id)` or `delete_event(calendar_id_or_email, event_id)`. An occurrence's id
        cancels that occurrence; a master's deletes the whole series."""
        if event_id is None:
            calendar_id, event_id = None, calendar_id
        with self._lock:
            calendar = self._target(email_or_calendar, calendar_id)
            stored, item = events.find(calendar, event_id)
            if item is None:
                raise KeyError(f"no event {event_id!r} in {calendar.id!r}")
            self._delete(calendar, stored, item)

    def events(self, calendar_id: str) -> list[dict]:
        """Every stored event of a calendar (singles, series masters and exceptions; not
        expanded), in creation order. `calendar_id` may be a user's email."""
        with self._lock:
            calendar = self._target(calendar_id, None)
            stored = sorted(calendar.events.values(), key=lambda s: s.order)
            return [self._render(calendar, events.item_of(s)) for s in stored]

    def event(self, calendar_id: str, event_id: str) -> dict | None:
        """One event (or an occurrence of a series) as Graph returns it; None."""
        with self._lock:
            calendar = self._target(calendar_id, None)
            _, item = events.find(calendar, event_id)
            return self._render(calendar, item) if item is not None else None

    def calendar_view(self, calendar_id: str, start: datetime, end: datetime) -> list[dict]:
        """What calendarView answers for [start, end) (aware datetimes), unpaged."""
        with self._lock:
            calendar = self._target(calendar_id, None)
            return [self._render(calendar, i) for i in events.view(calendar, start, end)]

    def _target(self, who: str, calendar_id: str | None) -> Calendar:
        if calendar_id:
            calendar = self._calendars.get(calendar_id)
            if calendar is None:
                raise KeyError(f"no sandbox calendar {calendar_id!r}")
            return calendar
        if who in self._calendars:
            return self._calendars[who]
        return self._calendar_for(self._user(who).email, None)[0]

    def _render(self, calendar: Calendar, item: events.Item) -> dict:
        owner = self._users.get(calendar.owner_email)
        out = events.Rendering(
            owner_email=calendar.owner_email, personal=bool(owner and owner.personal)
        )
        return events.render(item, out)

    def _locate(self, email: str, calendar_id: str | None, event_id: str):
        """(calendar, membership, stored or None, Item) of an event `email` can see; 404."""
        if calendar_id is not None:
            calendars = [self._calendar_for(email, calendar_id)[0]]
        else:
            calendars = self._calendars_of(email)
        for calendar in calendars:
            stored, item = events.find(calendar, event_id)
            if item is not None:
                return calendar, calendar.members[email], stored, item
        raise errors.item_not_found()

    def _by_transaction(self, email: str, transaction_id: str):
        for calendar in self._calendars_of(email):
            for stored in calendar.events.values():
                if stored.data.get("transactionId") == transaction_id:
                    return calendar, stored
        return None

    # --- event writes (shared by the API and the control API; raise GraphError) ---
    def _create(self, calendar: Calendar, changes: dict, event_id: str | None = None):
        data = events.defaults(calendar.owner_email, calendar.owner_name)
        ical_uid = changes.pop("iCalUId", None) or _ical_uid()
        data.update(changes)
        self._complete(calendar, data)
        events.check(data, is_exception=False)
        now = self.now()
        stored = StoredEvent(
            id=event_id or _new_id(),
            data=data,
            change_key=_change_key(),
            created=now,
            modified=now,
            order=calendar.next_order,
            ical_uid=ical_uid,
        )
        calendar.next_order += 1
        calendar.events[stored.id] = stored
        self._notify(calendar, stored.id, stored.change_key, "created")
        return stored

    def _complete(self, calendar: Calendar, data: dict) -> None:
        """Computed properties: the owner's response, an online meeting's join URL."""
        organizer = data["organizer"]["emailAddress"]["address"].lower()
        if "responseStatus" not in data:
            response = "organizer" if organizer == calendar.owner_email else "notResponded"
            data["responseStatus"] = {"response": response, "time": events.NULL_TIME}
        if data.get("isOnlineMeeting") and not data.get("onlineMeeting"):
            owner = self._users.get(calendar.owner_email)
            if owner and owner.personal:
                data["onlineMeetingProvider"] = "skypeForConsumer"
                join = f"https://join.skype.com/{random_token('', 9)}"
            else:
                if data.get("onlineMeetingProvider") in (None, "unknown"):
                    data["onlineMeetingProvider"] = "teamsForBusiness"
                thread = random_token("", 24).replace("-", "a").replace("_", "b")
                join = (
                    f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{thread}%40thread.v2/0"
                )
            data["onlineMeeting"] = {"joinUrl": join}

    def _update(self, calendar: Calendar, stored, item: events.Item, changes: dict):
        """Apply `changes`; an occurrence (stored None) becomes an exception. -> Item."""
        now = self.now()
        if stored is None:  # an occurrence: it becomes an exception of its series
            master = calendar.events[item.master_id]
            data = copy.deepcopy(master.data)
            data.update(recurrence=None, transactionId=None)
            for name, moment in (("start", item.start), ("end", item.end)):
                zone = events.zone_of(master.data[name])
                local = moment.astimezone(zone).replace(tzinfo=None)
                data[name] = {
                    "dateTime": events.format_local(local),
                    "timeZone": master.data[name]["timeZone"],
                }
            data.update(changes)
            events.check(data, is_exception=True)
            exception = StoredEvent(
                id=item.id,
                data=data,
                change_key=_change_key(),
                created=master.created,
                modified=now,
                order=calendar.next_order,
                ical_uid=item.ical_uid,
                master_id=master.id,
                original_stamp=events.stamp_of(item.original_start, bool(data.get("isAllDay"))),
            )
            calendar.next_order += 1
            calendar.events[exception.id] = exception
            self._notify(calendar, master.id, master.change_key, "updated")
            return events.item_of(exception)
        data = copy.deepcopy(stored.data)
        ical_uid = changes.pop("iCalUId", None)
        data.update(changes)
        self._complete(calendar, data)
        events.check(data, is_exception=stored.master_id is not None)
        was_master = stored.is_master
        reshaped = any(stored.data.get(n) != data.get(n) for n in ("start", "end", "recurrence"))
        stored.data, stored.change_key, stored.modified = data, _change_key(), now
        stored.ical_uid = ical_uid or stored.ical_uid
        if was_master and reshaped:  # Outlook drops a series' exceptions when it is reshaped
            for other in [e for e in calendar.events.values() if e.master_id == stored.id]:
                del calendar.events[other.id]
            stored.cancelled.clear()
        target = calendar.events.get(stored.master_id) if stored.master_id else stored
        self._notify(calendar, target.id, target.change_key, "updated")
        return events.item_of(stored)

    def _delete(self, calendar: Calendar, stored, item: events.Item) -> None:
        if stored is None or stored.master_id is not None:  # one occurrence of a series
            master = calendar.events[item.master_id]
            if stored is not None:
                del calendar.events[stored.id]
                master.cancelled.add(stored.original_stamp)
            else:
                master.cancelled.add(
                    events.stamp_of(item.original_start, bool(master.data.get("isAllDay")))
                )
            self._notify(calendar, master.id, master.change_key, "updated")
            return
        del calendar.events[stored.id]
        for other in [e for e in calendar.events.values() if e.master_id == stored.id]:
            del calendar.events[other.id]
        self._notify(calendar, stored.id, stored.change_key, "deleted")

    def _respond(self, calendar: Calendar, stored, item: events.Item, response: str) -> None:
        status = {"response": response, "time": events.format_offset(self.now())}
        attendees = copy.deepcopy(item.data["attendees"])
        for attendee in attendees:
            if attendee["emailAddress"]["address"].lower() == calendar.owner_email:
                attendee["status"] = dict(status)
        self._update(calendar, stored, item, {"responseStatus": status, "attendees": attendees})

    # --- tokens ---
    def issue_tokens(self, email: str, client_id: str, scopes=DEFAULT_SCOPES, *, offline=True):
        """(access token, refresh token) for `email` at `client_id`, skipping the consent
        page (refresh token None when offline=False). Scopes may be short ('User.Read')."""
        granted = [s for s in scope_list(scopes) if s != "offline_access"]
        granted += ["offline_access"] if offline else []
        with self._lock:
            if client_id not in self._clients:
                raise KeyError(f"no sandbox client {client_id!r}; add_client() first")
            grant = self._live_grant(self._user(email).email, client_id)
            grant.scopes |= {s for s in granted if s not in OIDC_SCOPES}
            access = oauth.mint_access(self, grant, granted)
            refresh = oauth.mint_refresh(self, grant, granted) if offline else None
            return access.token, (refresh.token if refresh else None)

    @staticmethod
    def _bearer(request: Request) -> str:
        scheme, _, value = (request.header("Authorization") or "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    def _authenticate(self, request: Request) -> AccessToken:
        """The request's live access token, or Graph's 401 saying what is wrong with it."""
        value = self._bearer(request)
        token = self._access.get(value) if value else None
        if token is not None and token.alive(self.now()):
            return token
        raise errors.unauthenticated(
            "missing" if not value else "unknown" if not token else "expired"
        )

    @staticmethod
    def _require(token: AccessToken, allowed: set[str]) -> None:
        if not allowed.intersection(token.scopes):
            if allowed is USER_READ:
                raise errors.insufficient_privileges()
            raise errors.access_denied()

    # --- delta ---
    def expire_delta_tokens(self, calendar_id: str | None = None) -> None:
        """Delta and skip tokens issued so far answer 410 SyncStateNotFound (one calendar, or
        every calendar when None; `calendar_id` may be a user's email)."""
        with self._lock:
            targets = [self._target(calendar_id, None)] if calendar_id else self._calendars.values()
            for calendar in targets:
                calendar.generation += 1

    # --- subscriptions ---
    def subscriptions(self) -> list[dict]:
        """Every subscription created so far, as Graph renders it, plus `calendarId`,
        `user` and `active` (neither removed nor expired)."""
        with self._lock:
            now = self.now()
            result = []
            for sub in self._subscriptions.values():
                item = subscriptions.render(self, sub)
                item.pop("@odata.context")
                item.update(
                    calendarId=sub.calendar_id,
                    user=sub.email,
                    active=not sub.removed and sub.expires_at > now,
                )
                result.append(item)
            return result

    @property
    def validations(self) -> list[dict]:
        """Every validation handshake attempted: url, token, status, ok, error."""
        with self._lock:
            return [dict(v) for v in self._validations]

    def wait_for_deliveries(
        self, count: int, *, subscription_id: str | None = None, timeout: float = 5.0
    ) -> list[Delivery]:
        """Wait until `count` notifications (of one subscription) were delivered; returns them
        all (fewer on timeout)."""
        return self._pusher.wait(count, subscription_id, timeout)

    def send_lifecycle(self, subscription_id: str, event: str) -> None:
        """POST a lifecycle notification ("reauthorizationRequired", "subscriptionRemoved" or
        "missed") to the subscription's lifecycleNotificationUrl (its notificationUrl when it
        has none). subscriptionRemoved also ends the subscription."""
        if event not in subscriptions.LIFECYCLE_EVENTS:
            raise ValueError(f"event must be one of {subscriptions.LIFECYCLE_EVENTS}")
        with self._lock:
            sub = self._subscriptions.get(subscription_id)
            if sub is None:
                raise KeyError(f"no subscription {subscription_id!r}")
            body = subscriptions.lifecycle_notification(self, sub, event)
            url = sub.lifecycle_url or sub.notification_url
            self._pusher.notify(sub.id, "lifecycle", event, url, body)
            if event == "subscriptionRemoved":
                sub.removed = True

    def _notify(self, calendar: Calendar, event_id: str, change_key: str, change_type: str):
        now = self.now()
        for sub in self._subscriptions.values():
            if sub.removed or sub.expires_at <= now or sub.calendar_id != calendar.id:
                continue
            if change_type in sub.change_types:
                body = subscriptions.change_notification(
                    self, sub, change_type, calendar, event_id, change_key
                )
                self._pusher.notify(sub.id, "change", change_type, sub.notification_url, body)

    # --- faults, concurrency and dispatch ---
    def fail_next(
        self,
        method: str | None,
        path_regex: str,
        status: int | None = None,
        code: str | None = None,
        count: int = 1,
        retry_after: float | str | None = None,
        delay: float = 0,
        message: str | None = None,
        hold: float = 0,
    ) -> None:
        """The next `count` requests whose method matches (None or "*": any) and whose path
        contains `path_regex` (re.search) wait `delay` seconds, then answer `status` with
        Graph's error body for `code` (default per status: 429 TooManyRequests, 503
        ServiceNotAvailable, 504 GatewayTimeout, 410 SyncStateNotFound, 401
        InvalidAuthenticationToken…) and Retry-After when given. status None: answer
        normally, late (a slow request still holds its mailbox's concurrency slot). `hold`:
        the request takes effect at once and its answer is held back that long."""
        GoogleSandbox.fail_next(
            self, method, path_regex, status, code, count, retry_after, delay, message, hold
        )

    def _mailbox_key(self, request: Request) -> tuple[str, str] | None:
        """(app, mailbox) of a Graph request with a live token, for the concurrency limit."""
        if self.max_concurrent_per_mailbox is None or not request.path.lower().startswith("/v1.0/"):
            return None
        with self._lock:
            token = self._access.get(self._bearer(request))
            if token is None or not token.alive(self.now()):
                return None
            return token.grant.client_id, token.grant.email

    def _enter(self, key: tuple[str, str]) -> bool:
        with self._lock:
            limit = self.max_concurrent_per_mailbox
            if limit is not None and self._inflight.get(key, 0) >= limit:
                return False
            self._inflight[key] = self._inflight.get(key, 0) + 1
            return True

    def _leave(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._inflight[key] -= 1

    def _dispatch(self, request: Request) -> Response:
        return server.dispatch(self, self._routes, request)
