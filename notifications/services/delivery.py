"""Push delivery as a long-running loop's steps (the delivery process, `manage.py deliver`,
drives it; docs/operations.md, "The delivery process").

`PushDelivery.step` does what is due now and never waits: it records finished deliveries,
relays the accounts whose change log moved, and claims due notifications into the free
delivery slots. HTTP runs in worker threads that never touch the database; each finished
delivery calls `on_finished`, so the loop wakes to record it and send the channel's next one.
`seconds_until_due` tells the loop how long it may sleep when nothing wakes it: until the next
retry (next_attempt_at) or lapsing lease.

Several processes may run these steps against one database: claims are SKIP LOCKED with a
lease, and results are conditional updates (see dispatch.py), so none sends a notification
another holds.
"""

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import F, Min, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from notifications.models import Channel, Notification
from notifications.services.channels import allowed_networks
from notifications.services.dispatch import Claim, claim_due, record_results, send
from notifications.services.relay import relay_account_changes, relay_changes


@dataclass
class DeliveryCounts:
    relayed: int = 0
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class PushDelivery:
    """Relay and dispatch, one non-blocking step at a time; at most `concurrency` in flight."""

    def __init__(self, *, on_finished: Callable[[], None], concurrency: int | None = None):
        self.concurrency = concurrency or settings.PUSH_DISPATCH_CONCURRENCY
        self.counts = DeliveryCounts()
        self._on_finished = on_finished
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="push")
        self._in_flight: dict[Future, Claim] = {}
        self._allowed = allowed_networks()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def relay(self, account_ids: Iterable[int] | None = None) -> None:
        """New change-log entries into notifications: of these accounts, or of every account
        behind (None: at start, after a reconnect, and as the periodic safety net)."""
        if account_ids is None:
            self.counts.relayed += relay_changes()
            return
        for account_id in account_ids:
            self.counts.relayed += relay_account_changes(account_id=account_id)

    def step(self) -> None:
        """Record what finished, then claim what is due into the free slots."""
        self._record_finished()
        claims = claim_due(limit=self.concurrency - len(self._in_flight))
        self.counts.claimed += len(claims)
        for claim in claims:
            future = self._pool.submit(
                send,
                claim,
                timeout=float(settings.PUSH_DELIVERY_TIMEOUT_SECONDS),
                allowed=self._allowed,
                max_response_bytes=settings.PUSH_RESPONSE_BODY_LIMIT,
            )
            self._in_flight[future] = claim
            future.add_done_callback(lambda _future: self._on_finished())

    def seconds_until_due(self, *, longest: float) -> float:
        """How long nothing becomes due by itself: the next retry of a pending notification
        (or, behind a delivery in flight on its channel, that delivery's lease) or the next
        lapsing lease, at most `longest` (0 when something is due now)."""
        now = timezone.now()
        # A channel's next notification waits for the one in flight, whose end wakes us
        # (on_finished) or, if another process holds it, whose lease lapses at busy_until.
        ready_at = Greatest(
            F("next_attempt_at"), Coalesce(F("channel__busy_until"), F("next_attempt_at"))
        )
        due = Notification.objects.filter(channel__status=Channel.Status.OPEN).aggregate(
            retry=Min(ready_at, filter=Q(status=Notification.Status.PENDING)),
            lease=Min("lease_expires_at", filter=Q(status=Notification.Status.SENDING)),
        )
        moments = [moment for moment in due.values() if moment is not None]
        if not moments:
            return longest
        return min(longest, max(0.0, (min(moments) - now).total_seconds()))

    def drain(self, *, timeout: float) -> None:
        """Stopping: wait for the deliveries in flight (each is bounded by the delivery
        timeout) and record them; claims not recorded lapse and are sent again elsewhere."""
        wait(list(self._in_flight), timeout=timeout)
        self._record_finished()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _record_finished(self) -> None:
        done = [future for future in self._in_flight if future.done()]
        if not done:
            return
        finished = [(self._in_flight.pop(future), future.result()) for future in done]
        for outcome in record_results(finished):
            self.counts.outcomes[outcome] = self.counts.outcomes.get(outcome, 0) + 1
