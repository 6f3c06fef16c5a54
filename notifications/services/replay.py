"""Replay: POST /v1/channels/{id}/replay re-sends `change` notifications from a point in the
change log, so an integrator recovers after an outage of its own (docs/api.md, Replay).

The replay covers the channel's matching entries from that point up to the head of the log,
one notification per REPLAY_CHUNK of them, and moves the channel's relay cursor to the head in
the same transaction (under the channel's row lock, which the relay also takes), so what the
replay covered is not announced a second time and nothing after it is skipped.
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from calendars.models import ChangeLogEntry
from notifications.models import Channel, Notification
from notifications.services.channels import ChangeRange, create_change_notifications
from notifications.services.relay import (
    ENTRY_FIELDS,
    RELAY_BATCH,
    matches_channel,
    whole_seconds,
)

# Matching entries per replayed notification.
REPLAY_CHUNK = 500


class ChannelNotOpen(Exception):
    """Replay asked of a closed channel (422): open a new one and replay into it."""


def sequence_before(*, account: Account, moment: datetime) -> int | None:
    """The position just before the account's first kept entry changed at or after `moment`
    (None when nothing has changed since)."""
    first = (
        ChangeLogEntry.objects.filter(account=account, changed_at__gte=moment)
        .order_by("sequence")
        .values_list("sequence", flat=True)
        .first()
    )
    return None if first is None else first - 1


def replay_changes(*, channel: Channel, after_sequence: int) -> list[Notification]:
    """Queue replayed `change` notifications of the channel's entries after `after_sequence`
    up to the head, and move the channel's relay cursor there. Returns the rows queued.
    Raises ChannelNotOpen."""
    with transaction.atomic():
        locked = Channel.objects.select_for_update().filter(pk=channel.pk).first()
        if locked is None or not locked.is_open:
            raise ChannelNotOpen
        # Head first, entries up to it second: every entry up to it is committed (sequence
        # order is commit order), so none is missed by this read or announced twice later.
        head = Account.objects.filter(pk=locked.account_id).values_list(
            "last_change_seq", flat=True
        )[0]
        ranges = _replay_ranges(locked, after_sequence, head)
        created = create_change_notifications(ranges, is_replay=True)
        _cancel_relayed_rows_covered(locked, after_sequence)
        locked.last_relayed_sequence = max(locked.last_relayed_sequence, head)
        locked.last_notified_sequence = max(locked.last_notified_sequence, head)
        locked.save(update_fields=["last_relayed_sequence", "last_notified_sequence"])
    return created


def _cancel_relayed_rows_covered(channel: Channel, after: int) -> None:
    """A relayed notification not yet sent whose changes the replay covers would announce
    them a second time: cancelled (one being sent is past recall)."""
    Notification.objects.filter(
        channel=channel,
        type=Notification.Type.CHANGE,
        status=Notification.Status.PENDING,
        is_replay=False,
        changes_after_sequence__gte=after,
    ).update(
        status=Notification.Status.CANCELLED,
        finished_at=timezone.now(),
        last_error="covered by a replay",
    )


def _replay_ranges(channel: Channel, after: int, head: int) -> list[ChangeRange]:
    ranges: list[ChangeRange] = []
    start, times, cursor = after, [], after
    while cursor < head:
        batch = list(
            ChangeLogEntry.objects.filter(
                account_id=channel.account_id, sequence__gt=cursor, sequence__lte=head
            )
            .order_by("sequence")
            .values(*ENTRY_FIELDS)[:RELAY_BATCH]
        )
        if not batch:
            break
        for entry in batch:
            if not matches_channel(channel, entry):
                continue
            times.append(entry["changed_at"])
            if len(times) == REPLAY_CHUNK:
                ranges.append(
                    ChangeRange(channel, whole_seconds(min(times)), start, entry["sequence"])
                )
                start, times = entry["sequence"], []
        cursor = batch[-1]["sequence"]
    if times:
        ranges.append(ChangeRange(channel, whole_seconds(min(times)), start, head))
    return ranges
