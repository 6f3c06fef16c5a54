"""Microsoft Graph v1.0 adapter: Microsoft 365 and Outlook.com calendars
(https://learn.microsoft.com/graph/api/resources/event).

Sync reads calendarView/delta over our window (https://learn.microsoft.com/graph/delta-query-events):
the first round needs the window and pages through @odata.nextLink to an @odata.deltaLink,
which we keep verbatim as the cursor and call for the changes since. The window is frozen in
the delta link, so when our window moves (daily) the cursor no longer covers it and we start a
new round: CursorInvalid, which the engine answers with a mark-and-sweep resync.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import requests

from sync.providers.base import (
    ChangeSet,
    CursorInvalid,
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
from sync.providers.microsoft import normalize, write
from sync.providers.microsoft.client import GraphClient

MICROSOFT_GRAPH_URL = "https://graph.microsoft.com"
# Graph keeps a subscription to events at most 4,230 minutes (a little under three days).
MAX_SUBSCRIPTION_MINUTES = 4230
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


class MicrosoftProvider(Provider):
    key = "microsoft"
    supports_push = True
    # calendarView: each occurrence is a resource of its own, listed only inside the window.
    instance_resources = True
    window_bounded = True
    # Graph allows 4 concurrent requests per mailbox; a fifth gets 429 for everyone.
    max_concurrent_requests = 4

    def __init__(
        self,
        credentials: OAuthCredentials,
        session: requests.Session | None = None,
        *,
        graph_url: str = MICROSOFT_GRAPH_URL,
    ):
        self.client = GraphClient(
            graph_url=graph_url, access_token=credentials.access_token, session=session
        )

    @staticmethod
    def _calendar_path(calendar_id: str) -> str:
        return f"/me/calendars/{quote(calendar_id, safe='')}"

    @staticmethod
    def _event_path(event_id: str) -> str:
        return f"/me/events/{quote(event_id, safe='')}"

    # --- account and calendars ---
    def describe_account(self) -> ProviderAccount:
        me = self.client.call("GET", "/me", what="reading the account")
        return ProviderAccount(
            provider_account_id=str(me["id"]),
            profile_name=me.get("mail") or me.get("userPrincipalName") or str(me["id"]),
        )

    def list_calendars(self) -> list[ProviderCalendar]:
        """/me/calendars: canEdit false is read-only, the default calendar is the primary."""
        calendars = []
        for page in self.client.pages("/me/calendars", None, what="listing calendars"):
            for entry in page.get("value") or []:
                color = entry.get("hexColor") or ""
                calendars.append(
                    ProviderCalendar(
                        provider_calendar_id=entry["id"],
                        name=entry.get("name") or entry["id"],
                        is_readonly=not entry.get("canEdit", True),
                        is_primary=bool(entry.get("isDefaultCalendar")),
                        color=color[:7] if color.startswith("#") else "",
                    )
                )
        return calendars

    def create_calendar(self, name: str) -> ProviderCalendar:
        """POST /me/calendars in the user's default calendar group."""
        created = self.client.call(
            "POST", "/me/calendars", json={"name": name}, what="creating a calendar"
        )
        return ProviderCalendar(
            provider_calendar_id=created["id"], name=created.get("name") or name
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
        """The occurrences in `window` (no cursor), or the changes since the delta link.
        Raises CursorInvalid (410, or a cursor for another window), AuthExpired,
        RateLimited, TemporaryError, PermanentError."""
        if window is None:
            raise PermanentError("calendarView/delta needs the sync window")
        state = json.loads(cursor) if cursor else None
        if state and state.get("window_start") != window.start.strftime(_STAMP):
            raise CursorInvalid("the sync window moved: a new delta round")
        if state:
            link, params = state["delta_link"], None
        else:
            link = f"{self._calendar_path(calendar_id)}/calendarView/delta"
            params = {
                "startDateTime": window.start.strftime(_STAMP),
                "endDateTime": window.end.strftime(_STAMP),
            }
        changed: dict[str, dict] = {}
        removed: set[str] = set()
        delta_link = ""
        for page in self.client.pages(link, params, what="reading changes"):
            for item in page.get("value") or []:
                if "@removed" in item:
                    changed.pop(item["id"], None)
                    removed.add(item["id"])
                else:
                    removed.discard(item["id"])
                    changed[item["id"]] = item
            delta_link = page.get("@odata.deltaLink", delta_link)
        if not delta_link:
            raise PermanentError("calendarView/delta ended without a delta link")
        self._complete_partial_items(changed, removed)
        new_cursor = json.dumps(
            {"delta_link": delta_link, "window_start": window.start.strftime(_STAMP)}
        )
        if state and not changed and not removed:
            return ChangeSet(cursor=new_cursor, unchanged=True)
        return ChangeSet(
            cursor=new_cursor,
            resources=[_resource(item) for item in changed.values()],
            deleted=sorted(removed) if state else [],
            is_full=state is None,
        )

    def _complete_partial_items(self, changed: dict[str, dict], removed: set[str]) -> None:
        """Graph may list an updated item with only some of its properties: such an item
        (no start or end) is read in full, so that the cache never takes a half event, nor
        skips a change as unreadable. One gone by then is a removal."""
        for item_id in [
            i for i, item in changed.items() if "start" not in item or "end" not in item
        ]:
            try:
                changed[item_id] = self.client.call(
                    "GET", self._event_path(item_id), what="reading a changed event"
                )
            except NotFound:
                del changed[item_id]
                removed.add(item_id)

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

    def resource_for_key(
        self, calendar_id: str, idempotency_key: str, *, around: tuple[datetime, datetime] | None
    ) -> str:
        """Graph chooses its ids, so a create that crashed before we recorded its answer is
        found by its transactionId among the calendar's events around its time."""
        if around is None:
            return ""
        start, end = around
        pages = self.client.pages(
            f"{self._calendar_path(calendar_id)}/calendarView",
            {
                "startDateTime": start.astimezone(UTC).strftime(_STAMP),
                "endDateTime": end.astimezone(UTC).strftime(_STAMP),
                "$select": "id,transactionId",
            },
            what="finding an event we created",
        )
        for page in pages:
            for item in page.get("value") or []:
                if item.get("transactionId") == idempotency_key:
                    return item["id"]
        return ""

    def get_event(self, resource_id: str, *, calendar_id: str = "") -> ProviderResource:
        item = self.client.call("GET", self._event_path(resource_id), what="reading an event")
        return _resource(item)

    def create_event(self, calendar_id: str, payload: str, *, idempotency_key: str) -> WrittenEvent:
        """POST with our key as transactionId: Graph answers a retried POST with the event the
        first one created, never a second one (and the key comes back on the event, where the
        normalizer reads it as the event key). Raises PermanentError (403 read-only), …"""
        created = self.client.call(
            "POST",
            f"{self._calendar_path(calendar_id)}/events",
            json={**write.patch_body(payload), "transactionId": idempotency_key},
            what="creating an event",
        )
        return _written(created)

    def update_event(
        self, resource_id: str, payload: str, *, version: str = "", calendar_id: str = ""
    ) -> WrittenEvent:
        """PATCH the managed fields with If-Match (412: Conflict), or post the invitation
        answer (accept / tentativelyAccept / decline, with a response to the organizer)."""
        answer = write.answer_of(payload)
        if answer and write.patch_body(payload, only_patch_fields=True):
            # An upsert folded into the answer: its fields first, then the answer.
            self.update_event(
                resource_id, write.without_answer(payload), version=version, calendar_id=calendar_id
            )
        if answer:
            self.client.call(
                "POST",
                f"{self._event_path(resource_id)}/{answer}",
                json={"sendResponse": True},
                what="answering an invitation",
            )
            return WrittenEvent(resource_id=resource_id, version="")  # read back by the caller
        headers = {"If-Match": version} if version else None
        updated = self.client.call(
            "PATCH",
            self._event_path(resource_id),
            json=write.patch_body(payload),
            headers=headers,
            what="updating an event",
        )
        return _written(updated)

    def delete_event(self, resource_id: str, *, version: str = "", calendar_id: str = "") -> None:
        headers = {"If-Match": version} if version else None
        try:
            self.client.call(
                "DELETE", self._event_path(resource_id), headers=headers, what="deleting an event"
            )
        except NotFound:
            return

    # --- push: subscriptions (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks)
    def watch(
        self, calendar_id: str, *, channel_id: str, address: str, token: str, ttl_seconds: int
    ) -> Watch:
        """A subscription to the calendar's events; Graph validates `address` (our receiver
        echoes the validationToken) before it answers, and assigns the id."""
        expires = _expiry(ttl_seconds)
        answer = self.client.call(
            "POST",
            "/subscriptions",
            json={
                "changeType": "created,updated,deleted",
                "notificationUrl": address,
                "lifecycleNotificationUrl": address,
                "resource": f"{self._calendar_path(calendar_id)}/events",
                "expirationDateTime": expires.strftime(_STAMP),
                "clientState": token,
            },
            what="subscribing to a calendar",
        )
        return Watch(resource_id="", expires_at=_when(answer), channel_id=answer["id"])

    def renew_watch(
        self,
        calendar_id: str,
        *,
        channel_id: str,
        resource_id: str,
        address: str,
        token: str,
        ttl_seconds: int,
    ) -> Watch:
        answer = self.client.call(
            "PATCH",
            f"/subscriptions/{quote(channel_id, safe='')}",
            json={"expirationDateTime": _expiry(ttl_seconds).strftime(_STAMP)},
            what="renewing a subscription",
        )
        return Watch(resource_id="", expires_at=_when(answer), channel_id=channel_id)

    def stop_watch(self, *, channel_id: str, resource_id: str) -> None:
        self.client.call(
            "DELETE", f"/subscriptions/{quote(channel_id, safe='')}", what="unsubscribing"
        )

    @classmethod
    def parse_push(cls, *, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]):
        """The validation handshake (echo the token as text/plain), or a batch of change and
        lifecycle notifications, each naming its subscription and our clientState."""
        if query.get("validationToken"):
            return PushReceipt(reply=query["validationToken"])
        try:
            items = json.loads(body or b"{}").get("value") or []
        except (ValueError, AttributeError) as exc:
            raise PermanentError("not a Graph notification") from exc
        notifications = [
            PushNotification(
                channel_id=str(item.get("subscriptionId", "")),
                token=str(item.get("clientState") or ""),
                lifecycle=str(item.get("lifecycleEvent") or ""),
            )
            for item in items
            if isinstance(item, dict) and item.get("subscriptionId")
        ]
        if not notifications:
            raise PermanentError("not a Graph notification")
        return PushReceipt(notifications=notifications)


def _resource(item: dict) -> ProviderResource:
    return ProviderResource(
        item["id"], item.get("@odata.etag") or item.get("changeKey", ""), json.dumps(item)
    )


def _written(answer: dict) -> WrittenEvent:
    resource = _resource(answer)
    return WrittenEvent(resource.resource_id, resource.version, resource.payload)


def _expiry(ttl_seconds: int) -> datetime:
    minutes = min(ttl_seconds // 60, MAX_SUBSCRIPTION_MINUTES - 30)
    return datetime.now(UTC) + timedelta(minutes=minutes)


def _when(answer: dict) -> datetime | None:
    value = answer.get("expirationDateTime")
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
