"""The dispatcher: claims due notifications from the outbox and POSTs them, signed.

Claims use SELECT … FOR UPDATE SKIP LOCKED on the notification and its channel, and give each
claim a lease; a claim whose worker died is taken over when its lease lapses (the receiver then
gets a duplicate with the same delivery id: at-least-once, never lost). Results are applied with
a conditional UPDATE on (status=sending, attempts=claimed number), so a stale or duplicate
worker can log its attempt but never move a notification backwards.

Concurrency: at most one notification per channel is in flight (the channel's `busy_until`),
and at most PUSH_DISPATCH_CONCURRENCY per dispatcher. HTTP runs in worker threads that never
touch the database; claims and results go through the dispatcher's own connection.
"""

import json
import logging
import random
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

import metrics
from accounts.ids import format_utc
from accounts.models import ApplicationSecret
from calendars.changes import encode_cursor
from notifications import signing, transport
from notifications.models import Channel, DeliveryAttempt, Notification
from notifications.services.channels import allowed_networks
from notifications.services.relay import relay_changes

logger = logging.getLogger(__name__)

# Delay after the 1st, 2nd, … failed attempt (seconds), ±20% jitter; then hourly, and a final
# attempt when the retry window (PUSH_RETRY_WINDOW_HOURS after the first attempt) closes.
RETRY_DELAYS = (5, 60, 300, 1800, 7200, 18000)
LATER_DELAY = 3600
JITTER = 0.2
DELIVERY_ID_HEADER = "X-Delivery-Id"
ATTEMPT_HEADER = "X-Delivery-Attempt"
USER_AGENT = "calsync-push/1.0"


@dataclass
class Claim:
    """One claimed attempt, with everything a worker thread needs to send it."""

    notification_id: int
    channel_id: int
    number: int
    lease_until: datetime
    url: str
    body: bytes
    headers: dict[str, str]
    unsigned_reason: str = ""


@dataclass
class DispatchStats:
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    stale: int = 0
    relayed: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def render_body(notification: Notification, channel: Channel) -> bytes:
    """The exact bytes POSTed (and signed); see docs/api.md, "Push notifications"."""
    note: dict = {"type": notification.type}
    if notification.type == Notification.Type.CHANGE and notification.changes_since:
        note["changes_since"] = format_utc(notification.changes_since)
    if notification.type == Notification.Type.CHANGE:
        note.update(_range_keys(notification, channel))
    payload = {"notification": note, "channel": channel.wire()}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _range_keys(notification: Notification, channel: Channel) -> dict:
    """Additive keys: the change-log range (after, through] this notification covers and the
    /v1/changes cursors at both ends. Consecutive notifications of a channel chain (one's
    `changes_after_sequence` is the previous one's `changes_through_sequence`), so a receiver
    can tell a gap; see docs/api.md, Push notifications."""
    after, through = notification.changes_after_sequence, notification.changes_through_sequence
    if after is None or through is None:
        return {}

    def cursor(sequence: int) -> str:
        return encode_cursor(
            account_id=channel.account_id,
            application_id=channel.application_id,
            sequence=sequence,
        )

    keys = {
        "changes_after_sequence": after,
        "changes_through_sequence": through,
        "changes_cursor": cursor(after),
        "next_cursor": cursor(through),
    }
    if notification.is_replay:
        keys["replay"] = True
    return keys


