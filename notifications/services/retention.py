"""Retention: delivery history is kept for support staff and integrators, then purged.

Attempt logs and payloads are not kept forever (docs/operations.md, Retention). Only
notifications in a terminal state (delivered, failed, cancelled) are purged; pending ones are
never touched.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from calendars.services import delete_in_batches
from notifications.models import DeliveryAttempt, Notification

_TERMINAL = (
    Notification.Status.DELIVERED,
    Notification.Status.FAILED,
    Notification.Status.CANCELLED,
)


@dataclass(frozen=True)
class RetentionReport:
    attempts: int
    notifications: int


def purge_delivery_history(*, now: datetime | None = None) -> RetentionReport:
    """Delete attempt logs older than PUSH_RETENTION_DAYS, and terminal notifications that
    finished before then (with their attempts). Idempotent; run daily by a schedule."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.PUSH_RETENTION_DAYS)
    attempts = delete_in_batches(DeliveryAttempt.objects.filter(started_at__lt=cutoff))
    notifications = delete_in_batches(
        Notification.objects.filter(status__in=_TERMINAL, finished_at__lt=cutoff)
    )
    return RetentionReport(attempts=attempts, notifications=notifications)
