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
from django.db import IntegrityError
from django.db.models import F, Q
from django.db.models.functions import Least
from django.utils import timezone
from django_q.tasks import async_task

from accounts.models import Profile
from accounts.queueing import enqueue_after_commit, enqueue_now
from calendars.models import Calendar
from sync.models import CalendarSyncState, ProviderSubscription
from sync.providers import base
from sync.providers.registry import provider_class
from sync.services import activity, engine
from sync.services.backoff import backoff_delay
from sync.services.credentials import (
    build_provider,
    call_with_fresh_credentials,
    parting_credentials,
)
from sync.services.governor import provider_slot

# Graph's lifecycle notifications: after `subscriptionRemoved` the subscription is gone and is
# replaced; `reauthorizationRequired` asks for a renewal (a PATCH with a fresh token
# reauthorizes it in place); `missed` only asks for a sync, like every notification.
REPLACE_ON = frozenset({"subscriptionRemoved"})
RENEW_ON = frozenset({"reauthorizationRequired"})
log = logging.getLogger(__name__)

BATCH = 100
SUBSCRIBE_RETRY_BASE_SECONDS = 15 * 60  # the maintenance schedule's interval
SUBSCRIBE_RETRY_CAP_SECONDS = 24 * 3600


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
            ProviderSubscription.objects.filter(
                channel_id=notification.channel_id,
                calendar__profile__provider=provider_key,
                calendar__is_deleted=False,
                calendar__profile__status=Profile.Status.CONNECTED,
            )
            .only("pk", "calendar_id", "secret", "channel_id", "calendar__profile")
            .select_related("calendar")
            .first()
        )
        if subscription is None or not hmac.compare_digest(
            subscription.secret.encode(), notification.token.encode()
        ):
            rejected += 1
            continue
        accepted += 1
        ProviderSubscription.objects.filter(pk=subscription.pk).update(last_notification_at=now)
        activity.record_push_received(
            calendar_id=subscription.calendar_id,
            profile_id=subscription.calendar.profile_id,
            lifecycle=notification.lifecycle or "",
        )
        if notification.lifecycle in REPLACE_ON | RENEW_ON:
            _due_now(subscription, replace=notification.lifecycle in REPLACE_ON, now=now)
        request_push_sync(calendar_id=subscription.calendar_id, now=now)
    if rejected:
        log.warning(
            "push to %s: %s notification(s) with an unknown channel or token",
            provider_key,
            rejected,
        )
    return Received(accepted=accepted, rejected=rejected, reply=receipt.reply)


