"""The sandbox's in-memory state: plain dataclasses, guarded by the sandbox's lock."""

from __future__ import annotations

from dataclasses import dataclass, field

AUTH = "https://www.googleapis.com/auth/"
EMAIL_SCOPE = AUTH + "userinfo.email"
PROFILE_SCOPE = AUTH + "userinfo.profile"
# Google writes the sign-in scopes' short names out in full in what it grants.
SCOPE_ALIASES = {"email": EMAIL_SCOPE, "profile": PROFILE_SCOPE}
SIGN_IN_SCOPES = frozenset({"openid", EMAIL_SCOPE, PROFILE_SCOPE})

ROLES = ("freeBusyReader", "reader", "writer", "owner")

# Google's calendar palette (colorId -> background); foreground is black for all of them.
CALENDAR_COLORS = {
    "1": "#ac725e", "2": "#d06b64", "3": "#f83a22", "4": "#fa573c", "5": "#ff7537",
    "6": "#ffad46", "7": "#42d692", "8": "#16a765", "9": "#7bd148", "10": "#b3dc6c",
    "11": "#fbe983", "12": "#fad165", "13": "#92e1c0", "14": "#9fe1e7", "15": "#9fc6e7",
    "16": "#4986e7", "17": "#9a9cff", "18": "#b99aff", "19": "#c2c2c2", "20": "#cabdbf",
    "21": "#cca6ac", "22": "#f691b2", "23": "#cd74e6", "24": "#a47ae2",
}  # fmt: skip
EVENT_COLORS = {
    "1": "#a4bdfc", "2": "#7ae7bf", "3": "#dbadff", "4": "#ff887c", "5": "#fbd75b",
    "6": "#ffb878", "7": "#46d6db", "8": "#e1e1e1", "9": "#5484ed", "10": "#51b749",
    "11": "#dc2127",
}  # fmt: skip


def full_scope(scope: str) -> str:
    """'calendar' -> 'https://www.googleapis.com/auth/calendar'; 'email' -> userinfo.email."""
    scope = scope.strip()
    if scope in SCOPE_ALIASES:
        return SCOPE_ALIASES[scope]
    if scope == "openid" or "://" in scope:
        return scope
    return AUTH + scope


def scope_list(scopes) -> list[str]:
    if isinstance(scopes, str):
        scopes = scopes.split()
    result: list[str] = []
    for scope in scopes or ():
        full = full_scope(scope)
        if full and full not in result:
            result.append(full)
    return result


@dataclass
class Client:
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]


@dataclass
class User:
    email: str
    name: str
    given_name: str
    family_name: str
    picture: str
    sub: str
    # The scopes this user ticks on the consent screen; None: every scope asked for.
    granted_scopes: set[str] | None = None


@dataclass
class Grant:
    """One user's authorization of one client (what /revoke and `revoke()` end)."""

    email: str
    client_id: str
    scopes: set[str] = field(default_factory=set)
    revoked: bool = False
    has_refresh_token: bool = False


@dataclass
class AccessToken:
    token: str = field(repr=False)
    grant: Grant
    scopes: tuple[str, ...]
    expires_at: float
    access_type: str = "online"
    revoked: bool = False

    def alive(self, now: float) -> bool:
        return not self.revoked and not self.grant.revoked and now < self.expires_at


@dataclass
class RefreshToken:
    token: str = field(repr=False)
    grant: Grant
    scopes: tuple[str, ...]
    revoked: bool = False

    def alive(self) -> bool:
        return not self.revoked and not self.grant.revoked


@dataclass
class AuthCode:
    code: str = field(repr=False)
    client_id: str
    redirect_uri: str
    email: str
    scopes: tuple[str, ...]
    access_type: str
    prompt: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    include_granted_scopes: bool
    expires_at: float
    used: bool = False


@dataclass
class StoredEvent:
    """An event as the calendar stores it: Google resource fields (without kind, etag,
    htmlLink and the computed "self" flags) plus bookkeeping."""

    data: dict
    etag: str
    seq: int  # the calendar's change sequence when it last changed (sync tokens)
    order: int  # creation order (default listing order, stable for paging)
    created_ms: int
    updated_ms: int

    @property
    def cancelled(self) -> bool:
        return self.data.get("status") == "cancelled"

    @property
    def is_master(self) -> bool:
        return bool(self.data.get("recurrence")) and not self.data.get("recurringEventId")


@dataclass
class Calendar:
    id: str
    summary: str
    time_zone: str
    description: str = ""
    location: str = ""
    owner: str | None = None
    etag: str = ""
    events: dict[str, StoredEvent] = field(default_factory=dict)
    seq: int = 0
    generation: int = 0  # bumped by expire_sync_tokens(): older tokens answer 410
    next_order: int = 0
    updated_ms: int = 0
    deleted: bool = False


@dataclass
class ListEntry:
    """A calendar as one user's calendar list shows it (calendarListEntry)."""

    calendar_id: str
    access_role: str
    primary: bool = False
    hidden: bool = False
    deleted: bool = False
    selected: bool = True
    summary_override: str | None = None
    color_id: str = "14"
    background_color: str = CALENDAR_COLORS["14"]
    foreground_color: str = "#000000"
    default_reminders: list = field(default_factory=list)
    etag: str = ""
    seq: int = 0


@dataclass
class UserList:
    entries: dict[str, ListEntry] = field(default_factory=dict)
    seq: int = 0
    generation: int = 0


@dataclass
class Channel:
    id: str
    resource_id: str
    resource_uri: str
    kind: str  # "events" (target: calendar id) or "calendarList" (target: user email)
    target: str
    address: str
    token: str | None = field(repr=False)
    expiration_ms: int
    client_id: str
    email: str
    message_number: int = 0
    stopped: bool = False


@dataclass(frozen=True)
class Delivery:
    """One push message the sandbox POSTed (or tried to) to a channel's address."""

    channel_id: str
    resource_state: str
    message_number: int
    address: str
    headers: dict
    status: int | None  # the receiver's HTTP status; None when it could not be reached
    error: str | None
    at: float


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict  # first value of each parameter
    status: int
    peer_port: int = 0  # the client's TCP port: which process sent it (`ss -tnp`)


@dataclass
class Fault:
    method: str  # "*" for any
    pattern: object  # compiled regex, searched in the path
    status: int | None  # None: answer normally (after `delay`)
    reason: str | None
    message: str | None
    count: int
    retry_after: float | str | None
    delay: float
    hold: float = 0  # seconds the answer is held back after the request took effect
