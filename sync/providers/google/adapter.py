"""Google Calendar API v3 adapter (https://developers.google.com/calendar/api/v3/reference).

Sync follows Google's guide (https://developers.google.com/calendar/api/guides/sync): a full
listing pages through `events.list` with one fixed parameter set, the `nextSyncToken` of its
last page is the cursor, and later listings pass it as `syncToken` (same parameters) to get
every change since, cancelled items included; 410 `fullSyncRequired` means start over.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

import requests

from sync.providers.base import (
    AlreadyExists,
    ChangeSet,
    NormalizedResource,
    NotFound,
    OAuthCredentials,
    PermanentError,
    Provider,
    ProviderAccount,
    ProviderCalendar,
    ProviderResource,
    PushNotification,
    PushReceipt,
    ReadContext,
    Rendered,
    Watch,
    Window,
    WriteContext,
    WrittenEvent,
)
from sync.providers.google import normalize, write
from sync.providers.google.client import GoogleClient

GOOGLE_APIS_URL = "https://www.googleapis.com"
# The most events.list allows per page: fewer round trips for a big calendar.
PAGE_SIZE = 2500
# Every listing uses exactly these parameters (a sync token is only valid with the parameters
# of the listing that issued it). singleEvents=false: see normalize's docstring.
LIST_PARAMETERS = {"maxResults": PAGE_SIZE, "singleEvents": "false"}
# Invitees hear about an event an integrator invited them to, and the organizer about the
# end-user's answer, as they would from Google Calendar itself (Google's default, "none",
# would leave invitations silently in their calendars).
SEND_UPDATES = "all"
# conferenceDataVersion=1: Google otherwise ignores the conferenceData we write (explicit links,
# Meet create requests); a write without it keeps the event's conference as it is.
WRITE_PARAMETERS = {"sendUpdates": SEND_UPDATES, "conferenceDataVersion": "1"}
_READ_ONLY_ROLES = {"reader", "freeBusyReader"}


def event_id_for(idempotency_key: str) -> str:
    """Our id for an event we create, in Google's alphabet (base32hex, lower case, 5-1024
    characters) and derived from the key, so that a retried insert gets 409, never a twin."""
    digest = hashlib.sha256(idempotency_key.encode()).digest()[:20]
    return base64.b32hexencode(digest).decode().lower().rstrip("=")


class GoogleProvider(Provider):
    key = "google"
    supports_push = True

    def __init__(
        self,
        credentials: OAuthCredentials,
        session: requests.Session | None = None,
        *,
        api_url: str = GOOGLE_APIS_URL,
    ):
        self.client = GoogleClient(
            api_url=api_url, access_token=credentials.access_token, session=session
        )

    @staticmethod
    def _events_path(calendar_id: str, event_id: str = "") -> str:
        path = f"/calendar/v3/calendars/{quote(calendar_id, safe='')}/events"
        return f"{path}/{quote(event_id, safe='')}" if event_id else path

    # --- account and calendars ---
    def describe_account(self) -> ProviderAccount:
        info = self.client.call("GET", "/oauth2/v3/userinfo", what="reading the account")
        return ProviderAccount(
            provider_account_id=str(info["sub"]),
            profile_name=info.get("email", ""),
            provider_service="google",
        )

    def list_calendars(self) -> list[ProviderCalendar]:
        """calendarList, hidden calendars included (hiding is a display choice in Google's
        UI; they are still the user's), deleted ones left out (the list refresh marks them
        deleted)."""
        calendars = []
        pages = self.client.pages(
            "/calendar/v3/users/me/calendarList",
            {"maxResults": 250, "showHidden": "true"},
            what="listing calendars",
        )
        for page in pages:
            for entry in page.get("items") or []:
                if entry.get("deleted"):
                    continue
                calendars.append(
                    ProviderCalendar(
                        provider_calendar_id=entry["id"],
                        name=entry.get("summaryOverride") or entry.get("summary") or entry["id"],
                        is_readonly=entry.get("accessRole") in _READ_ONLY_ROLES,
                        is_primary=bool(entry.get("primary")),
                        color=(entry.get("backgroundColor") or "")[:7],
                    )
                )
        return calendars

    def create_calendar(self, name: str) -> ProviderCalendar:
        """calendars.insert: a secondary calendar the user owns (Google adds it to their
        calendarList). Google allows two calendars of one name; the service refuses that."""
        created = self.client.call(
            "POST", "/calendar/v3/calendars", json={"summary": name}, what="creating a calendar"
        )
        return ProviderCalendar(
            provider_calendar_id=created["id"], name=created.get("summary") or name
        )

    # --- sync ---
    def fetch_changes(
        self,
        calendar_id: str,
        cursor: str | None,
        *,
        known_versions: Callable[[], dict[str, str]] | None = None,
        known_payloads: Callable[[list[str]], dict[str, str]] | None = None,
        window: Window | None = None,
    ) -> ChangeSet:
        """All events (no cursor) or every change since the cursor, as one resource per series.
        An incremental change to an instance is merged into the series the cache keeps
        (`known_payloads`). Raises CursorInvalid (410), AuthExpired, RateLimited,
        TemporaryError, PermanentError (404: the calendar is gone)."""
        sync_token = json.loads(cursor)["sync_token"] if cursor else None
        items, time_zone, next_token = self._list(calendar_id, sync_token)
        new_cursor = json.dumps({"sync_token": next_token})
        if sync_token is None:
            groups = _group(items, {}, time_zone)
            resources = [_resource(sid, g) for sid, g in groups.items() if not normalize.is_gone(g)]
            return ChangeSet(cursor=new_cursor, resources=resources, is_full=True)
        if not items:
            return ChangeSet(cursor=new_cursor, unchanged=True)
        series = sorted({normalize.series_id(item) for item in items})
        stored = known_payloads(series) if known_payloads else {}
        groups = _group(items, stored, time_zone)
        return ChangeSet(
            cursor=new_cursor,
            resources=[_resource(s, g) for s, g in groups.items() if not normalize.is_gone(g)],
            deleted=sorted(s for s, g in groups.items() if normalize.is_gone(g)),
        )

    def _list(self, calendar_id: str, sync_token: str | None) -> tuple[list, str, str]:
        """Every page of one listing: (items, the calendar's zone, nextSyncToken, which only the
        last page carries)."""
        params = {**LIST_PARAMETERS, **({"syncToken": sync_token} if sync_token else {})}
        items: list[dict] = []
        page: dict = {}
        for page in self.client.pages(
            self._events_path(calendar_id), params, what="listing events"
        ):
            items.extend(page.get("items") or [])
        if not page.get("nextSyncToken"):
            raise PermanentError("events.list ended without a nextSyncToken")
        return items, page.get("timeZone", ""), page["nextSyncToken"]

    @classmethod
    def normalize(
        cls, resource: ProviderResource, *, window: Window, context: ReadContext
    ) -> NormalizedResource:
        return normalize.normalize(resource, window=window, context=context)

    # --- writes ---
    @classmethod
    def render_event(cls, *, desired: Mapping, current: str, context: WriteContext) -> Rendered:
        return write.render_event(desired=desired, current=current, context=context)

    @classmethod
    def render_participation(cls, *, status: str, current: str, context: WriteContext) -> Rendered:
        return write.render_participation(status=status, current=current, context=context)

    @classmethod
    def provider_key_for(cls, idempotency_key: str) -> str:
        return event_id_for(idempotency_key)

    def resource_for_key(self, calendar_id: str, idempotency_key: str, *, around=None) -> str:
        return event_id_for(idempotency_key)

    def get_event(self, resource_id: str, *, calendar_id: str = "") -> ProviderResource:
        """The event as its series group: for a recurring master, its moved and cancelled
        instances too (listed by iCalUID), so that caching what this returns never forgets
        them. Raises NotFound (also for a cancelled event), AuthExpired, RateLimited…"""
        item = self.client.call(
            "GET", self._events_path(calendar_id, resource_id), what="reading an event"
        )
        if item.get("status") == "cancelled":
            raise NotFound("the event was deleted at Google")
        group = normalize.new_group()
        normalize.add_item(group, item)
        if item.get("recurrence") and item.get("iCalUID"):
            for other in self._series_items(calendar_id, item["iCalUID"]):
                if other.get("recurringEventId") == resource_id:
                    normalize.add_item(group, other)
        return _resource(resource_id, group)

    def _series_items(self, calendar_id: str, ical_uid: str) -> list[dict]:
        params = {**LIST_PARAMETERS, "iCalUID": ical_uid, "showDeleted": "true"}
        pages = self.client.pages(self._events_path(calendar_id), params, what="reading a series")
        return [item for page in pages for item in page.get("items") or []]

    def create_event(self, calendar_id: str, payload: str, *, idempotency_key: str) -> WrittenEvent:
        """events.insert with our own id: a retry of a create that reached Google gets 409
        (AlreadyExists), never a duplicate. Raises PermanentError (403 read-only calendar, 404
        calendar gone, 400 invalid data), AuthExpired, RateLimited, TemporaryError."""
        event_id = event_id_for(idempotency_key)
        try:
            created = self.client.call(
                "POST",
                self._events_path(calendar_id),
                params=WRITE_PARAMETERS,
                json={**write.patch_body(payload), "id": event_id},
                what="creating an event",
            )
        except AlreadyExists:
            raise AlreadyExists(
                "the event already exists at Google", resource_id=event_id
            ) from None
        return _written(event_id, payload, created)

    def update_event(
        self, resource_id: str, payload: str, *, version: str = "", calendar_id: str = ""
    ) -> WrittenEvent:
        """events.patch of the fields we manage, with If-Match: the master's etag; for a write
        of one instance, to that instance's own id, with the etag of its exception (an
        instance Google holds no exception for has none we have seen: Google makes one).
        Raises Conflict (412: changed since), NotFound, PermanentError, AuthExpired, …"""
        group = normalize.load(payload)
        target = group.get(write.INSTANCE) or resource_id
        if target != resource_id:
            version = write.target_of(group).get("etag", "")
        headers = {"If-Match": normalize.master_etag(version)} if version else None
        updated = self.client.call(
            "PATCH",
            self._events_path(calendar_id, target),
            params=WRITE_PARAMETERS,
            json=write.patch_body(payload),
            headers=headers,
            what="updating an event",
        )
        return _written(resource_id, payload, updated)

    def delete_event(self, resource_id: str, *, version: str = "", calendar_id: str = "") -> None:
        """events.delete with If-Match; already gone (404, 410) is success. Raises Conflict,
        PermanentError, AuthExpired, RateLimited, TemporaryError."""
        headers = {"If-Match": normalize.master_etag(version)} if version else None
        try:
            self.client.call(
                "DELETE",
                self._events_path(calendar_id, resource_id),
                params={"sendUpdates": SEND_UPDATES},
                headers=headers,
                what="deleting an event",
            )
        except NotFound:
            return

    # --- push (https://developers.google.com/calendar/api/guides/push) ---
    def watch(
        self, calendar_id: str, *, channel_id: str, address: str, token: str, ttl_seconds: int
    ) -> Watch:
        answer = self.client.call(
            "POST",
            self._events_path(calendar_id) + "/watch",
            json={
                "id": channel_id,
                "type": "web_hook",
                "address": address,
                "token": token,
                "params": {"ttl": str(ttl_seconds)},
            },
            what="watching a calendar",
        )
        expiration = answer.get("expiration")
        expires_at = datetime.fromtimestamp(int(expiration) / 1000, UTC) if expiration else None
        return Watch(resource_id=answer.get("resourceId", ""), expires_at=expires_at)

    def stop_watch(self, *, channel_id: str, resource_id: str) -> None:
        """channels.stop; Google answers 404 for a channel it no longer knows (NotFound)."""
        self.client.call(
            "POST",
            "/calendar/v3/channels/stop",
            json={"id": channel_id, "resourceId": resource_id},
            what="stopping a push channel",
        )

    @classmethod
    def parse_push(cls, *, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]):
        """Google's notification is its headers (the body is empty). `sync` (sent once when a
        channel opens) is acknowledged and changes nothing; `exists` / `not_exists` mean
        "something changed in the calendar"."""
        lower = {name.lower(): value for name, value in headers.items()}
        channel_id = lower.get("x-goog-channel-id", "")
        state = lower.get("x-goog-resource-state", "")
        if not channel_id or not state:
            raise PermanentError("not a Google push notification")
        if state == "sync":
            return PushReceipt()
        token = lower.get("x-goog-channel-token", "")
        return PushReceipt(notifications=[PushNotification(channel_id=channel_id, token=token)])


def _group(items: list[dict], stored: dict[str, str], time_zone: str) -> dict[str, dict]:
    """Items by series, each added to what the cache keeps of that series (if anything)."""
    groups: dict[str, dict] = {}
    for item in items:
        sid = normalize.series_id(item)
        if sid not in groups:
            kept = stored.get(sid)
            groups[sid] = normalize.load(kept) if kept else normalize.new_group(time_zone)
            groups[sid]["time_zone"] = time_zone or groups[sid].get("time_zone", "")
        normalize.add_item(groups[sid], item)
    return groups


def _resource(series: str, group: dict) -> ProviderResource:
    return ProviderResource(series, normalize.group_version(group), normalize.dump(group))


def _written(resource_id: str, payload: str, answer: dict) -> WrittenEvent:
    """The series group as Google now holds it: Google's answer as the master (with its
    iCalUID, organizer and times as Google keeps them), or as the exception of the one
    instance the write changed; the rest as we had it."""
    group = normalize.load(payload)
    instance_id = group.pop(write.INSTANCE, None)
    for name in (write.PATCH_FIELDS, write.SELF_ANSWER):
        group.pop(name, None)
    if instance_id:
        group["exceptions"][instance_id] = answer
    else:
        group["master"] = answer
    return WrittenEvent(resource_id, normalize.group_version(group), normalize.dump(group))
