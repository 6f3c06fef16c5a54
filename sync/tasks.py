"""django-q2 entry points: take ids, call one service, idempotent."""

from sync import services
from sync.services import activity, polling, push


def sync_calendar(calendar_id: int, full: bool = False) -> str:
    """Sync one calendar (single-flight: a concurrent run of the same calendar is skipped);
    `full` forces a full resync."""
    return str(services.sync_calendar(calendar_id=calendar_id, full=full))


def discover_calendars(profile_id: int) -> int:
    """Read a profile's calendar list and queue the first sync of each calendar."""
    return len(services.discover_calendars(profile_id=profile_id))


def enqueue_due_syncs() -> int:
    """The polling tick: claim due calendars and queue their poll tasks."""
    return len(services.enqueue_due_syncs())


def poll_calendars(calendar_ids: list[int], claim: str) -> str:
    """Poll claimed calendars of one profile (those whose claim is still `claim`; a duplicate
    task does nothing), then claim what became due meanwhile."""
    outcomes = polling.poll_calendars(calendar_ids=calendar_ids, claim=claim)
    statuses = [o.status for o in outcomes]
    return ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses))) or "nothing to do"


def reconcile_event_writes(write_ids: list[int]) -> str:
    """Apply just-committed managed-event writes (the trigger settings.MANAGED_EVENT_WRITE_TRIGGER
    enqueues); writes not due or held by another reconciler are left to it / the sweep."""
    return str(services.reconcile_event_writes(write_ids=write_ids))


def reconcile_due_event_writes() -> str:
    """The sweep: retries whose time has come, writes whose trigger was lost, lapsed leases."""
    return str(services.reconcile_due_event_writes())


def maintain_provider_subscriptions() -> str:
    """Provider push: subscribe, renew before expiry, stop the subscriptions of dead calendars."""
    return str(push.maintain_subscriptions())


def purge_sync_activity() -> int:
    """Delete sync activity past its retention; returns the rows deleted."""
    return activity.purge_sync_activity().deleted
