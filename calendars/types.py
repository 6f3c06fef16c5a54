"""Dataclasses other apps hand to calendars.services (they never build Event rows themselves)."""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class EventIdentity:
    """Where an event lives at the provider: series/event key plus instance start, if any."""

    provider_key: str
    original_start: datetime | None = None


@dataclass(frozen=True)
class EventData:
    """The normalized content of one event (or one instance of a series) from a provider."""

    provider_key: str
    start: datetime
    end: datetime
    original_start: datetime | None = None
    summary: str = ""
    description: str = ""
    location_description: str = ""
    location_lat: str = ""
    location_long: str = ""
    url: str = ""
    meeting_url: str = ""
    is_all_day: bool = False
    start_date: date | None = None
    end_date: date | None = None
    tzid: str = "Etc/UTC"
    status: str = "confirmed"
    transparency: str = "opaque"
    extended_transparency: str = ""  # out_of_office, working_elsewhere; "" = transparency
    participation_status: str = "unknown"
    attendees: list = field(default_factory=list)
    organizer: dict = field(default_factory=dict)
    categories: list = field(default_factory=list)
    is_recurring: bool = False
    is_private: bool = False
    ical_uid: str = ""
    provider_created_at: datetime | None = None
    provider_updated_at: datetime | None = None
    # Storage details: kept current, but a change in them alone is not a change of the event.
    provider_resource: str = ""
    provider_etag: str = ""
    raw: str = ""

    STORAGE_FIELDS = ("provider_resource", "provider_etag", "raw")

    @property
    def identity(self) -> EventIdentity:
        return EventIdentity(self.provider_key, self.original_start)

    # Fields added after events were first cached: left out of the content while empty, so
    # that adding one does not change every stored fingerprint (and report every event as
    # updated on the next sync).
    LATER_FIELDS = ("extended_transparency",)

    def content(self) -> dict:
        data = asdict(self)
        for name in self.STORAGE_FIELDS:
            data.pop(name)
        for name in self.LATER_FIELDS:
            if not data[name]:
                data.pop(name)
        return data

    def fingerprint(self) -> str:
        encoded = json.dumps(self.content(), sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass
class ApplyResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0

    @property
    def changed(self) -> int:
        return self.created + self.updated + self.deleted

    def add(self, other: "ApplyResult") -> None:
        self.created += other.created
        self.updated += other.updated
        self.deleted += other.deleted
        self.unchanged += other.unchanged


@dataclass(frozen=True)
class CalendarData:
    """A provider's view of one calendar of a profile."""

    provider_calendar_id: str
    name: str
    is_readonly: bool = False
    is_primary: bool = False
    color: str = ""


@dataclass
class CalendarListResult:
    calendars: list = field(default_factory=list)  # the live Calendar rows, in input order
    created: list = field(default_factory=list)
    updated: list = field(default_factory=list)
    deleted: list = field(default_factory=list)


@dataclass(frozen=True)
class Conferencing:
    """An upsert's `conferencing`: `explicit` (the integrator's own `join_url`), `none` (remove
    the link), or `default` (have the calendar's provider create a meeting)."""

    profile_id: str
    join_url: str = ""
    provider_description: str = ""


@dataclass(frozen=True)
class ManagedEventContent:
    """The validated body of an upsert (POST /v1/calendars/{id}/events), minus its identity.

    Times are aware UTC; all-day events carry `start_date`/`end_date` (end exclusive) and the
    UTC midnights of those dates in `start`/`end`. `transparency` None and `reminders` None mean
    "leave what the provider has".
    """

    summary: str
    start: datetime
    end: datetime
    description: str = ""
    location_description: str = ""
    location_lat: str = ""
    location_long: str = ""
    url: str = ""
    is_all_day: bool = False
    start_date: date | None = None
    end_date: date | None = None
    tzid: str = "Etc/UTC"
    transparency: str | None = None
    is_private: bool = False
    reminders: tuple[int, ...] | None = None
    reminders_create_only: bool = False
    color: str = ""
    # calendars.recurrence's normalized rule (None: a single event); managed events only.
    recurrence: dict | None = None
    conferencing: Conferencing | None = None  # None: leave the conferencing as it is
    attendees_invite: tuple[tuple[str, str], ...] = ()  # (email, display_name)
    attendees_remove: tuple[tuple[str, str], ...] = ()
