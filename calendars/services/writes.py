"""Support-staff actions on managed-event writes (the sync app's reconciler applies them),
and their retention."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.batches import delete_in_batches
from accounts.queueing import enqueue_after_commit
from calendars.models import ChangeLogEntry, ManagedEventWrite
from calendars.wakeups import OUTBOX_WRITES, announce_outbox


def trigger_reconciler_on_commit(write_ids: list[int]) -> None:
    """Inside the transaction that made these writes due: wake the delivery process's
    reconciler at commit (NOTIFY), and after commit call settings.MANAGED_EVENT_WRITE_TRIGGER
    where one is set (deployments without the delivery process; the periodic sweep picks up
    anything either misses)."""
    if not write_ids:
        return
    announce_outbox(OUTBOX_WRITES)
    hook = settings.MANAGED_EVENT_WRITE_TRIGGER
    if not hook:
        return

    # Only a trigger: a failure leaves the rows pending for the reconciler's sweep, so it must
    # not turn the committed 202 into a 500.
    enqueue_after_commit(
        lambda: import_string(hook)(write_ids=write_ids), what="managed event writes"
    )


def retry_event_write(*, write: ManagedEventWrite) -> bool:
    """Make a FAILED write pending again, due now with a fresh attempt budget, and trigger the
    reconciler after commit (settings.MANAGED_EVENT_WRITE_TRIGGER). Returns False (nothing
    done) for a write that is not FAILED. A newer write of the same event still wins: the
    reconciler then marks this one superseded instead of applying it."""
    with transaction.atomic():
        updated = ManagedEventWrite.objects.filter(
            pk=write.pk, status=ManagedEventWrite.Status.FAILED
        ).update(
            status=ManagedEventWrite.Status.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            completed_at=None,
            locked_until=None,
            lock_token="",
        )
        if updated:
            trigger_reconciler_on_commit([write.pk])
    if updated:
        write.refresh_from_db()
    return bool(updated)


_FINISHED = (ManagedEventWrite.Status.DONE, ManagedEventWrite.Status.SUPERSEDED)


def purge_finished_event_writes(*, now: datetime | None = None) -> int:
    """Delete applied and superseded writes older than EVENT_WRITE_RETENTION_DAYS, in
    batches. Failed and pending writes are never purged (support staff act on them). Returns
    the number deleted; run daily by a schedule."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.EVENT_WRITE_RETENTION_DAYS)
    finished = ManagedEventWrite.objects.filter(status__in=_FINISHED, completed_at__lt=cutoff)
    return delete_in_batches(finished)


def purge_change_log(*, now: datetime | None = None) -> int:
    """Delete change-log entries older than CHANGE_LOG_RETENTION_DAYS, in batches. Returns
    the number deleted; run daily.

    Per account, everything up to the newest sequence stamped before the cut-off goes: an
    entry is stamped when its transaction records it but numbered when that transaction takes
    the account's lock, so a cut by time alone could keep an entry and delete the one after
    it, a hole no cursor would notice. Cut by sequence, what is left of each log is a
    contiguous tail, and a cursor before it answers 410 cursor_expired."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.CHANGE_LOG_RETENTION_DAYS)
    last_purged = (
        ChangeLogEntry.objects.filter(changed_at__lt=cutoff)
        .values("account_id")
        .annotate(sequence=Max("sequence"))
        .values_list("account_id", "sequence")
    )
    return sum(
        delete_in_batches(
            ChangeLogEntry.objects.filter(account_id=account_id, sequence__lte=sequence)
        )
        for account_id, sequence in list(last_purged)
    )
