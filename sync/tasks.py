"""django-q2 entry points: take ids, call one service, idempotent."""

from sync import services


def sync_calendar(calendar_id: int) -> str:
    """Sync one calendar (single-flight: a concurrent run of the same calendar is skipped)."""
    return str(services.sync_calendar(calendar_id=calendar_id))


def enqueue_due_syncs() -> int:
    """The polling tick: claim due calendars and enqueue their syncs."""
    return len(services.enqueue_due_syncs())
