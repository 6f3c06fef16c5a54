"""The adapter interface, its dataclasses and its error hierarchy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


# --- Errors: the service decides what each one means (retry, backoff, disconnect, resync). ---
class ProviderError(Exception):
    """Base of every error an adapter raises. Messages never contain credentials."""


class AuthExpired(ProviderError):
    """Credentials rejected (401/403 on auth, invalid_grant): the profile must be relinked."""


class CursorInvalid(ProviderError):
    """The sync cursor was rejected (410, DAV:valid-sync-token): run a full resync."""


class RateLimited(ProviderError):
    """The provider asked us to slow down; `retry_after` seconds if it said so."""

    def __init__(self, message: str = "rate limited", *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class TemporaryError(ProviderError):
    """Network failure, timeout, 5xx: retry later with backoff."""


class PermanentError(ProviderError):
    """The request can never succeed as it is (404 calendar gone, 400, invalid data)."""


class NotFound(PermanentError):
    """The addressed event resource does not exist (any more) at the provider."""


class Conflict(ProviderError):
    """A precondition failed (HTTP 412): the resource changed since the version we named
    (If-Match), or already exists (If-None-Match). Refetch, merge and try again."""


class AlreadyExists(Conflict):
    """A create found the resource already there (an earlier attempt that crashed after its
    PUT, or a concurrent writer): `href` is where it lives; refetch and update it."""

    def __init__(self, message: str = "already exists", *, href: str):
        super().__init__(message)
        self.href = href


class NotSupported(PermanentError):
    """The provider (or this kind of account) cannot do that at all (e.g. an ICS feed)."""


# --- Credentials ---
@dataclass(frozen=True)
class CalDAVCredentials:
    url: str
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class IcsCredentials:
    url: str = field(repr=False)  # secret feed URLs are credentials too


@dataclass(frozen=True)
class OAuthCredentials:
    access_token: str = field(repr=False)
    refresh_token: str = field(default="", repr=False)
    expires_at: float | None = None  # unix time


# --- Results ---
@dataclass(frozen=True)
class ProviderCalendar:
    provider_calendar_id: str
    name: str
    is_readonly: bool = False
    is_primary: bool = False
    color: str = ""
    # Cheap change indicators (CalDAV getctag / sync-token); empty when unknown.
    ctag: str = ""
    sync_token: str = ""


@dataclass(frozen=True)
class ProviderAccount:
    """Who the credentials belong to: a stable id (for relinking) and a display name."""

    provider_account_id: str
    profile_name: str
    provider_service: str = ""


@dataclass(frozen=True)
class RawResource:
    """One stored resource at the provider: its address, version and iCalendar text."""

    href: str
    etag: str
    ical: str


@dataclass(frozen=True)
class ChangeSet:
    """What changed in one calendar since a cursor.

    `is_full`: `resources` is the complete current content (an initial sync, a resync after an
    invalid cursor, or an ICS snapshot); whatever the cache holds beyond it is gone.
    Otherwise `resources` are the changed ones and `deleted` the hrefs removed.
    `unchanged`: the cheap check (ctag, 304, same body) says nothing changed; `cursor` is kept.
    """

    cursor: str
    resources: list[RawResource] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    is_full: bool = False
    unchanged: bool = False
    ctag: str = ""
    # Calendar-level properties that apply to every resource (ICS X-WR-TIMEZONE).
    default_tzid: str = ""


@dataclass(frozen=True)
class Watch:
    """A push subscription as the provider knows it (Google channel, Graph subscription).
    `channel_id`: the id its notifications will name, when the provider assigns it (Graph);
    empty when it is the one we chose (Google)."""

    resource_id: str
    expires_at: datetime | None
    channel_id: str = ""


@dataclass(frozen=True)
class PushNotification:
    """One notification a provider delivered to our receiver: which channel, with the secret
    token we gave it (checked by the service, in constant time)."""

    channel_id: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class PushReceipt:
    """What a receiver request held, and the body to answer with (a provider's handshake,
    such as Graph's validationToken echo; empty: no body)."""

    notifications: list[PushNotification] = field(default_factory=list)
    reply: str = ""


@dataclass(frozen=True)
class WrittenEvent:
    """Where a written event now lives at the provider."""

    href: str
    etag: str


class Provider(ABC):
    """One provider account, seen through its credentials."""

    key: str = ""

    @abstractmethod
    def describe_account(self) -> ProviderAccount:
        """Identity of the connected account. Raises AuthExpired, TemporaryError…"""

    @abstractmethod
    def list_calendars(self) -> list[ProviderCalendar]:
        """Every event calendar of the account. Raises AuthExpired, TemporaryError…"""

    @abstractmethod
    def fetch_changes(
        self,
        calendar_id: str,
        cursor: str | None,
        *,
        known_ctag: str = "",
        known_etags: dict[str, str] | None = None,
    ) -> ChangeSet:
        """Changes of one calendar since `cursor` (None: everything, `is_full`).

        `known_ctag` enables the cheap unchanged check; `known_etags` (href -> etag of what we
        hold) serves providers without a change feed. Raises CursorInvalid (run again with
        None), AuthExpired, RateLimited, TemporaryError, PermanentError.
        """

    def get_event(self, href: str, *, calendar_id: str = "") -> RawResource:
        """The current content and version of one event resource. Raises NotFound, AuthExpired,
        RateLimited, TemporaryError, PermanentError."""
        raise NotSupported(f"{self.key} does not support reading single events")

    def create_event(self, calendar_id: str, uid: str, ical: str) -> WrittenEvent:
        """Create an event at a deterministic address (so a retry cannot duplicate it).

        Raises AlreadyExists (with its href) when it is already there, PermanentError when the
        calendar is read-only or gone, AuthExpired, RateLimited, TemporaryError.
        """
        raise PermanentError(f"{self.key} calendars are read-only")

    def update_event(
        self, href: str, ical: str, *, etag: str = "", calendar_id: str = ""
    ) -> WrittenEvent:
        """Replace an event; with `etag`, only if the provider still holds that version.

        Raises Conflict when it changed (or vanished) since `etag`, PermanentError, AuthExpired,
        RateLimited, TemporaryError.
        """
        raise PermanentError(f"{self.key} calendars are read-only")

    def delete_event(self, href: str, *, etag: str = "", calendar_id: str = "") -> None:
        """Delete an event; with `etag`, only if unchanged. An event already gone is not an
        error. Raises Conflict, PermanentError, AuthExpired, RateLimited, TemporaryError."""
        raise PermanentError(f"{self.key} calendars are read-only")

    def create_calendar(self, name: str) -> ProviderCalendar:
        """Create a calendar in the account."""
        raise NotSupported(f"{self.key} does not support creating calendars")

    # --- provider push (a hint to sync now; polling stays on as the safety net) ---
    supports_push = False

    def watch(
        self, calendar_id: str, *, channel_id: str, address: str, token: str, ttl_seconds: int
    ) -> Watch:
        """Ask the provider to POST to `address` when the calendar changes, naming
        `channel_id` and `token`. Raises NotSupported, AuthExpired, RateLimited,
        TemporaryError, PermanentError."""
        raise NotSupported(f"{self.key} has no push notifications")

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
        """Extend a subscription before it expires (Graph). Providers that cannot (Google)
        raise NotSupported, and the service opens a new channel, then stops the old one."""
        raise NotSupported(f"{self.key} cannot extend a push subscription")

    def stop_watch(self, *, channel_id: str, resource_id: str) -> None:
        """End a subscription; one already gone is not an error."""
        raise NotSupported(f"{self.key} has no push notifications")

    @classmethod
    def parse_push(cls, *, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]):
        """A receiver request -> PushReceipt. Raises PermanentError for a malformed one."""
        raise NotSupported(f"{cls.key} has no push notifications")
