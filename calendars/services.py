"""Writes to the cached schedule. Every change writes change-log rows in the same transaction."""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import Account, Profile
from calendars.models import Calendar, ChangeLogEntry, Event
from calendars.types import (
    ApplyResult,
    CalendarData,
    CalendarListResult,
    EventData,
    EventIdentity,
)

_LOOKUP_CHUNK = 500


def record_changes(
    *,
    account: Account,
    changes: Sequence[tuple[str, Calendar | None, Event | None]],
    application=None,
    at: datetime | None = None,
) -> list[ChangeLogEntry]:
    """Append (kind, calendar, event) entries to the account's change log.

    Must run inside the transaction that made the changes (raises TransactionManagementError
    otherwise): the sequence allocation locks the account row until commit, which orders
    concurrent writers of one account.
    """
    if not changes:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError("record_changes needs a transaction")
    at = at or timezone.now()
    sequences = account.allocate_change_sequences(len(changes))
    entries = [
        ChangeLogEntry(
            account=account,
            sequence=sequence,
            kind=kind,
            calendar=calendar,
            event=event,
            application=application,
            changed_at=at,
        )
        for sequence, (kind, calendar, event) in zip(sequences, changes, strict=True)
    ]
    return ChangeLogEntry.objects.bulk_create(entries)


def _existing_events(calendar: Calendar, keys: Iterable[str]) -> dict[EventIdentity, Event]:
    keys = sorted(set(keys))
    found: dict[EventIdentity, Event] = {}
    for i in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[i : i + _LOOKUP_CHUNK]
        for event in Event.objects.filter(calendar=calendar, provider_key__in=chunk):
            found[EventIdentity(event.provider_key, event.original_start)] = event
    return found


def _copy_content(event: Event, data: EventData, fingerprint: str) -> None:
    for name, value in data.content().items():
        setattr(event, name, value)
    for name in EventData.STORAGE_FIELDS:
        setattr(event, name, getattr(data, name))
    event.fingerprint = fingerprint


_CONTENT_FIELDS = [*EventData.__dataclass_fields__]
_UPDATE_FIELDS = [
    *[f for f in _CONTENT_FIELDS if f not in ("provider_key", "original_start")],
    "fingerprint",
    "is_deleted",
    "deleted_at",
    "updated_at",
]


def apply_provider_events(
    *,
    calendar: Calendar,
    upserts: Sequence[EventData] = (),
    deletions: Sequence[EventIdentity] = (),
) -> ApplyResult:
    """Apply a provider's view of some events to the cache, touching only what changed.

    Upserts are matched by provider identity (key + original start); an event whose content
    fingerprint is unchanged bumps nothing (storage details such as the etag are refreshed
    silently). Deletions become tombstones (`is_deleted`), kept for include_deleted and
    last_modified reads. One change-log entry is written per created, updated or deleted event.
    """
    result = ApplyResult()
    now = timezone.now()
    account = calendar.profile.account
    with transaction.atomic():
        keys = [d.provider_key for d in upserts] + [i.provider_key for i in deletions]
        existing = _existing_events(calendar, keys)
        to_create: list[Event] = []
        to_update: list[Event] = []
        storage_only: list[Event] = []
        changes: list[tuple[str, Event]] = []

        for data in upserts:
            fingerprint = data.fingerprint()
            event = existing.get(data.identity)
            if event is None:
                event = Event(account=account, calendar=calendar, created_at=now, updated_at=now)
                _copy_content(event, data, fingerprint)
                to_create.append(event)
                existing[data.identity] = event
                result.created += 1
            elif event.fingerprint == fingerprint and not event.is_deleted:
                if any(getattr(event, n) != getattr(data, n) for n in EventData.STORAGE_FIELDS):
                    for name in EventData.STORAGE_FIELDS:
                        setattr(event, name, getattr(data, name))
                    storage_only.append(event)
                result.unchanged += 1
            else:
                _copy_content(event, data, fingerprint)
                event.is_deleted, event.deleted_at, event.updated_at = False, None, now
                to_update.append(event)
                changes.append((ChangeLogEntry.Kind.EVENT_UPDATED, event))
                result.updated += 1

        for identity in deletions:
            event = existing.get(identity)
            if event is None or event.is_deleted or event.pk is None:
                continue
            event.is_deleted, event.deleted_at, event.updated_at = True, now, now
            to_update.append(event)
            changes.append((ChangeLogEntry.Kind.EVENT_DELETED, event))
            result.deleted += 1

        Event.objects.bulk_create(to_create, batch_size=500)
        changes.extend((ChangeLogEntry.Kind.EVENT_CREATED, event) for event in to_create)
        Event.objects.bulk_update(to_update, _UPDATE_FIELDS, batch_size=500)
        Event.objects.bulk_update(storage_only, list(EventData.STORAGE_FIELDS), batch_size=500)
        record_changes(
            account=account,
            changes=[(kind, calendar, event) for kind, event in changes],
            at=now,
        )
    return result


# ---------------------------------------------------------------------------------------------
# Calendar creation (POST /v1/calendars)


class CalendarCreationError(Exception):
    """Base of the errors create_calendar raises."""


