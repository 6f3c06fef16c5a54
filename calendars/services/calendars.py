"""Writes to the cached calendar list, and calendar creation through the provider."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import Profile
from calendars.models import Calendar, ChangeLogEntry
from calendars.services.cache import record_changes
from calendars.types import CalendarData, CalendarListResult


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
