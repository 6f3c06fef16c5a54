"""Channels and the notifications other services cause (verification, profile, GDPR)."""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from accounts.models import Account, Profile
from accounts.queueing import enqueue_now
from calendars.models import Calendar
from calendars.wakeups import OUTBOX_NOTIFICATIONS, announce_outbox
from notifications import transport
from notifications.models import Channel, Notification

logger = logging.getLogger(__name__)


class ChannelError(Exception):
    """A channel request that cannot be honoured; maps to a 422 in Cronofy's shape."""

    def __init__(self, field: str, key: str, description: str):
        super().__init__(description)
        self.field = field
        self.key = key
        self.description = description


def allowed_networks() -> tuple[transport.IPNetwork, ...]:
    """PUSH_CALLBACK_ALLOWED_NETWORKS as networks (a list, or a comma-separated string)."""
    value = settings.PUSH_CALLBACK_ALLOWED_NETWORKS
    if isinstance(value, str):
        value = value.split(",")
    return transport.parse_networks(value)


def kick_dispatcher() -> None:
    """Ask the task queue for a dispatch run now, where PUSH_ENQUEUE_ON_COMMIT asks for it (a
    deployment without the delivery process). Best effort: the outbox row is the truth and the
    minute sweep finds it anyway, so a broker outage only costs latency."""
    if not settings.PUSH_ENQUEUE_ON_COMMIT:
        return
    enqueue_now(
        lambda: async_task(
            "notifications.tasks.dispatch_notifications", group="notifications", save=False
        ),
        what="push dispatch",
    )


def kick_relay(*, account_id: int) -> None:
    """A sync just committed changes to the account's cache: relay and send them now through
    the task queue, where PUSH_ENQUEUE_ON_COMMIT asks for it. The delivery process needs no
    such trigger: the change log's own NOTIFY wakes it. Best effort, and only when the account
    has an open channel: the minute sweep catches up on anything missed."""
    if not settings.PUSH_ENQUEUE_ON_COMMIT:
        return
    if not Channel.objects.open().filter(account_id=account_id).exists():
        return
    enqueue_now(
        lambda: async_task(
            "notifications.tasks.relay_and_dispatch", group="notifications", save=False
        ),
        what="push relay",
    )


def _kick_after_commit() -> None:
    """Inside the transaction that created due notifications: wake the delivery process at
    commit (NOTIFY), and queue the dispatch task where that is configured."""
    announce_outbox(OUTBOX_NOTIFICATIONS)
    transaction.on_commit(kick_dispatcher)


def _validated_filters(
    account: Account, calendar_ids: Sequence[str] | None, only_managed: bool
) -> dict:
    filters: dict = {}
    if calendar_ids:
        wanted = list(dict.fromkeys(calendar_ids))
        known = set(
            Calendar.objects.for_account(account)
            .filter(public_id__in=wanted)
            .values_list("public_id", flat=True)
        )
        unknown = [cid for cid in wanted if cid not in known]
        if unknown:
            raise ChannelError(
                "filters.calendar_ids",
                "errors.invalid_calendar_ids",
                f"unknown calendar ids: {', '.join(unknown[:5])}",
            )
        filters["calendar_ids"] = wanted
    if only_managed:
        filters["only_managed"] = True
    return filters


def create_channel(
    *,
    account: Account,
    application,
    callback_url: str,
    calendar_ids: Sequence[str] | None = None,
    only_managed: bool = False,
) -> Channel:
    """Open a channel for (account, application) and queue its `verification` notification.

    The URL must be http(s), at most 1024 characters, and resolve only to public addresses
    (or ones PUSH_CALLBACK_ALLOWED_NETWORKS allows). An identical open channel of the same pair
    is returned as is. Raises ChannelError (bad URL, unknown calendar, more than
    PUSH_MAX_CHANNELS_PER_ACCOUNT open channels).
    """
    try:
        transport.validate_callback_url(callback_url, allowed_networks())
    except transport.UrlRejected as exc:
        key = "errors.invalid_url" if exc.code != "blocked_address" else "errors.blocked_address"
        raise ChannelError("callback_url", key, exc.message) from None
    filters = _validated_filters(account, calendar_ids, only_managed)
    with transaction.atomic():
        # The account row lock serialises channel creation (quota) and change-log writers, so
        # the cursor below is exactly "everything committed before this channel existed".
        locked = (
            Account.objects.select_for_update(no_key=True)
            .only("id", "last_change_seq")
            .get(pk=account.pk)
        )
        open_channels = list(Channel.objects.open().filter(account=account))
        for channel in open_channels:
            same_pair = channel.application_id == application.pk
            if same_pair and channel.callback_url == callback_url and channel.filters == filters:
                return channel
        if len(open_channels) >= settings.PUSH_MAX_CHANNELS_PER_ACCOUNT:
            raise ChannelError(
                "channel",
                "errors.too_many_channels",
                f"an account may have at most {settings.PUSH_MAX_CHANNELS_PER_ACCOUNT} channels",
            )
        channel = Channel.objects.create(
            account=account,
            application=application,
            callback_url=callback_url,
            filters=filters,
            last_relayed_sequence=locked.last_change_seq,
            last_notified_sequence=locked.last_change_seq,
        )
        _create_notifications([channel], Notification.Type.VERIFICATION)
    return channel