def retry_delay(number: int, retry_after: str | None = None) -> float:
    """Seconds to wait after failed attempt `number` (1-based), jittered ±20%.

    A numeric Retry-After (429/503) is honoured but clamped to [base, 2 × base].
    """
    base = RETRY_DELAYS[number - 1] if number - 1 < len(RETRY_DELAYS) else LATER_DELAY
    if retry_after and retry_after.strip().isdigit():
        return float(min(max(int(retry_after.strip()), base), 2 * base))
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def claim_due(*, limit: int, now: datetime | None = None) -> list[Claim]:
    """Claim up to `limit` due notifications, at most one per channel, under a lease.

    Due: pending with next_attempt_at ≤ now, or sending with a lapsed lease (its worker died),
    on an open channel with no other delivery in flight.
    """
    if limit <= 0:
        return []
    now = now or timezone.now()
    lease_until = now + timedelta(seconds=settings.PUSH_LEASE_SECONDS)
    with transaction.atomic():
        candidates = list(
            Notification.objects.filter(
                Q(status=Notification.Status.PENDING, next_attempt_at__lte=now)
                | Q(status=Notification.Status.SENDING, lease_expires_at__lte=now),
                channel__status=Channel.Status.OPEN,
            )
            .filter(Q(channel__busy_until__isnull=True) | Q(channel__busy_until__lte=now))
            .select_related("channel")
            .only("id", "channel_id", "channel__id")
            .order_by("next_attempt_at", "pk")
            .select_for_update(skip_locked=True, of=("self", "channel"))[: limit * 2]
        )
        chosen: dict[int, int] = {}
        for candidate in candidates:
            if candidate.channel_id not in chosen and len(chosen) < limit:
                chosen[candidate.channel_id] = candidate.pk
        if not chosen:
            return []
        Notification.objects.filter(pk__in=chosen.values()).update(
            status=Notification.Status.SENDING,
            attempts=F("attempts") + 1,
            lease_expires_at=lease_until,
            last_attempt_at=now,
            first_attempt_at=Coalesce(F("first_attempt_at"), now),
        )
        Channel.objects.filter(pk__in=chosen.keys()).update(busy_until=lease_until)
        rows = list(
            Notification.objects.filter(pk__in=chosen.values())
            .select_related("channel")
            .order_by("next_attempt_at", "pk")
        )
    secrets: dict[int, list[str]] = defaultdict(list)
    app_ids = {row.channel.application_id for row in rows}
    for secret in ApplicationSecret.objects.filter(
        application_id__in=app_ids, is_active=True
    ).order_by("created_at", "pk"):
        secrets[secret.application_id].append(secret.secret)
    claims = []
    for row in rows:
        body = render_body(row, row.channel)
        keys = secrets.get(row.channel.application_id, [])
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            DELIVERY_ID_HEADER: row.delivery_id,
            ATTEMPT_HEADER: str(row.attempts),
        }
        if keys:
            headers[signing.HEADER] = signing.header_value(body, keys)
            # Signed afresh at every attempt: the id is stable, the timestamp is now.
            headers.update(
                signing.standard_headers(row.delivery_id, int(now.timestamp()), body, keys)
            )
        claims.append(
            Claim(
                notification_id=row.pk,
                channel_id=row.channel_id,
                number=row.attempts,
                lease_until=lease_until,
                url=row.channel.callback_url,
                body=body,
                headers=headers,
                # Never send unsigned: the receiver could not tell us from an attacker.
                unsigned_reason="" if keys else "not sent: the application has no active secret",
            )
        )
    return claims


def send(claim: Claim, *, timeout: float, allowed, max_response_bytes: int) -> transport.PostResult:
    """POST one claim (network only; safe to run in a worker thread without a DB connection)."""
    if claim.unsigned_reason:
        return transport.PostResult(error=claim.unsigned_reason)
    return transport.post(
        claim.url,
        claim.body,
        claim.headers,
        timeout=timeout,
        allowed=allowed,
        max_response_bytes=max_response_bytes,
    )