def _due_now(subscription: ProviderSubscription, *, replace: bool, now: datetime) -> None:
    """Have the maintenance run at once. Replace: marked expired, so a new subscription is
    made (then the old one stopped). Renew: marked as inside the renewal margin but alive,
    so it is renewed in place; the date we keep is then earlier than the provider's, which
    errs on the safe side if the renewal fails. The sync catches up on anything missed."""
    expires_at = now if replace else now + timedelta(seconds=_renewal_margin() // 2)
    ProviderSubscription.objects.filter(pk=subscription.pk).update(
        expires_at=Least(F("expires_at"), expires_at)
    )
    enqueue_after_commit(engine.enqueue_push_maintenance, what="push maintenance")


def _renewal_margin() -> int:
    """Renew at the latest halfway through the lifetime we ask for."""
    return min(settings.SYNC_PUSH_RENEW_BEFORE_SECONDS, settings.SYNC_PUSH_TTL_SECONDS // 2)


def request_push_sync(*, calendar_id: int, now: datetime | None = None) -> bool:
    """Ask for one sync of the calendar soon; True if this request queued it.

    The first notification of a burst queues it; later ones only keep the request standing.
    A calendar in backoff (failing, or told to slow down) keeps its schedule: the request
    waits for its next poll. While a sync runs, the request is left to it: it queues the
    follow-up when it ends."""
    now = now or timezone.now()
    first = CalendarSyncState.objects.filter(
        calendar_id=calendar_id, push_requested_at__isnull=True
    ).update(push_requested_at=now)
    if not first:
        return False
    ready = (
        CalendarSyncState.objects.filter(calendar_id=calendar_id, consecutive_failures=0)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .update(next_poll_at=now)
    )
    if ready:
        enqueue_after_commit(lambda: engine.enqueue_sync(calendar_id), what="calendar sync")
    return bool(ready)


# --- keeping subscriptions ---
def maintain_subscriptions(*, now: datetime | None = None) -> MaintenanceReport:
    """The schedule: renew subscriptions that expire within the renewal margin (an expired
    one is replaced), stop those of deleted calendars and disconnected profiles, subscribe
    calendars of push-capable providers that have none. A failure is logged and tried again
    at the next run; each part is bounded to BATCH calls."""
    now = now or timezone.now()
    report = MaintenanceReport()
    push_keys = [key for key in Profile.Provider.values if supports_push(key)]
    if not push_keys:
        return report
    live = Q(calendar__is_deleted=False, calendar__profile__status=Profile.Status.CONNECTED)
    for subscription in ProviderSubscription.objects.exclude(live).select_related(
        "calendar__profile"
    )[:BATCH]:
        _stop(subscription, report, now=now)
    if not push_address(push_keys[0]):
        return report
    due = ProviderSubscription.objects.filter(live).filter(
        Q(expires_at__isnull=True) | Q(expires_at__lt=now + timedelta(seconds=_renewal_margin()))
    )
    for subscription in due.select_related("calendar__profile").order_by("updated_at")[:BATCH]:
        _renew(subscription, report, now=now)
    for calendar in (
        Calendar.objects.filter(
            is_deleted=False,
            profile__status=Profile.Status.CONNECTED,
            profile__provider__in=push_keys,
            provider_subscription__isnull=True,
        )
        .exclude(sync_state__push_retry_at__gt=now)
        .select_related("profile")
        .order_by("pk")[:BATCH]
    ):
        _subscribe(calendar, report, now=now)
    return report


def _watch(calendar: Calendar) -> tuple[str, str, base.Watch]:
    """A new channel for the calendar: (channel id, secret, what the provider answered)."""
    channel_id, token = uuid.uuid4().hex, secrets.token_urlsafe(32)
    watch = call_with_fresh_credentials(
        calendar.profile,
        lambda provider: provider.watch(
            calendar.provider_calendar_id,
            channel_id=channel_id,
            address=push_address(calendar.profile.provider),
            token=token,
            ttl_seconds=settings.SYNC_PUSH_TTL_SECONDS,
        ),
    )
    return watch.channel_id or channel_id, token, watch


def _subscribe(calendar: Calendar, report: MaintenanceReport, *, now: datetime) -> None:
    try:
        channel_id, token, watch = _watch(calendar)
    except base.ProviderError as exc:
        report.failed += 1
        retry_at = _subscribe_later(calendar, exc, now=now)
        log.warning(
            "push subscription for %s not created (next try %s): %s",
            calendar.public_id,
            f"{retry_at:%Y-%m-%d %H:%M}",
            exc,
        )
        if isinstance(exc, base.NotFound):
            # The provider no longer has the calendar: the list refresh marks it deleted.
            enqueue_now(
                lambda: engine.enqueue_calendar_discovery(calendar.profile_id),
                what="discovery",
            )
        return
    CalendarSyncState.objects.filter(calendar=calendar, push_failures__gt=0).update(
        push_failures=0, push_retry_at=None
    )
    try:
        ProviderSubscription.objects.create(
            calendar=calendar,
            channel_id=channel_id,
            resource_id=watch.resource_id,
            secret=token,
            expires_at=watch.expires_at,
        )
    except IntegrityError:
        # Another run subscribed it meanwhile: ours is an orphan, stop it.
        _stop_at_provider(calendar.profile, channel_id, watch.resource_id)
        return
    report.subscribed += 1


def _subscribe_later(calendar: Calendar, exc: Exception, *, now: datetime) -> datetime:
    """Back off this calendar's subscribing: from the maintenance interval, doubling, at most a
    day (a refusal that lasts, such as a shared calendar's, is asked about once a day; the
    poll keeps it fresh meanwhile)."""
    state, _ = CalendarSyncState.objects.get_or_create(calendar=calendar)
    failures = state.push_failures + 1
    delay = backoff_delay(
        attempt=failures,
        base_seconds=SUBSCRIBE_RETRY_BASE_SECONDS,
        cap_seconds=SUBSCRIBE_RETRY_CAP_SECONDS,
        jitter=0.2,
        error=exc,
    )
    CalendarSyncState.objects.filter(pk=state.pk).update(
        push_failures=failures, push_retry_at=now + delay
    )
    return now + delay


def _renew(subscription: ProviderSubscription, report: MaintenanceReport, *, now) -> None:
    """Extend it where the provider can (Graph); otherwise (Google, or an expired one) open a
    new channel with a new id and secret, then stop the old one, best effort."""
    calendar = subscription.calendar
    try:
        if subscription.is_healthy(now):
            try:
                watch = call_with_fresh_credentials(
                    calendar.profile,
                    lambda provider: provider.renew_watch(
                        calendar.provider_calendar_id,
                        channel_id=subscription.channel_id,
                        resource_id=subscription.resource_id,
                        address=push_address(calendar.profile.provider),
                        token=subscription.secret,
                        ttl_seconds=settings.SYNC_PUSH_TTL_SECONDS,
                    ),
                )
                ProviderSubscription.objects.filter(pk=subscription.pk).update(
                    resource_id=watch.resource_id, expires_at=watch.expires_at
                )
                report.renewed += 1
                return
            except base.NotSupported:
                pass
        channel_id, token, watch = _watch(calendar)
    except base.ProviderError as exc:
        report.failed += 1
        log.warning("push subscription of %s not renewed: %s", calendar.public_id, exc)
        ProviderSubscription.objects.filter(pk=subscription.pk).update(updated_at=now)
        return
    old_channel, old_resource = subscription.channel_id, subscription.resource_id
    subscription.channel_id, subscription.secret = channel_id, token  # secret bound to the id
    subscription.resource_id, subscription.expires_at = watch.resource_id, watch.expires_at
    subscription.save()
    _stop_at_provider(calendar.profile, old_channel, old_resource)
    report.renewed += 1


def _stop(subscription: ProviderSubscription, report: MaintenanceReport, *, now) -> None:
    """Stop it at the provider, then forget it. Kept for the next run when the provider could
    not be told (it would keep posting), unless it has expired there by itself."""
    profile = subscription.calendar.profile
    stopped = _stop_at_provider(profile, subscription.channel_id, subscription.resource_id)
    if stopped or not subscription.is_healthy(now):
        subscription.delete()
        report.stopped += 1
    else:
        report.failed += 1


def _stop_at_provider(profile: Profile, channel_id: str, resource_id: str) -> bool:
    def stop(provider: base.Provider) -> None:
        provider.stop_watch(channel_id=channel_id, resource_id=resource_id)

    try:
        if profile.is_connected:
            call_with_fresh_credentials(profile, stop)
        else:  # nothing else refreshes a disconnected profile's token: a last refresh
            with provider_slot(profile):
                stop(build_provider(profile.provider, parting_credentials(profile)))
    except base.NotFound:
        return True
    except base.ProviderError as exc:
        log.info("push channel %s not stopped at the provider: %s", channel_id, exc)
        return False
    return True


def stop_profile_subscriptions(profile: Profile) -> None:
    """settings.PROFILE_DISCONNECTED_HOOKS entry, inside the disconnect transaction: stop the
    profile's subscriptions after commit (network work never runs inside it)."""
    if ProviderSubscription.objects.filter(calendar__profile=profile).exists():
        enqueue_after_commit(
            lambda: async_task("sync.tasks.maintain_provider_subscriptions"),
            what="push maintenance",
        )


def stop_subscriptions_now(profile: Profile) -> int:
    """Stop the profile's push subscriptions at the provider now and forget them (account
    erasure: the token is revoked next, after which the provider could no longer be told).
    Best effort: a subscription the provider would not stop is forgotten all the same and
    expires there by itself. Returns the number stopped at the provider."""
    stopped = 0
    for subscription in ProviderSubscription.objects.filter(calendar__profile=profile):
        stopped += _stop_at_provider(profile, subscription.channel_id, subscription.resource_id)
        subscription.delete()
    return stopped
