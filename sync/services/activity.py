"""The sync app's activity log (SyncActivity): written by the engine, the token refresh and
the push receiver; read by the support console's account timeline; purged after
SYNC_ACTIVITY_RETENTION_DAYS."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

import metrics
from accounts.batches import delete_in_batches
from calendars.models import Calendar
from sync.models import SyncActivity

log = logging.getLogger(__name__)


def _record(**fields) -> None:
    """Best effort: the log is history for support, never a reason for the work it describes
    to fail (a busy database loses one line, logged)."""
    try:
        with transaction.atomic():  # a savepoint: a failed insert leaves the caller's intact
            SyncActivity.objects.create(**fields)
    except DatabaseError as exc:
        log.warning("sync activity %s not recorded: %s", fields.get("kind"), exc)


def record_sync(outcome) -> None:
    """One calendar sync that changed something, failed, or recovered after failures (the
    engine leaves out the other unchanged polls, the bulk of syncs, and skipped ones: the
    sync state has their time)."""
    profile_id = (
        Calendar.objects.filter(pk=outcome.calendar_id).values_list("profile_id", flat=True).first()
    )
    if profile_id is None:  # the calendar is gone
        return
    result = outcome.result
    ran = outcome.status != "failed"
    _record(
        profile_id=profile_id,
        calendar_id=outcome.calendar_id,
        kind=SyncActivity.Kind.SYNC,
        outcome=outcome.status,
        is_full=outcome.full,
        created=result.created if ran else None,
        updated=result.updated if ran else None,
        unchanged=result.unchanged if ran else None,
        deleted=result.deleted if ran else None,
        detail=outcome.error[:500],
    )


def record_token_refresh(*, profile_id: int, outcome: str, error: str = "") -> None:
    # Every refresh the credentials service makes ends here: the metrics count them too.
    metrics.count_token_refresh(outcome)
    _record(
        profile_id=profile_id,
        kind=SyncActivity.Kind.TOKEN_REFRESH,
        outcome=outcome,
        detail=error[:500],
    )


def record_push_received(*, calendar_id: int, profile_id: int, lifecycle: str = "") -> None:
    _record(
        profile_id=profile_id,
        calendar_id=calendar_id,
        kind=SyncActivity.Kind.PUSH_RECEIVED,
        outcome=(lifecycle or "change")[:32],
    )


@dataclass(frozen=True)
class ActivityPurgeReport:
    deleted: int


def purge_sync_activity(*, now: datetime | None = None) -> ActivityPurgeReport:
    """Delete activity older than SYNC_ACTIVITY_RETENTION_DAYS. Idempotent; run daily."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.SYNC_ACTIVITY_RETENTION_DAYS)
    return ActivityPurgeReport(
        deleted=delete_in_batches(SyncActivity.objects.filter(at__lt=cutoff))
    )
