"""The sandbox's in-memory state: plain dataclasses, guarded by the sandbox's lock.

OAuth clients, grants, tokens, codes, injected faults and the request log are the Google
sandbox's own dataclasses (the protocol differs, the bookkeeping does not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sync.sandbox.google.model import (
    AccessToken,
    AuthCode,
    Client,
    Fault,
    Grant,
    LoggedRequest,
    RefreshToken,
)

__all__ = [
    "AccessToken",
    "AuthCode",
    "Calendar",
    "Client",
    "Delivery",
    "Fault",
    "Grant",
    "LoggedRequest",
    "Membership",
    "RefreshToken",
    "StoredEvent",
    "Subscription",
    "User",
]

GRAPH = "https://graph.microsoft.com/"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# The tenant every personal Microsoft account (MSA) signs in from.
MSA_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
# OpenID Connect scopes: never qualified with the Graph resource.
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
PERSONAL_DOMAINS = re.compile(r"^(outlook|hotmail|live|msn|windowslive|passport)\.[a-z.]+$")

# Graph permissions as Microsoft spells them (scopes are case-insensitive).
KNOWN_SCOPES = [
    "User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All",
    "Calendars.Read", "Calendars.ReadBasic", "Calendars.ReadWrite",
    "Calendars.Read.Shared", "Calendars.ReadWrite.Shared",
    "MailboxSettings.Read", "MailboxSettings.ReadWrite", ".default",
]  # fmt: skip
_CANONICAL = {scope.lower(): scope for scope in KNOWN_SCOPES}
DEFAULT_SCOPES = ("offline_access", "openid", "profile", "User.Read", "Calendars.ReadWrite")

CALENDARS_READ = {
    GRAPH + s
    for s in (
        "Calendars.Read",
        "Calendars.ReadBasic",
        "Calendars.ReadWrite",
        "Calendars.Read.Shared",
        "Calendars.ReadWrite.Shared",
    )
}
CALENDARS_WRITE = {GRAPH + "Calendars.ReadWrite", GRAPH + "Calendars.ReadWrite.Shared"}
USER_READ = {
    GRAPH + s for s in ("User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All")
}
SETTINGS_READ = {GRAPH + "MailboxSettings.Read", GRAPH + "MailboxSettings.ReadWrite"}


def full_scope(scope: str) -> str:
    """'calendars.readwrite' -> 'https://graph.microsoft.com/Calendars.ReadWrite'; the OIDC
    scopes stay short, other resources' scopes stay as they are."""
    scope = scope.strip()
    if scope.lower() in OIDC_SCOPES:
        return scope.lower()
    prefix, name = "", scope
    if "://" in scope:
        prefix, _, name = scope.rpartition("/")
        if prefix.rstrip("/") + "/" != GRAPH:
            return scope
    return GRAPH + _CANONICAL.get(name.lower(), name)


def scope_list(scopes) -> list[str]:
    """Space-separated or listed scopes, fully qualified, without repeats, in order."""
    names = scopes.split() if isinstance(scopes, str) else list(scopes or ())
    return list(dict.fromkeys(full_scope(name) for name in names if name.strip()))


def scope_string(scopes) -> str:
    """Graph's scopes first, then the OIDC ones, as the token endpoint writes them."""
    graph = [s for s in scopes if s not in OIDC_SCOPES]
    return " ".join(graph + [s for s in OIDC_SCOPES if s in scopes])


def is_personal(email: str) -> bool:
    return bool(PERSONAL_DOMAINS.match(email.rpartition("@")[2].lower()))


@dataclass
class User:
    email: str  # the sign-in name (userPrincipalName)
    name: str
    given_name: str
    surname: str
    id: str  # a GUID for work accounts, 16 hex digits (the CID) for personal ones
    tenant_id: str
    personal: bool
    mail: str | None  # None for most personal accounts, as Graph answers them
    time_zone: str = "UTC"

    @property
    def oid(self) -> str:
        """The object id in tokens (a personal account's is derived from its CID)."""
        if not self.personal:
            return self.id
        return f"00000000-0000-0000-{self.id[:4]}-{self.id[4:]}"


@dataclass
class Membership:
    """How one user sees a calendar (the calendar resource's per-user flags)."""

    can_edit: bool = True
    can_share: bool = True
    can_view_private_items: bool = True
    is_default: bool = False
    is_removable: bool = True


@dataclass
class StoredEvent:
    """A single event, a series master or an exception, as the calendar stores it: Graph's
    writable fields (``data``) plus bookkeeping."""

    id: str
    data: dict
    change_key: str
    created: float
    modified: float
    order: int
    ical_uid: str
    master_id: str | None = None  # an exception: its series
    original_stamp: str | None = None  # an exception: the occurrence it replaces
    cancelled: set[str] = field(default_factory=set)  # a master: cancelled occurrences

    @property
    def is_master(self) -> bool:
        return bool(self.data.get("recurrence")) and self.master_id is None


@dataclass
class Calendar:
    id: str
    name: str
    owner_email: str
    owner_name: str
    color: str = "auto"
    hex_color: str = ""
    change_key: str = ""
    members: dict[str, Membership] = field(default_factory=dict)
    events: dict[str, StoredEvent] = field(default_factory=dict)
    next_order: int = 0
    generation: int = 1  # bumped by expire_delta_tokens(): older tokens answer 410


@dataclass
class Subscription:
    id: str
    resource: str
    change_types: list[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None = field(repr=False)
    expires_at: float
    client_id: str
    email: str
    calendar_id: str  # the calendar whose events it watches ("me/events": the default one)
    removed: bool = False


@dataclass(frozen=True)
class Delivery:
    """One notification the sandbox POSTed (or tried to) to a subscriber."""

    subscription_id: str
    kind: str  # "change" or "lifecycle"
    event: str  # the changeType, or the lifecycleEvent
    url: str
    body: dict
    status: int | None  # the receiver's HTTP status; None when it could not be reached
    error: str | None
    at: float

    @property
    def channel_id(self) -> str:
        """The name the shared push queue filters on."""
        return self.subscription_id

    @property
    def notification(self) -> dict:
        """The (only) item of the delivery's ``value``."""
        return self.body["value"][0]
