"""`GoogleSandbox`: the state, the control API tests use, and the server's lifecycle."""

from __future__ import annotations

import contextlib
import copy
import re
import threading
import time
import urllib.parse
from datetime import UTC, tzinfo

from sync.sandbox.google import calendar_api, errors, events, events_api, oauth
from sync.sandbox.google.model import (
    CALENDAR_COLORS,
    ROLES,
    AccessToken,
    Calendar,
    Channel,
    Client,
    Delivery,
    Fault,
    Grant,
    ListEntry,
    LoggedRequest,
    RefreshToken,
    StoredEvent,
    User,
    UserList,
    scope_list,
)
from sync.sandbox.google.push import Pusher
from sync.sandbox.google.server import (
    Request,
    Response,
    compile_routes,
    dispatch,
    make_server,
    serve_in_thread,
)
from sync.sandbox.google.util import digest, format_ms, get_zone, new_id, random_token, rfc1123

_COLOR_CYCLE = ["14", "16", "9", "12", "2", "17", "7", "22", "5", "18"]
_UNSET = object()


class GoogleSandbox:
    """An in-memory Google (OAuth 2.0 + Calendar API v3) served over HTTP on 127.0.0.1.

    Point GOOGLE_ACCOUNTS_URL, GOOGLE_OAUTH2_URL and GOOGLE_APIS_URL at `url`: one server
    answers all three hosts, by path. Every control method is thread-safe.

    Settings (attributes, may be changed at any time):
      `auto_approve_as`: an email; the consent page is skipped and that user approves at once.
      `rotate_refresh_tokens`: a refresh returns a new refresh token and kills the old one.
      `access_token_lifetime`: seconds (Google: 3599).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auto_approve_as: str | None = None,
        rotate_refresh_tokens: bool = False,
        access_token_lifetime: int = 3599,
        push_timeout: float = 2.0,
        recurrence_engine: str | None = None,
        verbose: bool = False,
    ):
        self.host = host
        self.port = port
        self.auto_approve_as = auto_approve_as
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.access_token_lifetime = access_token_lifetime
        self.recurrence_engine = recurrence_engine
        self.verbose = verbose
        # Meet create requests answered `pending` until complete_conferences() (Google makes
        # conferences asynchronously); False: `success` at once.
        self.conferences_pending = False
        self._lock = threading.RLock()
        self._offset = 0.0
        self._etag_last = 0
        self._clients: dict[str, Client] = {}
        self._users: dict[str, User] = {}
        self._lists: dict[str, UserList] = {}
        self._calendars: dict[str, Calendar] = {}
        self._grants: list[Grant] = []
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._codes: dict = {}
        self._channels: dict[tuple[str, str], Channel] = {}
        self._faults: list[Fault] = []
        self._log_entries: list[LoggedRequest] = []
        self._held: list[LoggedRequest] = []
        self._pusher = Pusher(push_timeout)
        self._routes = compile_routes(oauth.ROUTES, calendar_api.ROUTES, events_api.ROUTES)
        self._server = None
        self._thread = None

    # --- lifecycle ---
    def start(self) -> GoogleSandbox:
        if self._server is None:
            self._server = make_server(self, self.host, self.port)
            self.port = self._server.server_address[1]
            self._thread = serve_in_thread(self._server)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._pusher.stop()

    def __enter__(self) -> GoogleSandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL of every Google host (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("GoogleSandbox is not started")
        return f"http://{self.host}:{self.port}"

    # --- clock ---
    def now(self) -> float:
        """The sandbox's clock: wall time plus everything `advance()` added."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock forward (tokens, codes and channels expire by it)."""
        with self._lock:
            self._offset += seconds

    def _now_ms(self) -> int:
        return int(self.now() * 1000)

    def _new_etag(self) -> str:
        value = max(self._etag_last + 1, int(self.now() * 1_000_000))
        self._etag_last = value
        return f'"{value}"'

    # --- clients and users ---
    def add_client(self, client_id: str, client_secret: str | None, redirect_uris=()) -> Client:
        """Register an OAuth client (secret None: a public client, no secret checked)."""
        with self._lock:
            client = Client(client_id, client_secret, list(redirect_uris))
            self._clients[client_id] = client
            return client

    def add_user(
        self,
        email: str,
        name: str | None = None,
        *,
        given_name: str | None = None,
        family_name: str | None = None,
        picture: str | None = None,
        granted_scopes=None,
        primary_calendar: bool = True,
        time_zone: str = "UTC",
    ) -> User:
        """A Google account; with its primary calendar (id = email) unless told otherwise.

        `granted_scopes`: what the user ticks on the consent screen (None: all asked). The
        sign-in scopes (openid, email, profile) are always granted, as with Google's granular
        consent.
        """
        with self._lock:
            email = email.lower()
            name = name or email.split("@")[0].replace(".", " ").title()
            first, _, rest = name.partition(" ")
            sub = str(10**20 + int(digest("sub", email), 16) % (9 * 10**20))
            user = User(
                email=email,
                name=name,
                given_name=given_name if given_name is not None else first,
                family_name=family_name if family_name is not None else rest,
                picture=picture or "https://lh3.googleusercontent.com/a/default-user=s96-c",
                sub=sub,
                granted_scopes=set(scope_list(granted_scopes))
                if granted_scopes is not None
                else None,
            )
            self._users[email] = user
            self._lists.setdefault(email, UserList())
            if primary_calendar:
                self.add_calendar(email, primary=True, time_zone=time_zone)
            return user

    def set_granted_scopes(self, email: str, scopes) -> None:
        """What `email` grants on later consents (None: everything asked)."""
        with self._lock:
            user = self._user(email)
            user.granted_scopes = set(scope_list(scopes)) if scopes is not None else None

    def _user(self, email: str) -> User:
        user = self._users.get(email.lower())
        if user is None:
            raise KeyError(f"no sandbox user {email!r}; add_user() first")
        return user

    # --- calendars ---
    def add_calendar(
        self,
        email: str,
        calendar_id: str | None = None,
        summary: str | None = None,
        access_role: str | None = None,
        primary: bool | None = None,
        hidden: bool | None = None,
        time_zone: str | None = None,
        background_color: str | None = None,
        *,
        color_id: str | None = None,
        foreground_color: str | None = None,
        summary_override: str | None = None,
        description: str | None = None,
        selected: bool | None = None,
        deleted: bool | None = None,
        default_reminders: list | None = None,
    ) -> dict:
        """Put a calendar in `email`'s calendar list and return its calendarListEntry.

        A new calendar id (None) is generated as Google does (`…@group.calendar.google.com`;
        the primary calendar's id is the email). An existing calendar id shares that calendar
        with `email` (e.g. access_role="reader"). On an entry that already exists, the
        arguments given (not None) update it. Defaults for a new entry: owner, visible,
        selected, time zone UTC.
        """
        with self._lock:
            user = self._user(email)
            if access_role is not None and access_role not in ROLES:
                raise ValueError(f"access_role must be one of {ROLES}")
            if calendar_id is None:
                calendar_id = user.email if primary else f"{new_id()}@group.calendar.google.com"
            calendar = self._calendars.get(calendar_id)
            if calendar is None:
                role = access_role or "owner"
                calendar = Calendar(
                    id=calendar_id,
                    summary=summary or (user.email if primary else "Calendar"),
                    time_zone=time_zone or "UTC",
                    description=description or "",
                    owner=user.email if role == "owner" else None,
                    etag=self._new_etag(),
                    updated_ms=self._now_ms(),
                )
                self._calendars[calendar_id] = calendar
            elif any(v is not None for v in (summary, time_zone, description)):
                calendar.summary = summary if summary is not None else calendar.summary
                calendar.time_zone = time_zone if time_zone is not None else calendar.time_zone
                calendar.description = (
                    description if description is not None else calendar.description
                )
                calendar.etag = self._new_etag()
                self._touch_calendar(calendar)
            user_list = self._lists.setdefault(user.email, UserList())
            entry = user_list.entries.get(calendar_id)
            if entry is None:
                color = _COLOR_CYCLE[len(user_list.entries) % len(_COLOR_CYCLE)]
                role = access_role or "owner"
                entry = ListEntry(
                    calendar_id=calendar_id,
                    access_role=role,
                    color_id=color,
                    background_color=CALENDAR_COLORS[color],
                    default_reminders=(
                        [{"method": "popup", "minutes": 10}] if primary and role == "owner" else []
                    ),
                )
                user_list.entries[calendar_id] = entry
            updates = {
                "access_role": access_role,
                "primary": primary,
                "hidden": hidden,
                "selected": selected,
                "deleted": deleted,
                "summary_override": summary_override,
                "foreground_color": foreground_color,
                "default_reminders": default_reminders,
            }
            for attribute, value in updates.items():
                if value is not None:
                    setattr(entry, attribute, copy.deepcopy(value))
            if color_id is not None:
                entry.color_id = color_id
                entry.background_color = CALENDAR_COLORS.get(color_id, entry.background_color)
            if background_color is not None:
                entry.background_color = background_color
                matching = [k for k, v in CALENDAR_COLORS.items() if v == background_color.lower()]
                entry.color_id = matching[0] if matching else entry.color_id
            if access_role == "owner" and calendar.owner is None:
                calendar.owner = user.email
            self._touch_entry(user.email, entry)
            return self._render_entry(entry, calendar)

    def remove_calendar(self, email: str, calendar_id: str) -> None:
        """The user removes the calendar from their list (calendarList shows it deleted)."""
        with self._lock:
            entry = self._lists[self._user(email).email].entries[calendar_id]
            entry.deleted = True
            entry.hidden = False
            self._touch_entry(self._user(email).email, entry)

    def _touch_entry(self, email: str, entry: ListEntry) -> None:
        user_list = self._lists[email]
        user_list.seq += 1
        entry.seq = user_list.seq
        entry.etag = self._new_etag()
        self._notify("calendarList", email)

    def _touch_calendar(self, calendar: Calendar) -> None:
        for email, user_list in self._lists.items():
            if calendar.id in user_list.entries:
                self._touch_entry(email, user_list.entries[calendar.id])

    def _render_entry(self, entry: ListEntry, calendar: Calendar) -> dict:
        item = {
            "kind": "calendar#calendarListEntry",
            "etag": entry.etag,
            "id": calendar.id,
            "summary": calendar.summary,
        }
        if calendar.description:
            item["description"] = calendar.description
        if calendar.location:
            item["location"] = calendar.location
        item["timeZone"] = calendar.time_zone
        if entry.summary_override:
            item["summaryOverride"] = entry.summary_override
        item["colorId"] = entry.color_id
        item["backgroundColor"] = entry.background_color
        item["foregroundColor"] = entry.foreground_color
        if entry.hidden:
            item["hidden"] = True
        if entry.selected and not entry.deleted:
            item["selected"] = True
        item["accessRole"] = entry.access_role
        item["defaultReminders"] = copy.deepcopy(entry.default_reminders)
        if entry.primary and entry.access_role == "owner":
            item["notificationSettings"] = {
                "notifications": [
                    {"type": kind, "method": "email"}
                    for kind in (
                        "eventCreation",
                        "eventChange",
                        "eventCancellation",
                        "eventResponse",
                    )
                ]
            }
        if entry.primary:
            item["primary"] = True
        if entry.deleted:
            item["deleted"] = True
        item["conferenceProperties"] = {"allowedConferenceSolutionTypes": ["hangoutsMeet"]}
        return item

    def _render_calendar(self, calendar: Calendar) -> dict:
        item = {"kind": "calendar#calendar", "etag": calendar.etag, "id": calendar.id}
        item["summary"] = calendar.summary
        if calendar.description:
            item["description"] = calendar.description
        if calendar.location:
            item["location"] = calendar.location
        item["timeZone"] = calendar.time_zone
        item["conferenceProperties"] = {"allowedConferenceSolutionTypes": ["hangoutsMeet"]}
        return item

    def _zone(self, calendar: Calendar) -> tzinfo:
        return get_zone(calendar.time_zone) or UTC

    # --- events (control API: edits "made by the user in Google") ---
    def put_event(
        self, email_or_calendar: str, calendar_id=None, event: dict | None = None
    ) -> dict:
        """Create or edit an event as if the user did it in Google Calendar.

        `put_event(email, calendar_id, event)` (calendar_id may be "primary") or
        `put_event(calendar_id_or_email, event)`. An `id` that exists is patched (fields
        given replace, null clears); an instance id (`<master>_<stamp>`), or a body with
        recurringEventId + originalStartTime, makes an exception. `organizer`/`creator`
        may be given (an invitation from someone else). Bumps etag, updated, the sync
        state, and pushes "exists" to the calendar's channels. Returns the event resource.
        """
        if isinstance(calendar_id, dict) and event is None:
            calendar_id, event = None, calendar_id
        with self._lock:
            calendar, actor = self._target(email_or_calendar, calendar_id)
            body = copy.deepcopy(event or {})
            event_id = body.get("id")
            if event_id is None and body.get("recurringEventId") and body.get("originalStartTime"):
                original = events.normalize_time(body["originalStartTime"], "originalStart")
                event_id = events.instance_id(body["recurringEventId"], events.time_value(original))
            stored, virtual = self._find(calendar, event_id) if event_id else (None, None)
            if stored is not None or virtual is not None:
                current = stored.data if stored is not None else virtual[0]
                changes = events.writable(body)
                for name in ("organizer", "creator", "iCalUID"):
                    if name in body:
                        changes[name] = body[name]
                data = events.merge_patch(current, changes)
            else:
                data = self._new_event_data(calendar, body, actor, event_id or new_id())
                for name in ("organizer", "creator", "recurringEventId", "originalStartTime"):
                    if body.get(name):
                        data[name] = copy.deepcopy(body[name])
                if "hangoutLink" in body:
                    data["hangoutLink"] = body["hangoutLink"]
                if "conferenceData" in body:
                    data["conferenceData"] = copy.deepcopy(body["conferenceData"])
                current = None
            if data.get("recurringEventId") and not data.get("originalStartTime"):
                data["originalStartTime"] = copy.deepcopy(data["start"])
            try:
                events.validate(data, is_instance=bool(data.get("recurringEventId")))
            except errors.ApiError as exc:
                raise ValueError(str(exc)) from exc
            if current is not None:
                self._bump_sequence(current, data)
            stored = self._commit(calendar, data)
            return self._render_stored(calendar, stored)

    def complete_conferences(self, calendar_id: str) -> list[str]:
        """Finish every pending Meet create request of a calendar (a user's email works): each
        event gets its link and a new version, as Google's asynchronous creation does. Returns
        the events' ids."""
        with self._lock:
            calendar, _ = self._target(calendar_id, None)
            done = []
            for stored in list(calendar.events.values()):
                create = (stored.data.get("conferenceData") or {}).get("createRequest") or {}
                if (create.get("status") or {}).get("statusCode") != "pending":
                    continue
                data = copy.deepcopy(stored.data)
                events_api.complete_conference(
                    data,
                    create.get("requestId"),
                    (create.get("conferenceSolutionKey") or {}).get("type", "hangoutsMeet"),
                )
                self._commit(calendar, data)
                done.append(data["id"])
            return done

    def delete_event(self, email_or_calendar: str, calendar_id=None, event_id=None) -> None:
        """Delete an event as the user would in Google (it stays, cancelled, for sync).
        `delete_event(email, calendar_id, event_id)` or `delete_event(calendar_id, event_id)`;
        an instance id cancels that occurrence only."""
        if event_id is None:
            calendar_id, event_id = None, calendar_id
        with self._lock:
            calendar, _ = self._target(email_or_calendar, calendar_id)
            stored, virtual = self._find(calendar, event_id)
            if stored is None and virtual is None:
                raise KeyError(f"no event {event_id!r} in {calendar.id!r}")
            self._cancel(calendar, stored.data if stored is not None else virtual[0])

    def events(self, calendar_id: str, *, include_cancelled: bool = True) -> list[dict]:
        """Every stored event of a calendar (masters and exceptions, not expanded), in
        creation order, as the API renders them. `calendar_id` may be a user's email."""
        with self._lock:
            calendar, _ = self._target(calendar_id, None)
            return [
                self._render_stored(calendar, stored)
                for stored in sorted(calendar.events.values(), key=lambda s: s.order)
                if include_cancelled or not stored.cancelled
            ]

    def event(self, calendar_id: str, event_id: str) -> dict | None:
        """One event (or a recurring series' instance) as events.get returns it; None."""
        with self._lock:
            calendar, _ = self._target(calendar_id, None)
            stored, virtual = self._find(calendar, event_id)
            if stored is not None:
                return self._render_stored(calendar, stored)
            if virtual is not None:
                return events.render(
                    virtual[0],
                    etag=virtual[1].etag,
                    calendar_id=calendar.id,
                    zone=self._zone(calendar),
                )
            return None

    def _target(self, who: str, calendar_id: str | None) -> tuple[Calendar, str]:
        """(calendar, acting user's email) from the control API's flexible arguments."""
        if not calendar_id:
            if who in self._calendars:
                calendar = self._calendars[who]
                return calendar, calendar.owner or who
            user = self._user(who)
            return self._primary(user.email), user.email
        if calendar_id == "primary":
            user = self._user(who)
            return self._primary(user.email), user.email
        calendar = self._calendars.get(calendar_id)
        if calendar is None:
            raise KeyError(f"no sandbox calendar {calendar_id!r}")
        return calendar, who.lower()

    def _primary(self, email: str) -> Calendar:
        for calendar_id, entry in self._lists.get(email, UserList()).entries.items():
            if entry.primary:
                return self._calendars[calendar_id]
        raise KeyError(f"{email!r} has no primary calendar")

    def _organizer(self, calendar: Calendar) -> dict:
        if calendar.id in self._users:
            return {"email": calendar.id}
        return {"email": calendar.id, "displayName": calendar.summary}

    def _new_event_data(self, calendar: Calendar, body: dict, actor: str, event_id: str) -> dict:
        data = events.writable(body)
        data["id"] = event_id
        data.setdefault("status", "confirmed")
        data["creator"] = {"email": actor}
        data["organizer"] = self._organizer(calendar)
        data["iCalUID"] = body.get("iCalUID") or f"{event_id}@google.com"
        data.setdefault("sequence", 0)
        data.setdefault("reminders", {"useDefault": True})
        data.setdefault("eventType", "default")
        return data

    def _find(self, calendar: Calendar, event_id: str):
        """(stored event, None) or (None, (instance data, master)) or (None, None)."""
        stored = calendar.events.get(event_id)
        if stored is not None:
            return stored, None
        parts = events.split_instance_id(event_id)
        if parts:
            master = calendar.events.get(parts[0])
            if master is not None and master.is_master and not master.cancelled:
                data = events.find_instance(
                    master.data, parts[1], self._zone(calendar), self.recurrence_engine
                )
                if data is not None:
                    return None, (data, master)
        return None, None

    @staticmethod
    def _bump_sequence(previous: dict, data: dict) -> None:
        old = previous.get("sequence", 0)
        if any(previous.get(name) != data.get(name) for name in events.SEQUENCE_FIELDS):
            data["sequence"] = max(data.get("sequence", old), old + 1)
        else:
            data["sequence"] = max(data.get("sequence", old), old)

    def _commit(self, calendar: Calendar, data: dict) -> StoredEvent:
        """Store a new version: new etag, `updated`, change sequence; push "exists"."""
        event_id = data["id"]
        now_ms = self._now_ms()
        previous = calendar.events.get(event_id)
        calendar.seq += 1
        if previous is None:
            created_ms, order = now_ms, calendar.next_order
            calendar.next_order += 1
        else:
            created_ms, order = previous.created_ms, previous.order
        data["created"] = format_ms(created_ms / 1000)
        data["updated"] = format_ms(now_ms / 1000)
        stored = StoredEvent(data, self._new_etag(), calendar.seq, order, created_ms, now_ms)
        calendar.events[event_id] = stored
        calendar.updated_ms = now_ms
        self._notify("events", calendar.id)
        return stored

    def _cancel(self, calendar: Calendar, data: dict) -> None:
        data = copy.deepcopy(data)
        data["status"] = "cancelled"
        stored = self._commit(calendar, data)
        if stored.is_master:
            for other in list(calendar.events.values()):
                if other.data.get("recurringEventId") == stored.data["id"] and not other.cancelled:
                    self._cancel(calendar, other.data)

    def _render_stored(
        self, calendar: Calendar, stored: StoredEvent, zone=None, role="owner"
    ) -> dict:
        return events.render(
            stored.data,
            etag=stored.etag,
            calendar_id=calendar.id,
            zone=zone or self._zone(calendar),
            access_role=role,
        )

    # --- tokens ---
    def issue_tokens(self, email: str, client_id: str, scopes, *, offline: bool = True):
        """(access token, refresh token) for `email` at `client_id`, skipping the consent
        page (refresh token None when offline=False). Scopes may be short ('calendar')."""
        with self._lock:
            user = self._user(email)
            if client_id not in self._clients:
                raise KeyError(f"no sandbox client {client_id!r}; add_client() first")
            granted = scope_list(scopes)
            grant = self._live_grant(user.email, client_id)
            grant.scopes |= set(granted)
            access = self._mint_access(grant, granted, "offline" if offline else "online")
            refresh = self._mint_refresh(grant, granted) if offline else None
            return access.token, (refresh.token if refresh else None)

    def _live_grant(self, email: str, client_id: str) -> Grant:
        for grant in self._grants:
            if grant.email == email and grant.client_id == client_id and not grant.revoked:
                return grant
        grant = Grant(email, client_id)
        self._grants.append(grant)
        return grant

    def _mint_access(self, grant: Grant, scopes, access_type: str) -> AccessToken:
        token = AccessToken(
            token=random_token("ya29.sandbox-"),
            grant=grant,
            scopes=tuple(scopes),
            expires_at=self.now() + self.access_token_lifetime,
            access_type=access_type,
        )
        self._access[token.token] = token
        return token

    def _mint_refresh(self, grant: Grant, scopes) -> RefreshToken:
        token = RefreshToken(token=random_token("1//sandbox-"), grant=grant, scopes=tuple(scopes))
        self._refresh[token.token] = token
        grant.has_refresh_token = True
        return token

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is expired (API calls answer 401)."""
        with self._lock:
            now = self.now()
            for token in self._access.values():
                token.expires_at = min(token.expires_at, now - 1)

    def revoke(self, email: str, client_id: str | None = None) -> None:
        """The user removes the app's access: refresh -> invalid_grant, API -> 401."""
        with self._lock:
            email = email.lower()
            for grant in self._grants:
                if grant.email == email and client_id in (None, grant.client_id):
                    grant.revoked = True

    def _authenticate(self, request: Request) -> AccessToken:
        header = request.header("Authorization") or ""
        if header[:7].lower() == "bearer ":
            value = header[7:].strip()
        else:
            value = request.arg("access_token") or request.arg("oauth_token")
        if not value:
            raise errors.unauthenticated(missing=True)
        token = self._access.get(value)
        if token is None or not token.alive(self.now()):
            raise errors.unauthenticated()
        return token

    @staticmethod
    def _require(token: AccessToken, allowed: set[str]) -> None:
        if not allowed.intersection(token.scopes):
            raise errors.insufficient_scopes(sorted(allowed))

    def _calendar_for(self, email: str, calendar_id: str) -> tuple[Calendar, ListEntry]:
        entries = self._lists.get(email, UserList()).entries
        if calendar_id == "primary":
            calendar_id = next((cid for cid, e in entries.items() if e.primary), "")
        entry = entries.get(calendar_id)
        calendar = self._calendars.get(calendar_id)
        if entry is None or calendar is None or calendar.deleted:
            raise errors.not_found()
        return calendar, entry

    # --- sync tokens ---
    def expire_sync_tokens(self, calendar_id: str | None = None) -> None:
        """Sync tokens issued so far answer 410 fullSyncRequired (one calendar, or every
        calendar and every calendar list when None)."""
        with self._lock:
            if calendar_id is None:
                for calendar in self._calendars.values():
                    calendar.generation += 1
                for user_list in self._lists.values():
                    user_list.generation += 1
            else:
                self._target(calendar_id, None)[0].generation += 1

    # --- push ---
    def _notify(self, kind: str, target: str) -> None:
        now_ms = self._now_ms()
        for channel in self._channels.values():
            live = not channel.stopped and channel.expiration_ms > now_ms
            if live and channel.kind == kind and channel.target == target:
                channel.message_number += 1
                self._push(channel, "exists")

    def _push(self, channel: Channel, state: str) -> None:
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": rfc1123(channel.expiration_ms / 1000),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel.message_number),
        }
        if channel.token:
            headers["X-Goog-Channel-Token"] = channel.token
        self._pusher.send(channel.id, channel.address, state, channel.message_number, headers)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every push message sent so far (with the receiver's status), oldest first."""
        return self._pusher.deliveries()

    def wait_for_deliveries(
        self, count: int, *, channel_id: str | None = None, timeout: float = 5.0
    ):
        """Wait until `count` messages (of one channel) were delivered; returns them all."""
        return self._pusher.wait(count, channel_id, timeout)

    def wait_for_push_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every queued push message has been attempted."""
        return self._pusher.wait_idle(timeout)

    def clear_deliveries(self) -> None:
        self._pusher.clear()

    def pause_push(self, paused: bool = True) -> None:
        """While paused, push messages are recorded as dropped and never sent (a broken push
        path: the client must still catch up by polling)."""
        self._pusher.dropping = paused

    def channels(self) -> list[dict]:
        """The channels opened so far (id, resourceId, address, expiration, stopped…)."""
        with self._lock:
            return [
                {
                    "id": c.id,
                    "resourceId": c.resource_id,
                    "resourceUri": c.resource_uri,
                    "kind": c.kind,
                    "target": c.target,
                    "address": c.address,
                    "expiration": c.expiration_ms,
                    "stopped": c.stopped,
                    "messageNumber": c.message_number,
                }
                for c in self._channels.values()
            ]

    # --- faults and the request log ---
    def fail_next(
        self,
        method: str | None,
        path_regex: str,
        status: int | None = None,
        reason: str | None = None,
        count: int = 1,
        retry_after: float | str | None = None,
        delay: float = 0,
        message: str | None = None,
        hold: float = 0,
    ) -> None:
        """The next `count` requests whose method matches (None or "*": any) and whose path
        contains `path_regex` (re.search) wait `delay` seconds, then answer `status` with
        Google's body for `reason` (default per status: 429/403 rateLimitExceeded, 5xx
        backendError…) and Retry-After when given. status None: answer normally, late.
        `hold`: the request takes effect at once and its answer is held back that long (a
        client that dies meanwhile never hears that its write landed)."""
        with self._lock:
            self._faults.append(
                Fault(
                    method=(method or "*").upper(),
                    pattern=re.compile(path_regex),
                    status=status,
                    reason=reason,
                    message=message,
                    count=count,
                    retry_after=retry_after,
                    delay=delay,
                    hold=hold,
                )
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method in ("*", method) and fault.pattern.search(path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _log(self, request: Request, status: int) -> None:
        with self._lock:
            self._log_entries.append(_logged(request, status))

    @contextlib.contextmanager
    def _holding(self, request: Request, status: int):
        entry = _logged(request, status)
        with self._lock:
            self._held.append(entry)
        try:
            yield
        finally:
            with self._lock:
                self._held.remove(entry)

    def held_requests(self) -> list[LoggedRequest]:
        """Requests that took effect and whose answer `fail_next(hold=)` is holding back now;
        `peer_port` tells which client process is waiting for it."""
        with self._lock:
            return list(self._held)

    @property
    def requests_log(self) -> list[LoggedRequest]:
        """Every request answered so far: (method, path, query, status), oldest first."""
        with self._lock:
            return list(self._log_entries)

    def requests(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """The logged requests with that method and a path matching `path` (re.search)."""
        pattern = re.compile(path) if path else None
        return [
            entry
            for entry in self.requests_log
            if (method is None or entry.method == method.upper())
            and (pattern is None or pattern.search(entry.path))
        ]

    def clear_requests_log(self) -> None:
        with self._lock:
            self._log_entries.clear()

    def _dispatch(self, request: Request) -> Response:
        return dispatch(self, self._routes, request)

    def _resource_uri(self, path: str) -> str:
        return f"{self.url}{urllib.parse.quote(path, safe='/@')}?alt=json"


def _logged(request: Request, status: int) -> LoggedRequest:
    query = {k: v[0] for k, v in request.query.items()}
    return LoggedRequest(request.method, request.path, query, status, request.peer_port)
