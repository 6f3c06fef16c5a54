"""Services of the sync app: the sync engine (engine.py) and the write reconciler (writes.py).

Callers keep using `from sync import services` / `sync.services.<name>`; this package re-exports
the public names of its modules, and a few private hooks that tests replace.
"""

import sys
import types

from sync.services import engine
from sync.services.engine import (
    CLAIM_SECONDS,
    JITTER,
    LEASE_SECONDS,
    MAX_BACKOFF_SECONDS,
    TICK_BATCH,
    SyncOutcome,
    build_provider,
    connect_profile,
    create_calendar_at_provider,
    current_window,
    enqueue_due_syncs,
    enqueue_managed_event_writes,
    refresh_profile_calendars,
    request_sync,
    store_connected_profile,
    sync_calendar,
    sync_profile,
)
from sync.services.writes import ReconcileResult, reconcile_event_writes, retry_delay

__all__ = [
    "CLAIM_SECONDS",
    "JITTER",
    "LEASE_SECONDS",
    "MAX_BACKOFF_SECONDS",
    "TICK_BATCH",
    "ReconcileResult",
    "SyncOutcome",
    "build_provider",
    "connect_profile",
    "create_calendar_at_provider",
    "current_window",
    "enqueue_due_syncs",
    "enqueue_managed_event_writes",
    "reconcile_event_writes",
    "refresh_profile_calendars",
    "request_sync",
    "retry_delay",
    "store_connected_profile",
    "sync_calendar",
    "sync_profile",
]

# Private names tests use (and replace) on the package.
_enqueue_sync = engine._enqueue_sync
_on_initial_sync_completed = engine._on_initial_sync_completed
_on_profile_disconnected = engine._on_profile_disconnected
_poll_delay = engine._poll_delay

_HOOKS = ("_enqueue_sync", "_on_initial_sync_completed", "_on_profile_disconnected")


class _Package(types.ModuleType):
    """Setting one of the engine's hooks on the package (a test's
    `monkeypatch.setattr(services, "_enqueue_sync", ...)`, and its undo) sets it where the
    engine looks it up, as it did when the engine was the module sync.services."""

    def __setattr__(self, name, value):
        if name in _HOOKS:
            setattr(engine, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
