"""Services of the calendars app (the only entry points other apps may call).

- cache: record_changes, record_profile_change (and the disconnect hook),
  apply_provider_events (the provider's view of events, change log).
- calendars: create_calendar, upsert_provider_calendars and the creation errors.
- managed_events: integrator writes (upsert/delete/participation) recorded as
  ManagedEventWrite rows for the reconciler, and their errors.
- locks: the lock order of every event writer (lock_for_event_changes) and the retry of a
  transaction the database aborted (retry_on_transaction_conflict).
- writes: retry_event_write (support staff), purge_finished_event_writes, purge_change_log and
  delete_in_batches (retention).
- history: history_horizon and purge_event_history (events past the sync window and its
  retention).
- erasure: erase_account_calendars (an account's part of its erasure, accounts/erasure.py).
"""

from calendars.models import ChangeLogEntry
from calendars.services.cache import (
    apply_provider_events,
    record_changes,
    record_profile_change,
    record_profile_disconnected,
)
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
from calendars.services.erasure import erase_account_calendars
from calendars.services.history import history_horizon, purge_event_history
from calendars.services.locks import lock_for_event_changes, retry_on_transaction_conflict
from calendars.services.managed_events import (
    EventNotFound,
    EventWriteError,
    ProfileNotConnected,
    change_participation_status,
    delete_external_event,
    delete_managed_event,
    delete_managed_events,
    desired_state,
    event_fingerprint,
    upsert_external_event,
    upsert_managed_event,
)
from calendars.services.writes import (
    delete_in_batches,
    purge_change_log,
    purge_finished_event_writes,
    retry_event_write,
)

# The change-log kinds other apps pass to record_profile_change.
PROFILE_CONNECTED = ChangeLogEntry.Kind.PROFILE_CONNECTED
PROFILE_DISCONNECTED = ChangeLogEntry.Kind.PROFILE_DISCONNECTED

__all__ = [
    "PROFILE_CONNECTED",
    "PROFILE_DISCONNECTED",
    "CalendarCreationError",
    "CalendarCreationFailed",
    "CalendarCreationNotSupported",
    "DuplicateCalendarName",
    "EventNotFound",
    "EventWriteError",
    "ProfileNotConnected",
    "ProfileNotWritable",
    "ProviderCalendar",
    "apply_provider_events",
    "change_participation_status",
    "create_calendar",
    "delete_external_event",
    "delete_in_batches",
    "erase_account_calendars",
    "history_horizon",
    "delete_managed_event",
    "delete_managed_events",
    "desired_state",
    "event_fingerprint",
    "lock_for_event_changes",
    "provider_calendar_creation_unsupported",
    "purge_change_log",
    "purge_event_history",
    "purge_finished_event_writes",
    "record_changes",
    "record_profile_change",
    "record_profile_disconnected",
    "retry_event_write",
    "retry_on_transaction_conflict",
    "upsert_external_event",
    "upsert_managed_event",
    "upsert_provider_calendars",
]
