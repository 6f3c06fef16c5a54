"""The one lock order of every transaction that writes events, and the retry of a transaction
that PostgreSQL aborted all the same.

Lock order (every path that writes events, sync bookkeeping or the change log):

    profile -> calendars -> account -> events (ascending id) -> event writes -> sync state

- The account comes before any event because every change to events ends with a change-log
  entry, and allocating its sequence updates the account row. A path that locked an event
  first and reached the account later (the reconciler recording a success) deadlocked with an
  API write, which holds the account and then updates the event.
- The account lock also serializes the event writers of one account (API writes, syncs, the
  reconciler), so the events themselves are locked under it, in id order.
- Profile and calendars come first for the sync paths (sync.services.engine.lock_owner): a
  relink locks the profile and updates calendars and sync states.
- FOR NO KEY UPDATE, not FOR UPDATE: inserting a row that references the account or an event
  (a change-log entry, a write, an authorization code) takes a KEY SHARE lock on it, which
  FOR UPDATE would block.

`lock_for_event_changes` takes the account and event locks; every transaction that writes
events starts with it (or with lock_owner, which calls it). Taking a lock again later in the
same transaction is free.
"""

import functools
import logging
import random
import time
from collections.abc import Iterable

from django.db import OperationalError, transaction

from accounts.errors import is_transaction_conflict
from accounts.models import Account
from calendars.models import Event

log = logging.getLogger(__name__)

TRANSACTION_ATTEMPTS = 4
# Full jitter on a doubling ceiling (50, 100, 200 ms): the two losers of a deadlock must not
# meet again at the same instant.
RETRY_BASE_SECONDS = 0.05


def lock_for_event_changes(*, account_id: int, event_ids: Iterable[int] = ()) -> Account:
    """Inside a transaction: lock the account row, then the events `event_ids` in id order
    (see the lock order above); returns the account."""
    account = Account.objects.select_for_update(no_key=True).get(pk=account_id)
    ids = sorted(set(event_ids))
    if ids:
        list(
            Event.objects.select_for_update(no_key=True)
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    return account


def retry_on_transaction_conflict(func):
    """Run `func` (a function that opens its own transaction) again, up to
    TRANSACTION_ATTEMPTS times, when the database aborts it for a deadlock or a serialization
    failure. Inside an enclosing transaction it runs once: only the outermost transaction can
    be run again, so the conflict goes up to whoever opened it."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        if transaction.get_connection().in_atomic_block:
            return func(*args, **kwargs)
        for attempt in range(1, TRANSACTION_ATTEMPTS):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                if not is_transaction_conflict(exc):
                    raise
                log.warning(
                    "%s: transaction conflict (%s), attempt %d of %d; running it again",
                    func.__qualname__,
                    exc.__cause__.sqlstate,
                    attempt,
                    TRANSACTION_ATTEMPTS,
                )
                time.sleep(random.uniform(0, RETRY_BASE_SECONDS * 2 ** (attempt - 1)))
        return func(*args, **kwargs)

    return run
