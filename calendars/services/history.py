"""History outside the sync window: how far back the cache keeps events, and its purge
(docs/operations.md, "Event history")."""

from datetime import UTC, datetime, time, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.batches import delete_in_batches
from accounts.models import Account
from calendars.models import SERIES_MASTER, ChangeLogEntry, Event, ManagedEventWrite
from calendars.services.locks import lock_for_event_changes

# Events per purge transaction: each one holds the account's event lock, which the account's
# syncs and API writes wait for.
PURGE_BATCH_EVENTS = 1000


def history_horizon(now: datetime | None = None) -> datetime:
    """Events that ended at or before this instant are history the cache no longer keeps: the
    sync window's start (SYNC_WINDOW_PAST_DAYS before today, 00:00 UTC, as the sync engine
    computes it) less EVENT_HISTORY_RETENTION_DAYS."""
    today = (now or timezone.now()).astimezone(UTC).date()
    days = settings.SYNC_WINDOW_PAST_DAYS + max(0, settings.EVENT_HISTORY_RETENTION_DAYS)
    return datetime.combine(today - timedelta(days=days), time.min, tzinfo=UTC)


def _purgeable(account_id: int, horizon: datetime):
    """The account's events that ended by the horizon, except those something still needs:
    a managed series' own row (its instances go on), an event with a pending or failed write
    (the reconciler or support staff act on it), and an event the change log still names (its
    entries would go with it, a hole in the feed; they are purged by CHANGE_LOG_RETENTION_DAYS,
    and the event on a later day). start__lte lets event_account_start_idx seek."""
    kept_writes = ManagedEventWrite.objects.filter(
        event=OuterRef("pk"),
        status__in=(ManagedEventWrite.Status.PENDING, ManagedEventWrite.Status.FAILED),
    )
    return (
        Event.objects.filter(account_id=account_id, start__lte=horizon, end__lte=horizon)
        .exclude(SERIES_MASTER)
        .exclude(Exists(kept_writes))
        .exclude(Exists(ChangeLogEntry.objects.filter(event=OuterRef("pk"))))
    )


def purge_event_history(*, now: datetime | None = None) -> int:
    """Delete cached events that ended by history_horizon(now), account by account, in
    batches, each under the account's event lock (so no writer adds a change-log entry or a
    write to an event being deleted). Returns the number deleted; run daily.

    A purge is not a change at the provider: it writes no change-log entry, so neither the
    change feed nor push channels report the events as deleted, and a later sync does not
    bring them back (apply_provider_events creates no event that ends by the horizon)."""
    horizon = history_horizon(now)
    deleted = 0
    for account_id in Account.objects.order_by("pk").values_list("pk", flat=True):
        purgeable = _purgeable(account_id, horizon)
        if not purgeable.exists():  # most days, most accounts: no lock taken
            continue
        deleted += delete_in_batches(
            purgeable,
            batch_size=PURGE_BATCH_EVENTS,
            lock=lambda pk=account_id: lock_for_event_changes(account_id=pk),
        )
    return deleted
