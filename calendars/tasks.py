"""django-q2 entry points: take ids, call one service, idempotent."""

from calendars import services


def purge_finished_event_writes() -> int:
    """Daily: drop applied and superseded managed-event writes past their retention."""
    return services.purge_finished_event_writes()


def purge_change_log() -> int:
    """Daily: drop change-log entries past CHANGE_LOG_RETENTION_DAYS."""
    return services.purge_change_log()


def purge_event_history() -> int:
    """Daily: drop cached events that ended EVENT_HISTORY_RETENTION_DAYS before the sync
    window."""
    return services.purge_event_history()