def close_channel(*, channel: Channel, reason: str = "closed by the integrator") -> bool:
    """Close an open channel; its undelivered notifications are cancelled. False if closed."""
    now = timezone.now()
    with transaction.atomic():
        closed = Channel.objects.filter(pk=channel.pk, status=Channel.Status.OPEN).update(
            status=Channel.Status.CLOSED, closed_at=now, closed_reason=reason[:255], updated_at=now
        )
        if closed:
            Notification.objects.filter(
                channel_id=channel.pk,
                status__in=(Notification.Status.PENDING, Notification.Status.SENDING),
            ).update(
                status=Notification.Status.CANCELLED,
                finished_at=now,
                lease_expires_at=None,
                last_error=f"channel closed: {reason}"[:500],
            )
    channel.refresh_from_db()
    return bool(closed)


def reopen_channel(*, channel: Channel) -> bool:
    """Support action: reopen a closed channel. Changes made while it was closed are relayed
    (its cursor did not move), so the integrator hears about them. False if already open."""
    with transaction.atomic():
        reopened = Channel.objects.filter(pk=channel.pk, status=Channel.Status.CLOSED).update(
            status=Channel.Status.OPEN,
            closed_at=None,
            closed_reason="",
            busy_until=None,
            updated_at=timezone.now(),
        )
    channel.refresh_from_db()
    return bool(reopened)


def retry_notification(*, notification: Notification) -> bool:
    """Support action: send a failed (or waiting) notification again now, with a fresh 24-hour
    budget and the same delivery id. Its channel must be open. False if not retryable."""
    if notification.status not in (Notification.Status.FAILED, Notification.Status.PENDING):
        return False
    now = timezone.now()
    with transaction.atomic():
        updated = Notification.objects.filter(
            pk=notification.pk,
            status__in=(Notification.Status.FAILED, Notification.Status.PENDING),
            channel__status=Channel.Status.OPEN,
        ).update(
            status=Notification.Status.PENDING,
            next_attempt_at=now,
            first_attempt_at=None,
            finished_at=None,
        )
        if updated:
            _kick_after_commit()
    notification.refresh_from_db()
    return bool(updated)


def replay_notification(*, notification: Notification) -> Notification | None:
    """Support action: send a delivered (or given-up) notification again, as a new delivery
    with a new delivery id, so an integrator that lost or mishandled it gets it once more; a
    receiver that already processed it can tell the replay apart. Its channel must be open.
    None if the channel is closed or the notification is still on its way."""
    if notification.status not in (Notification.Status.DELIVERED, Notification.Status.FAILED):
        return None
    with transaction.atomic():
        channel = Channel.objects.open().filter(pk=notification.channel_id).first()
        if channel is None:
            return None
        if notification.type == Notification.Type.CHANGE:
            # The same range again, marked as a replay: the relay never extends it, and the
            # receiver sees which changes it covers.
            [replay] = create_change_notifications(
                [
                    ChangeRange(
                        channel,
                        notification.changes_since,
                        notification.changes_after_sequence,
                        notification.changes_through_sequence,
                    )
                ],
                is_replay=True,
            )
        else:
            [replay] = _create_notifications([channel], notification.type)
    return replay


def _create_notifications(
    channels: Iterable[Channel], type_: str, *, changes_since: datetime | None = None
) -> list[Notification]:
    now = timezone.now()
    rows = [
        Notification(channel=channel, type=type_, changes_since=changes_since, next_attempt_at=now)
        for channel in channels
    ]
    created = Notification.objects.bulk_create(rows, batch_size=500)
    if created:
        _kick_after_commit()
    return created


@dataclass(frozen=True)
class ChangeRange:
    """What one `change` notification covers: the channel's matching entries in
    (after, through], the earliest of them changed at `since`."""

    channel: Channel
    since: datetime
    after: int
    through: int


def create_change_notifications(
    ranges: Sequence[ChangeRange], *, is_replay: bool = False
) -> list[Notification]:
    """Pending `change` rows for these ranges (inside the caller's transaction)."""
    now = timezone.now()
    rows = [
        Notification(
            channel=r.channel,
            type=Notification.Type.CHANGE,
            changes_since=r.since,
            changes_after_sequence=r.after,
            changes_through_sequence=r.through,
            is_replay=is_replay,
            next_attempt_at=now,
        )
        for r in ranges
    ]
    created = Notification.objects.bulk_create(rows, batch_size=500)
    if created:
        _kick_after_commit()
    return created


def _notify_account(account_id: int, type_: str, *, created_before: datetime | None = None) -> int:
    with transaction.atomic():
        channels = Channel.objects.open().filter(account_id=account_id)
        if created_before is not None:
            channels = channels.filter(created_at__lt=created_before)
        return len(_create_notifications(list(channels.only("id")), type_))


def notify_profile_disconnected(profile: Profile) -> int:
    """Queue `profile_disconnected` to every open channel of the profile's account.

    Call it inside the transaction that marks the profile disconnected: the outbox rows then
    commit (or roll back) with that change. Returns the number of notifications queued.
    """
    return _notify_account(profile.account_id, Notification.Type.PROFILE_DISCONNECTED)


def notify_profile_initial_sync_completed(
    profile: Profile, *, completed_at: datetime | None = None
) -> int:
    """Queue `profile_initial_sync_completed` to the account's open channels that existed
    before the sync completed (`completed_at`, default now). Call it in the transaction that
    records the completion. Returns the number queued."""
    completed_at = completed_at or timezone.now()
    return _notify_account(
        profile.account_id,
        Notification.Type.PROFILE_INITIAL_SYNC_COMPLETED,
        created_before=completed_at,
    )


def notify_gdpr_requested(account: Account) -> int:
    """Queue `gdpr_requested` to every open channel of the account (before erasing it: the
    erasure deletes the channels and their outbox rows with the account)."""
    return _notify_account(account.pk, Notification.Type.GDPR_REQUESTED)
