"""Waking the long-polls of GET /v1/changes when a change commits (docs/api.md, "The change
feed"; docs/operations.md, "Long-polls of the change feed").

`announce_changes` runs inside every transaction that appends to the change log. On PostgreSQL
it sends `NOTIFY calsync_changes, '<account pk>'`, which the server delivers at commit only (a
rolled-back change wakes nobody). One daemon thread per process holds one connection in LISTEN
and bumps a per-account counter; a waiting request sleeps on a condition variable, holding no
database connection of its own. The commit also bumps the counter of its own process directly
(on_commit), which is all SQLite has: there, waiters in other processes find a change by
re-reading every SQLITE_RECHECK_SECONDS. While the listener is down (it reconnects on its own)
waiters fall back to the same short re-read, so a lost NOTIFY only costs latency.
"""

import logging
import threading
import time
from collections import defaultdict
from functools import partial

import psycopg
from django.db import connection, connections, transaction

logger = logging.getLogger(__name__)

CHANNEL = "calsync_changes"
# Re-read this often when nothing can wake a waiter from another process (SQLite, or while the
# PostgreSQL listener reconnects).
SQLITE_RECHECK_SECONDS = 0.25
# Even with a healthy listener, re-read this often: a safety net, never the wake-up path.
LISTENING_RECHECK_SECONDS = 5.0
# After the listener's connection fails, wait this long before connecting again.
LISTEN_RETRY_SECONDS = 2.0
# The listener stops (and closes its connection) after this long without a waiter.
LISTEN_IDLE_SECONDS = 60.0


def announce_changes(account_id: int) -> None:
    """Call inside the transaction that appended entries of `account_id` (record_changes)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(account_id)])
    transaction.on_commit(partial(wakeups.bump, account_id))


def is_wakeup(callback) -> bool:
    """Whether an on-commit callback is the wake-up announce_changes registers (for tests that
    check what else a transaction leaves for after its commit)."""
    return isinstance(callback, partial) and callback.func == wakeups.bump


class ChangeWakeups:
    """Per-process counters of committed changes per account, and the waiters on them."""

    def __init__(self):
        self._condition = threading.Condition()
        self._counters: dict[int, int] = defaultdict(int)
        self._waiting = 0
        self._listening = False
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_waiter_at = time.monotonic()

    @property
    def waiting(self) -> int:
        return self._waiting

    def ticket(self, account_id: int) -> int:
        """Take before reading: a change committed after it makes `wait` return at once."""
        with self._condition:
            return self._counters[account_id]

    def bump(self, account_id: int) -> None:
        with self._condition:
            self._counters[account_id] += 1
            self._condition.notify_all()

    def _bump_all(self) -> None:
        # Notifications may have been lost while the listener was down: wake every waiter to
        # re-read rather than let one sleep through a change.
        with self._condition:
            for account_id in list(self._counters):
                self._counters[account_id] += 1
            self._condition.notify_all()

    def try_enter(self, limit: int) -> bool:
        """Reserve a waiter slot (at most `limit` long-polls wait at once in this process)."""
        with self._condition:
            if self._waiting >= limit:
                return False
            self._waiting += 1
            self._last_waiter_at = time.monotonic()
            return True

    def leave(self) -> None:
        with self._condition:
            self._waiting -= 1
            self._last_waiter_at = time.monotonic()

    def wait(self, account_id: int, ticket: int, timeout: float) -> bool:
        """Sleep until a change of the account commits after `ticket` (True) or for at most
        `timeout` seconds, shortened to the re-read interval when nothing can wake us."""
        if connection.vendor == "postgresql":
            self._ensure_listener()
        interval = LISTENING_RECHECK_SECONDS if self._listening else SQLITE_RECHECK_SECONDS
        with self._condition:
            return self._condition.wait_for(
                lambda: self._counters[account_id] != ticket, timeout=min(timeout, interval)
            )

    def _ensure_listener(self) -> None:
        with self._condition:
            if self._listener is not None and self._listener.is_alive():
                return
            self._stop.clear()
            params = connections["default"].get_connection_params()
            self._listener = threading.Thread(
                target=self._listen, args=(params,), name="changes-listener", daemon=True
            )
            self._listener.start()

    def stop(self) -> None:
        """Stop the listener thread and close its connection (tests, before the database is
        dropped); the next waiter starts it again."""
        self._stop.set()
        listener = self._listener
        if listener is not None:
            listener.join(10)

    def _listen(self, params: dict) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as listening:
                    listening.execute(f"LISTEN {CHANNEL}")
                    self._listening = True
                    self._bump_all()
                    while not self._stop.is_set() and not self._idle():
                        for notice in listening.notifies(timeout=0.5):
                            self.bump(int(notice.payload))
                if self._idle():
                    break
            except Exception:
                logger.warning("change-feed listener lost its connection", exc_info=True)
                self._stop.wait(LISTEN_RETRY_SECONDS)
            finally:
                self._listening = False
                self._bump_all()

    def _idle(self) -> bool:
        return self._waiting == 0 and time.monotonic() - self._last_waiter_at > LISTEN_IDLE_SECONDS


wakeups = ChangeWakeups()


# The delivery process (`manage.py deliver`; docs/operations.md, "The delivery process")
# listens here too: the transactions that make outbox rows due send `NOTIFY calsync_outbox,
# '<kind>'`, delivered at commit, so it starts on them at once instead of at a poll.
OUTBOX_CHANNEL = "calsync_outbox"
OUTBOX_NOTIFICATIONS = "notifications"
OUTBOX_WRITES = "writes"


def announce_outbox(kind: str) -> None:
    """Call inside the transaction that created (or made due) outbox rows of `kind`
    (OUTBOX_NOTIFICATIONS or OUTBOX_WRITES). PostgreSQL folds identical notifications of one
    transaction into one. SQLite has no NOTIFY: the delivery process re-reads there."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [OUTBOX_CHANNEL, kind])
