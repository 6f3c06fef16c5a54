"""django-q2 entry points. The outbox rows are the truth; these are only triggers, so running
one twice (or concurrently) is harmless."""

from notifications import services


def dispatch_notifications() -> dict:
    """Send every notification due now (enqueued right after a commit that created some)."""
    return dict(services.dispatch_due().outcomes)


def relay_changes() -> int:
    """Turn new change-log entries into `change` notifications."""
    return services.relay_changes()


def relay_and_dispatch() -> dict:
    """Relay new change-log entries, then send what is due (the minute sweep; also queued after
    a sync changed an account's cache where PUSH_ENQUEUE_ON_COMMIT is on)."""
    relayed = services.relay_changes()
    return {"relayed": relayed, **dict(services.dispatch_due().outcomes)}


def purge_delivery_history() -> dict:
    """Daily: drop attempt logs and finished notifications past PUSH_RETENTION_DAYS."""
    report = services.purge_delivery_history()
    return {"attempts": report.attempts, "notifications": report.notifications}
