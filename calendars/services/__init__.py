"""Services of the calendars app (the only entry points other apps may call).

- cache: record_changes, apply_provider_events (the provider's view of events, change log).
- calendars: create_calendar, upsert_provider_calendars and the creation errors.
"""

from calendars.services.cache import apply_provider_events, record_changes
from calendars.services.calendars import (
    CalendarCreationError,
    CalendarCreationFailed,
    CalendarCreationNotSupported,
    DuplicateCalendarName,
    ProfileNotWritable,
    ProviderCalendar,
    create_calendar,
    provider_calendar_creation_unsupported,
    upsert_provider_calendars,
)

__all__ = [
    "CalendarCreationError",
    "CalendarCreationFailed",
    "CalendarCreationNotSupported",
    "DuplicateCalendarName",
    "ProfileNotWritable",
    "ProviderCalendar",
    "apply_provider_events",
    "create_calendar",
    "provider_calendar_creation_unsupported",
    "record_changes",
    "upsert_provider_calendars",
]

# Managed-event writes: the support-staff retry (sync applies the writes).
from calendars.services.writes import retry_event_write  # noqa: E402

__all__ += ["retry_event_write"]
