"""Services of the sync app: the sync engine (engine.py) and the write reconciler (writes.py).

Callers use `from sync import services` / `sync.services.<name>`: this package re-exports the
public names of its modules. Tests that replace a seam (`enqueue_sync`, `enqueue_full_sync`,
`on_initial_sync_completed`) patch it on the module that looks it up (`sync.services.engine`;
`enqueue_poll`, the tick's, on `sync.services.polling`).
"""

from sync.services.credentials import (
    build_provider,
    call_with_fresh_credentials,
    fresh_credentials,
    provider_for,
)
from sync.services.engine import (
    JITTER,
    LEASE_SECONDS,
    MAX_BACKOFF_SECONDS,
    SyncOutcome,
    connect_profile,
    create_calendar_at_provider,
    discover_calendars,
    enqueue_calendar_discovery,
    enqueue_due_discoveries,
    enqueue_full_sync,
    enqueue_managed_event_writes,
    enqueue_sync,
    on_initial_sync_completed,
    refresh_profile_calendars,
    request_sync,
    store_connected_profile,
    sync_calendar,
    sync_profile,
)
from sync.services.erasure import erase_account_sync_data, revoke_provider_grant
from sync.services.polling import CLAIM_SECONDS, TICK_BATCH, enqueue_due_syncs, poll_calendars
from sync.services.resources import APPLY_BATCH_EVENTS, current_window
from sync.services.writes import (
    ReconcileResult,
    reconcile_due_event_writes,
    reconcile_event_writes,
    retry_delay,
)

__all__ = [
    "APPLY_BATCH_EVENTS",
    "CLAIM_SECONDS",
    "JITTER",
    "LEASE_SECONDS",
    "MAX_BACKOFF_SECONDS",
    "TICK_BATCH",
    "ReconcileResult",
    "SyncOutcome",
    "build_provider",
    "call_with_fresh_credentials",
    "fresh_credentials",
    "provider_for",
    "connect_profile",
    "create_calendar_at_provider",
    "current_window",
    "discover_calendars",
    "enqueue_calendar_discovery",
    "erase_account_sync_data",
    "enqueue_due_discoveries",
    "enqueue_due_syncs",
    "enqueue_full_sync",
    "enqueue_managed_event_writes",
    "enqueue_sync",
    "on_initial_sync_completed",
    "poll_calendars",
    "reconcile_due_event_writes",
    "reconcile_event_writes",
    "refresh_profile_calendars",
    "request_sync",
    "retry_delay",
    "revoke_provider_grant",
    "store_connected_profile",
    "sync_calendar",
    "sync_profile",
]