def record_results(
    results: list[tuple[Claim, transport.PostResult]], *, now: datetime | None = None
) -> list[str]:
    """Log each attempt and apply its outcome; returns one outcome name per result.

    Outcomes: delivered, retrying, failed (retry window over or 410 Gone: the channel is
    closed), stale (the claim had lapsed and was taken over: logged only).
    """
    now = now or timezone.now()
    window = timedelta(hours=settings.PUSH_RETRY_WINDOW_HOURS)
    outcomes = []
    with transaction.atomic():
        # Lock order channel → notification everywhere (the relay does the same).
        list(
            Channel.objects.filter(pk__in={c.channel_id for c, _ in results})
            .select_for_update()
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        DeliveryAttempt.objects.bulk_create(
            [
                DeliveryAttempt(
                    notification_id=claim.notification_id,
                    number=claim.number,
                    started_at=now - timedelta(milliseconds=result.duration_ms),
                    duration_ms=result.duration_ms,
                    remote_ip=result.remote_ip,
                    status_code=result.status_code,
                    is_success=result.is_success,
                    error=result.error[:500],
                    response_body=result.body.decode("utf-8", "replace"),
                )
                for claim, result in results
            ],
            # A duplicate run of the same claim logs nothing twice and then finds the
            # conditional update already applied: it reports "stale".
            ignore_conflicts=True,
        )
        rows = Notification.objects.filter(pk__in=[c.notification_id for c, _ in results])
        first_attempts, created = {}, {}
        for pk, first_attempt_at, created_at in rows.values_list(
            "pk", "first_attempt_at", "created_at"
        ):
            first_attempts[pk], created[pk] = first_attempt_at, created_at
        for claim, result in results:
            outcome = _apply(claim, result, now, window, first_attempts.get(claim.notification_id))
            outcomes.append(outcome)
    for (claim, _), outcome in zip(results, outcomes, strict=True):  # after the transaction
        metrics.observe_delivery(outcome, created_at=created.get(claim.notification_id), now=now)
    return outcomes


def _apply(claim: Claim, result, now: datetime, window: timedelta, first: datetime | None) -> str:
    current = Notification.objects.filter(
        pk=claim.notification_id, status=Notification.Status.SENDING, attempts=claim.number
    )
    error = result.error or (f"HTTP {result.status_code}" if not result.is_success else "")
    common = {
        "lease_expires_at": None,
        "last_status_code": result.status_code,
        "last_error": error[:500],
    }
    if result.is_success:
        outcome = "delivered"
        updated = current.update(
            status=Notification.Status.DELIVERED, delivered_at=now, finished_at=now, **common
        )
    else:
        deadline = (first or now) + window
        gone = result.status_code == 410
        if gone or now >= deadline:
            outcome = "failed"
            updated = current.update(status=Notification.Status.FAILED, finished_at=now, **common)
            if updated:
                reason = (
                    "the receiver answered 410 Gone"
                    if gone
                    else f"deliveries failed for {settings.PUSH_RETRY_WINDOW_HOURS} hours"
                )
                _close_after_failure(claim.channel_id, reason, now)
        else:
            outcome = "retrying"
            delay = retry_delay(claim.number, result.retry_after)
            next_at = min(now + timedelta(seconds=delay), deadline)
            updated = current.update(
                status=Notification.Status.PENDING, next_attempt_at=next_at, **common
            )
    if not updated:
        return "stale"
    Channel.objects.filter(pk=claim.channel_id, busy_until=claim.lease_until).update(
        busy_until=None
    )
    return outcome


def _close_after_failure(channel_id: int, reason: str, now: datetime) -> None:
    """Close the channel; its other undelivered notifications fail with it (support can reopen
    the channel and retry them)."""
    Channel.objects.filter(pk=channel_id, status=Channel.Status.OPEN).update(
        status=Channel.Status.CLOSED, closed_at=now, closed_reason=reason[:255], updated_at=now
    )
    Notification.objects.filter(
        channel_id=channel_id,
        status__in=(Notification.Status.PENDING, Notification.Status.SENDING),
    ).update(
        status=Notification.Status.FAILED,
        finished_at=now,
        lease_expires_at=None,
        last_error=f"channel closed: {reason}"[:500],
    )
    logger.warning("push channel %s closed: %s", channel_id, reason)


def run_dispatcher(
    *,
    seconds: float = 0.0,
    relay: bool = False,
    concurrency: int | None = None,
    poll_interval: float | None = None,
) -> DispatchStats:
    """Claim, send and record until the outbox has nothing due (seconds=0), or keep polling for
    `seconds`. With relay=True the change log is relayed on every poll. (The delivery process
    runs the same claims and results as steps of its own loop: delivery.py.)

    Worker threads only do HTTP; at most `concurrency` deliveries are in flight.
    """
    concurrency = concurrency or settings.PUSH_DISPATCH_CONCURRENCY
    poll_interval = poll_interval or float(settings.PUSH_POLL_INTERVAL_SECONDS)
    timeout = float(settings.PUSH_DELIVERY_TIMEOUT_SECONDS)
    max_bytes = settings.PUSH_RESPONSE_BODY_LIMIT
    allowed = allowed_networks()
    stats = DispatchStats()
    deadline = time.monotonic() + seconds
    in_flight: dict[Future, Claim] = {}
    last_poll = 0.0
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="push") as pool:
        while True:
            polling = time.monotonic() < deadline
            if relay and time.monotonic() - last_poll >= poll_interval:
                last_poll = time.monotonic()
                stats.relayed += relay_changes()
            claims = claim_due(limit=concurrency - len(in_flight))
            stats.claimed += len(claims)
            for claim in claims:
                future = pool.submit(
                    send, claim, timeout=timeout, allowed=allowed, max_response_bytes=max_bytes
                )
                in_flight[future] = claim
            if not in_flight:
                if not polling:
                    break
                time.sleep(min(poll_interval, max(deadline - time.monotonic(), 0)))
                continue
            done, _ = wait(in_flight, timeout=poll_interval, return_when=FIRST_COMPLETED)
            if done:
                finished = [(in_flight.pop(f), f.result()) for f in done]
                for outcome in record_results(finished):
                    stats.outcomes[outcome] += 1
                    if outcome in ("delivered", "retrying", "failed", "stale"):
                        setattr(stats, outcome, getattr(stats, outcome) + 1)
    return stats


def dispatch_due() -> DispatchStats:
    """Send everything due now and return (the minute sweep and the on-commit task)."""
    return run_dispatcher()
