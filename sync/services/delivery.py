"""The delivery process (`manage.py deliver`; docs/operations.md, "The delivery process"):
relays the change log, sends due push notifications and reconciles managed-event writes, each
started by the commit that made it due rather than by a queued task; and hands each calendar
poll to the workers as it falls due (sync/services/polling.py), rather than a minute late.

Wake-ups: on PostgreSQL one thread LISTENs on `calsync_changes` (the change log's NOTIFY,
payload the account) and `calsync_outbox` (notifications or writes became due; see
calendars/wakeups.py), which the server delivers at commit only. Without a listener (SQLite,
or while it reconnects) the loops re-read every SQLITE_RECHECK_SECONDS; with one, every
LISTENING_RECHECK_SECONDS as a safety net. Between wake-ups each loop sleeps until the next
retry (next_attempt_at) or lapsing lease of its rows, never longer.

Threads: the main loop relays and dispatches (HTTP in the dispatcher's own worker threads);
EVENT_WRITE_CONCURRENCY writer threads each claim one write at a time (SKIP LOCKED, a lease,
the per-profile governor: sync/services/writes.py), so one slow provider call holds one thread.
One more thread claims due polls (SKIP LOCKED, as the tick) and queues their tasks.
A database error in any loop closes that thread's connection and retries after a pause, so a
database restart costs a few seconds, not the process. Several processes may run against one
database: every claim skips what another holds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field

import psycopg
import redis
from django.conf import settings
from django.db import DatabaseError, connection, connections
from django.db.models import F, Min
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from accounts.models import Profile
from calendars.models import ManagedEventWrite
from calendars.wakeups import CHANNEL as CHANGES_CHANNEL
from calendars.wakeups import (
    LISTEN_RETRY_SECONDS,
    LISTENING_RECHECK_SECONDS,
    OUTBOX_CHANNEL,
    OUTBOX_NOTIFICATIONS,
    OUTBOX_WRITES,
    SQLITE_RECHECK_SECONDS,
)
from notifications.services.delivery import PushDelivery
from notifications.services.heartbeat import (
    DELIVERY_PROCESS,
    HEARTBEAT_SECONDS,
    forget_heartbeat,
    record_heartbeat,
)
from sync.services import polling, writes

log = logging.getLogger(__name__)

# After a database error, a loop waits this long before it tries again.
ERROR_PAUSE_SECONDS = 1.0
# After a failed claim of due polls (the broker away, say), the poll thread waits this long.
POLL_ERROR_PAUSE_SECONDS = 5.0
# Stopping: how long writer threads get to finish the write they hold (its lease covers more).
WRITER_STOP_SECONDS = 30.0
# The shortest sleep of a loop, so that a row due "now" that another process is claiming
# cannot make it spin.
MIN_SLEEP_SECONDS = 0.01
WRITE_OUTCOMES = ("done", "superseded", "failed", "retrying", "lost")  # ReconcileResult's


@dataclass
class DeliveryReport:
    relayed: int = 0
    notifications: dict[str, int] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        sent = ", ".join(f"{n} {k}" for k, n in sorted(self.notifications.items())) or "none"
        written = ", ".join(f"{n} {k}" for k, n in sorted(self.writes.items())) or "none"
        return f"relayed {self.relayed}; notifications: {sent}; writes: {written}"


class Signal:
    """A wake-up that waiters cannot miss: a counter bumped under a condition variable."""

    def __init__(self):
        self._condition = threading.Condition()
        self._count = 0

    def ticket(self) -> int:
        with self._condition:
            return self._count

    def bump(self) -> None:
        with self._condition:
            self._count += 1
            self._condition.notify_all()

    def wait(self, ticket: int, timeout: float) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self._count != ticket, timeout=timeout)


def process_name() -> str:
    """The heartbeat row of this process (notifications.services.heartbeat_age reads it)."""
    return f"{DELIVERY_PROCESS}@{socket.gethostname()}:{os.getpid()}"


class DeliveryProcess:
    """Run with `run()` until `stop()` (a signal handler may call it)."""

    def __init__(
        self,
        *,
        write_threads: int | None = None,
        push_concurrency: int | None = None,
        hand_out_polls: bool = True,
    ):
        self.hand_out_polls = hand_out_polls
        self.write_threads = (
            settings.EVENT_WRITE_CONCURRENCY if write_threads is None else write_threads
        )
        self.report = DeliveryReport()
        self._stopping = threading.Event()
        self._push = Signal()
        self._writes = Signal()
        self._listening = False
        self._full_relay = True
        self._accounts: set[int] = set()
        self._accounts_lock = threading.Lock()
        self._delivery = PushDelivery(on_finished=self._push.bump, concurrency=push_concurrency)
        self._report_lock = threading.Lock()
        self.name = process_name()

    def stop(self) -> None:
        self._stopping.set()
        self._push.bump()
        self._writes.bump()

    def run(self) -> DeliveryReport:
        threads = [
            threading.Thread(target=self._reconcile_writes, name=f"writes-{n}", daemon=True)
            for n in range(self.write_threads)
        ]
        threads.append(threading.Thread(target=self._beat, name="heartbeat", daemon=True))
        if self.hand_out_polls:
            threads.append(threading.Thread(target=self._claim_polls, name="polls", daemon=True))
        listener = None
        if connection.vendor == "postgresql":
            params = connections["default"].get_connection_params()
            listener = threading.Thread(
                target=self._listen, args=(params,), name="deliver-listener", daemon=True
            )
            listener.start()
        for thread in threads:
            thread.start()
        try:
            self._deliver_notifications()
        finally:
            try:
                self._delivery.drain(timeout=float(settings.PUSH_DELIVERY_TIMEOUT_SECONDS) + 1)
            except Exception:  # noqa: BLE001 - the database is gone: the leases lapse instead
                log.exception("deliveries in flight could not be recorded")
            deadline = time.monotonic() + WRITER_STOP_SECONDS
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if listener is not None:
                listener.join(5)
            self._say_goodbye()
        self.report.relayed = self._delivery.counts.relayed
        self.report.notifications = dict(self._delivery.counts.outcomes)
        return self.report

    # --- wake-ups ---
    def _recheck_seconds(self) -> float:
        return LISTENING_RECHECK_SECONDS if self._listening else SQLITE_RECHECK_SECONDS

    def _listen(self, params: dict) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as listening:
                    listening.execute(f"LISTEN {CHANGES_CHANNEL}")
                    listening.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    self._listening = True
                    self._wake_everything()  # what committed while we were not listening
                    while not self._stopping.is_set():
                        for notice in listening.notifies(timeout=0.5):
                            self._on_notice(notice.channel, notice.payload)
            except Exception:
                log.warning("delivery listener lost its connection", exc_info=True)
                self._stopping.wait(LISTEN_RETRY_SECONDS)
            finally:
                self._listening = False
                self._wake_everything()

    def _on_notice(self, channel: str, payload: str) -> None:
        if channel == CHANGES_CHANNEL:
            with self._accounts_lock:
                self._accounts.add(int(payload))
            self._push.bump()
        elif payload == OUTBOX_WRITES:
            self._writes.bump()
        elif payload == OUTBOX_NOTIFICATIONS:
            self._push.bump()

    def _wake_everything(self) -> None:
        self._full_relay = True
        self._push.bump()
        self._writes.bump()

    # --- push notifications (the main thread) ---
    def _deliver_notifications(self) -> None:
        last_full_relay = 0.0
        while not self._stopping.is_set():
            ticket = self._push.ticket()
            try:
                if (
                    self._full_relay
                    or time.monotonic() - last_full_relay >= self._recheck_seconds()
                ):
                    self._full_relay = False
                    self._take_accounts()
                    self._delivery.relay()
                    last_full_relay = time.monotonic()
                else:
                    self._delivery.relay(self._take_accounts())
                self._delivery.step()
                sleep = self._recheck_seconds()
                if self._delivery.in_flight < self._delivery.concurrency:
                    sleep = self._delivery.seconds_until_due(longest=sleep)
            except Exception:
                log.exception("push delivery step failed; retrying")
                self._full_relay = True
                _close_connection()
                sleep = ERROR_PAUSE_SECONDS
            self._push.wait(ticket, max(sleep, MIN_SLEEP_SECONDS))

    def _beat(self) -> None:
        """The heartbeat, from a thread of its own: a relay that takes long (a backlog after an
        outage) must not make the process look dead to /readyz."""
        try:
            while not self._stopping.is_set():
                pause = HEARTBEAT_SECONDS
                try:
                    record_heartbeat(name=self.name)
                except Exception:  # noqa: BLE001 - busy or away: try again shortly
                    log.warning("heartbeat of %s not recorded", self.name, exc_info=True)
                    _close_connection()
                    pause = ERROR_PAUSE_SECONDS
                self._stopping.wait(pause)
        finally:
            _close_connection()

    def _claim_polls(self) -> None:
        """Due polls to the workers, as they fall due (polling.hand_out_polls)."""
        try:
            while not self._stopping.is_set():
                try:
                    pause = polling.hand_out_polls()
                except (DatabaseError, redis.RedisError) as exc:
                    # The database or broker is away. No traceback: an outage would log one
                    # every few seconds, and the minute tick claims whatever this loop cannot.
                    log.warning("claiming due polls failed (%s: %s)", type(exc).__name__, exc)
                    _close_connection()
                    pause = POLL_ERROR_PAUSE_SECONDS
                except Exception:
                    log.exception("claiming due polls failed")  # a bug: with its traceback
                    _close_connection()
                    pause = POLL_ERROR_PAUSE_SECONDS
                self._stopping.wait(pause)
        finally:
            _close_connection()

    def _take_accounts(self) -> list[int]:
        with self._accounts_lock:
            accounts, self._accounts = sorted(self._accounts), set()
        return accounts

    # --- managed-event writes (writer threads) ---
    def _reconcile_writes(self) -> None:
        try:
            while not self._stopping.is_set():
                ticket = self._writes.ticket()
                try:
                    result = writes.reconcile_event_writes(limit=1)
                    if result.claimed:
                        self._count_writes(result)
                        continue
                    sleep = _seconds_until_write_due(longest=self._recheck_seconds())
                except Exception:
                    log.exception("write reconciler failed; retrying")
                    _close_connection()
                    sleep = ERROR_PAUSE_SECONDS
                self._writes.wait(ticket, max(sleep, MIN_SLEEP_SECONDS))
        finally:
            _close_connection()

    def _count_writes(self, result: writes.ReconcileResult) -> None:
        with self._report_lock:
            for outcome in WRITE_OUTCOMES:
                count = len(getattr(result, outcome))
                if count:
                    self.report.writes[outcome] = self.report.writes.get(outcome, 0) + count

    def _say_goodbye(self) -> None:
        try:
            forget_heartbeat(name=self.name)
        except Exception:  # noqa: BLE001 - the row then just ages out of readiness
            log.warning("heartbeat of %s not removed", self.name, exc_info=True)
        _close_connection()


def _seconds_until_write_due(*, longest: float) -> float:
    """Until the next pending write (of a connected profile) becomes claimable: its next
    attempt, or the end of the lease another reconciler holds; at most `longest`."""
    ready_at = Greatest(F("next_attempt_at"), Coalesce(F("locked_until"), F("next_attempt_at")))
    moment = (
        ManagedEventWrite.objects.pending()
        .filter(calendar__profile__status=Profile.Status.CONNECTED)
        .aggregate(ready=Min(ready_at))["ready"]
    )
    if moment is None:
        return longest
    return min(longest, max(0.0, (moment - timezone.now()).total_seconds()))


def _close_connection() -> None:
    """Drop this thread's connection (after an error it may be broken; the next query opens
    a new one)."""
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is gone anyway
        log.debug("closing a broken database connection failed", exc_info=True)