class DuplicateCalendarName(CalendarCreationError):
    """The profile already has a calendar with this name (Cronofy: 422 duplicate_calendar_name)."""


class ProfileNotWritable(CalendarCreationError):
    """The profile is disconnected or read-only (Cronofy: 423)."""


class CalendarCreationFailed(CalendarCreationError):
    """The provider could not be reached or refused for a passing reason: try again later."""


class CalendarCreationNotSupported(CalendarCreationError):
    """The profile's provider cannot create calendars (an ICS feed, or no adapter installed)."""


@dataclass(frozen=True)
class ProviderCalendar:
    """What a provider answers when it has created a calendar."""

    provider_calendar_id: str
    name: str
    color: str = ""
    is_readonly: bool = False


def provider_calendar_creation_unsupported(*, profile: Profile, name: str, color: str):
    """Default CALENDAR_PROVIDER_CREATOR: no provider adapter is installed."""
    raise CalendarCreationNotSupported(
        f"calendars cannot be created in {profile.provider} profiles"
    )


def _provider_creator() -> Callable[..., ProviderCalendar]:
    """The callable named by settings.CALENDAR_PROVIDER_CREATOR.

    The sync app (which owns the provider adapters) names its function there; calendars never
    imports sync. Contract: `creator(*, profile, name, color) -> ProviderCalendar`, raising
    DuplicateCalendarName, ProfileNotWritable or CalendarCreationNotSupported.
    """
    return import_string(settings.CALENDAR_PROVIDER_CREATOR)


def _name_taken(profile: Profile, name: str) -> bool:
    return Calendar.objects.filter(
        profile=profile, is_deleted=False, name__iexact=name.strip()
    ).exists()


def create_calendar(*, profile: Profile, name: str, color: str = "", application=None) -> Calendar:
    """Create a calendar at the profile's provider, then record it in the cache.

    The provider call happens outside any transaction (it is network I/O); the row and its
    change-log entry are written together afterwards. Raises DuplicateCalendarName (also when
    the provider reports one), ProfileNotWritable, CalendarCreationNotSupported.
    """
    if not profile.is_connected:
        raise ProfileNotWritable("the profile is disconnected")
    if _name_taken(profile, name):
        raise DuplicateCalendarName(f"a calendar named {name!r} already exists")
    created = _provider_creator()(profile=profile, name=name, color=color)
    with transaction.atomic():
        calendar, _ = Calendar.objects.update_or_create(
            profile=profile,
            provider_calendar_id=created.provider_calendar_id,
            defaults={
                "name": created.name or name,
                "color": created.color or color,
                "is_readonly": created.is_readonly,
                "is_deleted": False,
            },
        )
        record_changes(
            account=profile.account,
            changes=[(ChangeLogEntry.Kind.CALENDAR_CREATED, calendar, None)],
            application=application,
        )
    return calendar


_CALENDAR_FIELDS = ("name", "is_readonly", "is_primary", "color")


def upsert_provider_calendars(
    *, profile: Profile, calendars: Sequence[CalendarData], is_complete: bool = True
) -> CalendarListResult:
    """Make the profile's cached calendar list match the provider's.

    Calendars are matched by provider id; only changed ones are written. With `is_complete`,
    cached calendars the provider no longer lists are marked deleted (kept, never removed);
    a deleted calendar that reappears comes back. Writes calendar_created/updated/deleted
    change-log entries in the same transaction.
    """
    result = CalendarListResult()
    with transaction.atomic():
        existing = {c.provider_calendar_id: c for c in Calendar.objects.filter(profile=profile)}
        seen = set()
        for data in calendars:
            if data.provider_calendar_id in seen:
                continue
            seen.add(data.provider_calendar_id)
            calendar = existing.get(data.provider_calendar_id)
            if calendar is None:
                calendar = Calendar(profile=profile, provider_calendar_id=data.provider_calendar_id)
                for name in _CALENDAR_FIELDS:
                    setattr(calendar, name, getattr(data, name))
                result.created.append(calendar)
            elif calendar.is_deleted or any(
                getattr(calendar, n) != getattr(data, n) for n in _CALENDAR_FIELDS
            ):
                for name in _CALENDAR_FIELDS:
                    setattr(calendar, name, getattr(data, name))
                calendar.is_deleted = False
                result.updated.append(calendar)
            result.calendars.append(calendar)
        if is_complete:
            for provider_id, calendar in existing.items():
                if provider_id not in seen and not calendar.is_deleted:
                    calendar.is_deleted = True
                    result.deleted.append(calendar)
        Calendar.objects.bulk_create(result.created)
        now = timezone.now()
        for calendar in result.updated + result.deleted:
            calendar.updated_at = now
        Calendar.objects.bulk_update(
            result.updated + result.deleted, [*_CALENDAR_FIELDS, "is_deleted", "updated_at"]
        )
        Kind = ChangeLogEntry.Kind
        record_changes(
            account=profile.account,
            changes=[(Kind.CALENDAR_CREATED, c, None) for c in result.created]
            + [(Kind.CALENDAR_UPDATED, c, None) for c in result.updated]
            + [(Kind.CALENDAR_DELETED, c, None) for c in result.deleted],
            at=now,
        )
    return result
