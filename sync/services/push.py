"""Provider push: subscriptions per calendar, the receiver's service, renewal, and the stop when
a profile is disconnected. Push is a hint to sync sooner; polling stays on as the safety net
(at SYNC_PUSH_POLL_INTERVAL_SECONDS while a subscription is healthy, the usual interval
otherwise).

The receiver does only database work and answers at once: it checks the notification's token
against the subscription's secret in constant time and asks for one sync of the calendar. A
burst of notifications queues one sync; one arriving while that sync runs queues the next
(CalendarSyncState.push_requested_at, cleared when a sync takes its lease).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from accounts.models import Profile
from calendars.models import Calendar
from sync.models import CalendarSyncState, ProviderSubscription
from sync.providers import base
from sync.providers.registry import provider_class
from sync.services import engine
from sync.services.credentials import build_provider, provider_for

log = logging.getLogger(__name__)

BATCH = 100


@dataclass
class MaintenanceReport:
    subscribed: int = 0
    renewed: int = 0
    stopped: int = 0
    failed: int = 0


def push_address(provider_key: str) -> str:
    """Where the provider posts; empty when PUBLIC_BASE_URL is unset (no push then)."""
    base_url = settings.PUBLIC_BASE_URL
    return f"{base_url}/push/{provider_key}/" if base_url else ""


def supports_push(provider_key: str) -> bool:
    try:
        return provider_class(provider_key).supports_push
    except KeyError:
        return False


# --- the receiver ---
@dataclass(frozen=True)
class Received:
    accepted: int
    rejected: int
    reply: str


def receive_push(
    *, provider_key: str, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
) -> Received:
    """What the receiver at /push/<provider>/ does with a request. Raises PermanentError for
    a request that is not a notification of that provider, KeyError for an unknown one."""
    receipt = provider_class(provider_key).parse_push(headers=headers, body=body, query=query)
    accepted = rejected = 0
    now = timezone.now()
    for notification in receipt.notifications:
        subscription = (
            ProviderSubscription.objects.filter(channel_id=notification.channel_id)
            .only("pk", "calendar_id", "secret", "channel_id")
            .first()
        )
        if subscription is None or not hmac.compare_digest(
            subscription.secret.encode(), notification.token.encode()
        ):
            rejected += 1
            continue
        accepted += 1
        ProviderSubscription.objects.filter(pk=subscription.pk).update(last_notification_at=now)
        request_push_sync(calendar_id=subscription.calendar_id, now=now)
    if rejected:
        log.warning(
            "push to %s: %s notification(s) with an unknown channel or token",
            provider_key,
            rejected,
        )
    return Received(accepted=accepted, rejected=rejected, reply=receipt.reply)


def request_push_sync(*, calendar_id: int, now: datetime | None = None) -> bool:
    """Ask for one sync of the calendar soon; True if this request queued it (the first of a
    burst), False if one is already asked for."""
    now = now or timezone.now()
    first = CalendarSyncState.objects.filter(
        calendar_id=calendar_id, push_requested_at__isnull=True
    ).update(push_requested_at=now, next_poll_at=now)
    if first:
        transaction.on_commit(lambda: engine.enqueue_sync(calendar_id))
    return bool(first)


# --- keeping subscriptions ---
def maintain_subscriptions(*, now: datetime | None = None) -> MaintenanceReport:
    """The schedule: subscribe calendars of push-capable providers that have none, renew
    those that expire within SYNC_PUSH_RENEW_BEFORE_SECONDS, stop those of deleted calendars
    and disconnected profiles. A failure is logged and tried again at the next run."""
    now = now or timezone.now()
    report = MaintenanceReport()
    push_keys = [key for key in Profile.Provider.values if supports_push(key)]
    if not push_keys:
        return report
    live = Q(calendar__is_deleted=False, calendar__profile__status=Profile.Status.CONNECTED)
    for subscription in ProviderSubscription.objects.exclude(live).select_related(
        "calendar__profile"
    )[:BATCH]:
        _stop(subscription, report)
    if push_address(push_keys[0]):
        for calendar in Calendar.objects.filter(
            is_deleted=False,
            profile__status=Profile.Status.CONNECTED,
            profile__provider__in=push_keys,
            provider_subscription__isnull=True,
        ).select_related("profile")[:BATCH]:
            _subscribe(calendar, report)
        renew_by = now + timedelta(seconds=settings.SYNC_PUSH_RENEW_BEFORE_SECONDS)
        for subscription in (
            ProviderSubscription.objects.filter(live, expires_at__lt=renew_by)
            .select_related("calendar__profile")
            .order_by("expires_at")[:BATCH]
        ):
            _renew(subscription, report)
    return report


def _subscribe(calendar: Calendar, report: MaintenanceReport) -> None:
    channel_id, token = uuid.uuid4().hex, secrets.token_urlsafe(32)
    try:
        watch = provider_for(calendar.profile).watch(
            calendar.provider_calendar_id,
            channel_id=channel_id,
            address=push_address(calendar.profile.provider),
            token=token,
            ttl_seconds=settings.SYNC_PUSH_TTL_SECONDS,
        )
    except base.ProviderError as exc:
        report.failed += 1
        log.warning("push subscription for %s not created: %s", calendar.public_id, exc)
        return
    ProviderSubscription.objects.create(
        calendar=calendar,
        channel_id=channel_id,
        resource_id=watch.resource_id,
        secret=token,
        expires_at=watch.expires_at,
    )
    report.subscribed += 1


def _renew(subscription: ProviderSubscription, report: MaintenanceReport) -> None:
    calendar = subscription.calendar
    try:
        watch = provider_for(calendar.profile).renew_watch(
            calendar.provider_calendar_id,
            channel_id=subscription.channel_id,
            resource_id=subscription.resource_id,
            address=push_address(calendar.profile.provider),
            token=subscription.secret,
            ttl_seconds=settings.SYNC_PUSH_TTL_SECONDS,
        )
    except base.ProviderError as exc:
        report.failed += 1
        log.warning("push subscription of %s not renewed: %s", calendar.public_id, exc)
        return
    ProviderSubscription.objects.filter(pk=subscription.pk).update(
        resource_id=watch.resource_id, expires_at=watch.expires_at
    )
    report.renewed += 1


def _stop(subscription: ProviderSubscription, report: MaintenanceReport) -> None:
    """Stop it at the provider if we still can, and forget it either way (an unstopped
    channel expires at the provider by itself; its notifications are then rejected)."""
    profile = subscription.calendar.profile
    try:
        # The stored credentials as they are: a disconnected profile's token is not refreshed.
        build_provider(profile.provider, profile.credentials).stop_watch(
            channel_id=subscription.channel_id, resource_id=subscription.resource_id
        )
    except base.ProviderError as exc:
        log.info("push subscription %s not stopped at the provider: %s", subscription.pk, exc)
    subscription.delete()
    report.stopped += 1


def stop_profile_subscriptions(profile: Profile) -> None:
    """settings.PROFILE_DISCONNECTED_HOOKS entry, inside the disconnect transaction: stop the
    profile's subscriptions after commit (network work never runs inside it)."""
    if ProviderSubscription.objects.filter(calendar__profile=profile).exists():
        transaction.on_commit(lambda: async_task("sync.tasks.maintain_provider_subscriptions"))
