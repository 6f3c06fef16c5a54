"""The adapter interface, its provider-neutral dataclasses and its error hierarchy.

Each provider is one package (`sync/providers/<key>/`) implementing `Provider`: it reads a
calendar's changes into a `ChangeSet` of `ProviderResource`s under a cursor only it can read,
normalizes each resource into events (`EventData`, the cache's own provider-neutral event), and
turns a desired state into its own format for writes. Adapters import no models and no
settings: they receive credentials and return these dataclasses; `sync.services` turns them
into rows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

# The event content the cache stores is the provider-neutral event: calendars.types is a
# stdlib-only dataclass module, so using it keeps adapters pure without a second copy of its
# thirty fields that would drift.
from calendars.types import EventData


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


class WriteQuotaExceeded(RateLimited):
    """The account may not write for a while (Google's anti-abuse limit lifts after hours);
    reading still works. The reconciler pauses every write of the profile until then."""


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
    PUT, or a concurrent writer): `resource_id` is where it lives; refetch and update it."""

    def __init__(self, message: str = "already exists", *, resource_id: str):
        super().__init__(message)
        self.resource_id = resource_id


class InvalidData(PermanentError):
    """Provider content we cannot read, or a desired state we cannot express in the
    provider's format: retrying the same input cannot help."""


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
class ProviderResource:
    """One stored item at the provider: the id writes address it by (a CalDAV href, a Google
    or Graph event id), its version (etag, change key) and its payload in the provider's own
    format (iCalendar text, JSON), which only its adapter reads."""

    resource_id: str
    version: str
    payload: str


@dataclass(frozen=True)
class ChangeSet:
    """What changed in one calendar since a cursor.

    `cursor`: opaque, owned by the adapter (a sync token, a delta link, validators): the
    engine stores it with the data it covers and hands it back, and never reads it.
    `is_full`: `resources` is the complete current content (an initial sync, a resync after an
    invalid cursor, or an ICS snapshot); whatever the cache holds beyond it is gone.
    Otherwise `resources` are the changed ones and `deleted` the resource ids removed.
    `unchanged`: the cheap check (ctag, 304, same body) says nothing changed.
    """

    cursor: str
    resources: list[ProviderResource] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    is_full: bool = False
    unchanged: bool = False


@dataclass(frozen=True)
class Window:
    """The half-open span [start, end) of instances we materialize (aware UTC)."""

    start: datetime
    end: datetime

    @classmethod
    def around(cls, today: date, *, past_days: int, future_days: int) -> Window:
        start = datetime.combine(today - timedelta(days=past_days), time(), tzinfo=UTC)
        end = datetime.combine(today + timedelta(days=future_days), time(), tzinfo=UTC)
        return cls(start, end)


@dataclass(frozen=True)
class ReadContext:
    """What normalizing needs to know of the account: the zone of floating times, and the
    end-user's own addresses (their participation status in an event)."""

    default_tzid: str = "Etc/UTC"
    self_emails: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NormalizedResource:
    """One resource as events inside a window.

    `uids`: the iCalendar UIDs (event keys) it holds, even where no instance falls in the
    window; `series`: the payload to keep for expanding the series again when the window
    rolls, without asking the provider ('' when it does not recur)."""

    uids: list[str]
    events: list[EventData]
    series: str = ""


@dataclass(frozen=True)
class WriteContext:
    """Who writes: the event's iCalendar UID, the organizer of an event we create, and the
    end-user's own addresses (whose participation an answer changes)."""

    uid: str
    organizer_email: str = ""
    self_emails: frozenset[str] = frozenset()
    # A write to one instance of a series: its original start (aware UTC); None for the
    # event or series as a whole. Adapters that cannot write one instance raise NotSupported.
    instance_start: datetime | None = None


@dataclass(frozen=True)
class Rendered:
    """A payload to write, and whether it differs from what the provider holds (no call
    when it does not)."""

    payload: str
    changed: bool


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
    # A subscription's own event rather than a change (Graph: reauthorizationRequired,
    # subscriptionRemoved, missed); empty for a change notification.
    lifecycle: str = ""


@dataclass(frozen=True)
class PushReceipt:
    """What a receiver request held, and the body to answer with (a provider's handshake,
    such as Graph's validationToken echo; empty: no body)."""

    notifications: list[PushNotification] = field(default_factory=list)
    reply: str = ""


@dataclass(frozen=True)
class WrittenEvent:
    """Where a written event now lives at the provider, and its new version ('' when the
    provider did not say: the caller reads it back). `payload`: the resource as the provider
    answered it, when it did (Google); '' means it holds what was written."""

    resource_id: str
    version: str
    payload: str = ""


class Provider(ABC):
    """One provider account, seen through its credentials."""

    key: str = ""
    # The account id of `describe_account` is itself a credential (an ICS feed URL): the
    # database keeps only a keyed hash of it (sync.services.identity).
    identity_is_secret: bool = False

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
        known_versions: Callable[[], dict[str, str]] | None = None,
        known_payloads: Callable[[list[str]], dict[str, str]] | None = None,
        window: Window | None = None,
    ) -> ChangeSet:
        """Changes of one calendar since `cursor` (None: everything, `is_full`).

        `cursor` is what this adapter put in an earlier ChangeSet. `known_versions()` (resource
        id -> version of what the cache holds) serves providers without a change feed;
        `known_payloads(ids)` gives the series payloads the cache keeps for those resources
        (NormalizedResource.series), for a provider that sends a changed instance alone and
        must merge it into its series (Google). `window`: the span the cache holds, for a
        provider that lists occurrences only inside a window (Graph's calendarView).
        Raises CursorInvalid (run again with None), AuthExpired, RateLimited, TemporaryError,
        PermanentError.
        """

    def unchanged_calendars(self, cursors: Mapping[str, str | None]) -> set[str]:
        """Of these calendars (provider calendar id -> the cursor its last sync stored), the
        ones that certainly have not changed since, found in as few requests as the provider
        allows (CalDAV: one PROPFIND Depth 1 per calendar home reads every ctag/sync-token).

        A poll of many calendars of one account asks this first and fetches only the rest.
        An id left out is not known to have changed, only not known to be unchanged: its
        `fetch_changes` decides. The default answers nothing (no cheap account-wide check).
        Raises AuthExpired, RateLimited, TemporaryError like the other calls.
        """
        return set()

    # How the provider's resources relate to events. False (CalDAV, ICS, Google): a resource
    # holds every instance of its UIDs, so what a UID no longer produces is gone. True
    # (Graph's calendarView): each resource is one event or one occurrence, a series is spread
    # over many, and what goes stale is what a resource itself no longer produces.
    instance_resources = False
    # Whether a full listing covers only the sync window (Graph): what ended before it is then
    # history, kept, not deleted.
    window_bounded = False

    # --- reading the provider's format (class methods: no credentials, no requests) ---
    @classmethod
    def normalize(
        cls, resource: ProviderResource, *, window: Window, context: ReadContext
    ) -> NormalizedResource:
        """The events of one resource inside `window` (a recurring series expanded, instances
        keyed by event key and original start). Raises InvalidData."""
        raise NotSupported(f"{cls.key} has no event format")

    # --- writes (used by the write reconciler; read-only providers keep these defaults) ---
    # How many requests one profile may have in flight at once across all our workers (Graph:
    # 4 per mailbox); None: no limit. sync.services.credentials enforces it.
    max_concurrent_requests: int | None = None

    @classmethod
    def render_event(cls, *, desired: Mapping, current: str, context: WriteContext) -> Rendered:
        """The payload that makes the provider hold `desired` (an upsert's fields, as the API
        validated them), merged into `current` (the payload it holds; '' for a new event) so
        that what the integrator did not set is kept. Raises InvalidData."""
        raise PermanentError(f"{cls.key} calendars are read-only")

    @classmethod
    def render_participation(cls, *, status: str, current: str, context: WriteContext) -> Rendered:
        """`current` with the end-user's answer (accepted, tentative, declined) to an
        invitation. Raises InvalidData (e.g. the end-user is not invited)."""
        raise PermanentError(f"{cls.key} calendars are read-only")

    def get_event(self, resource_id: str, *, calendar_id: str = "") -> ProviderResource:
        """The current content and version of one event resource. Raises NotFound, AuthExpired,
        RateLimited, TemporaryError, PermanentError."""
        raise NotSupported(f"{self.key} does not support reading single events")

    def create_event(self, calendar_id: str, payload: str, *, idempotency_key: str) -> WrittenEvent:
        """Create an event so that a retry with the same `idempotency_key` cannot duplicate it
        (CalDAV: a deterministic href with If-None-Match; Google: a client-chosen id; Graph:
        transactionId).

        Raises AlreadyExists (with its resource id) when it is already there, PermanentError
        when the calendar is read-only or gone, AuthExpired, RateLimited, TemporaryError.
        """
        raise PermanentError(f"{self.key} calendars are read-only")

    @classmethod
    def provider_key_for(cls, idempotency_key: str) -> str:
        """The event key (EventData.provider_key) that an event created with this key will
        have: the reconciler gives it to the cached event before the create, so that a sync
        that sees the new event first finds the same event, not a second one. CalDAV: the UID
        itself; Google: the event id we choose."""
        return idempotency_key

    def resource_for_key(
        self, calendar_id: str, idempotency_key: str, *, around: tuple[datetime, datetime] | None
    ) -> str:
        """Where create_event with this key put the event ('' if nowhere, or unknowable): a
        delete of a create that crashed before we recorded it removes it there. Adapters
        whose ids derive from the key answer without a call; others may look among the
        events `around` (the time the event was last given, padded) for their key."""
        return ""

    def update_event(
        self, resource_id: str, payload: str, *, version: str = "", calendar_id: str = ""
    ) -> WrittenEvent:
        """Replace an event; with `version`, only if the provider still holds that version.

        Raises Conflict when it changed (or vanished) since `version`, PermanentError,
        AuthExpired, RateLimited, TemporaryError.
        """
        raise PermanentError(f"{self.key} calendars are read-only")

    def delete_event(self, resource_id: str, *, version: str = "", calendar_id: str = "") -> None:
        """Delete an event; with `version`, only if unchanged. An event already gone is not an
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
