"""The relay: turns committed change-log entries into coalesced `change` notifications.

Each open channel keeps a cursor (the last change-log sequence of its account it has been
matched against). Sequence order is commit order per account (the account row lock orders
writers), so reading `sequence > cursor` never skips a change that commits later. A change
that rolled back has no log row and so never produces a notification.
"""

from datetime import datetime

from django.db import transaction
from django.db.models import F

from calendars.models import ChangeLogEntry
from notifications.models import Channel, Notification
from notifications.services.channels import ChangeRange, create_change_notifications

RELAY_BATCH = 2000


ENTRY_FIELDS = (
    "sequence",
    "kind",
    "changed_at",
    "application_id",
    "calendar__public_id",
    "event__application_id",
)

# A profile connecting or disconnecting is in the log (GET /v1/changes) but is no `change` of
# events: a disconnection has its own notification (profile_disconnected), and a connection
# brings its events as entries of their own.
PROFILE_KINDS = frozenset(
    {ChangeLogEntry.Kind.PROFILE_CONNECTED, ChangeLogEntry.Kind.PROFILE_DISCONNECTED}
)


def matches_channel(channel: Channel, entry: dict) -> bool:
    """Whether a change-log entry (a dict of ENTRY_FIELDS) is news to this channel."""
    if entry["kind"] in PROFILE_KINDS:
        return False
    # Cronofy does not notify an application of its own API writes.
    if entry["application_id"] is not None and entry["application_id"] == channel.application_id:
        return False
    calendar_ids = channel.calendar_ids
    if calendar_ids and entry["calendar__public_id"] not in calendar_ids:
        return False
    return not (channel.only_managed and entry["event__application_id"] != channel.application_id)


def whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def relay_changes(*, batch_size: int = RELAY_BATCH) -> int:
    """Relay every account whose open channels are behind its change log.

    Returns the number of `change` notifications created (coalesced ones not counted).
    """
    behind = (
        Channel.objects.open()
        .filter(last_relayed_sequence__lt=F("account__last_change_seq"))
        .values_list("account_id", flat=True)
        .distinct()
    )
    return sum(
        relay_account_changes(account_id=account_id, batch_size=batch_size)
        for account_id in list(behind)
    )


def relay_account_changes(*, account_id: int, batch_size: int = RELAY_BATCH) -> int:
    """Bring the account's open channels up to date with its change log.

    Per channel, the new entries that pass its filters (calendar_ids, only_managed, not its own
    application's writes) become one pending `change` notification whose changes_since is the
    earliest of them, in whole seconds; if an unclaimed pending one exists it absorbs them
    (keeping the earlier changes_since). The cursor moves in the same transaction. Channels
    locked by another relay or a dispatcher's claim are skipped and caught up next time.
    """
    created = 0
    while True:
        with transaction.atomic():
            channels = list(
                Channel.objects.open()
                .filter(account_id=account_id)
                .filter(last_relayed_sequence__lt=F("account__last_change_seq"))
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("pk")
            )
            if not channels:
                return created
            low = min(channel.last_relayed_sequence for channel in channels)
            entries = list(
                ChangeLogEntry.objects.filter(account_id=account_id, sequence__gt=low)
                .order_by("sequence")
                .values(*ENTRY_FIELDS)[:batch_size]
            )
            if not entries:
                return created
            high = entries[-1]["sequence"]
            # Only pending rows can absorb more changes: a row being sent may already have been
            # read by the receiver, so later changes need a notification of their own. Only
            # the channel's newest relayed row, whose range ends where the new one begins
            # (ranges chain); a replay's rows keep the ranges they were asked for.
            pending = {
                n.channel_id: n
                for n in Notification.objects.filter(
                    channel__in=channels,
                    type=Notification.Type.CHANGE,
                    status=Notification.Status.PENDING,
                    is_replay=False,
                    changes_through_sequence=F("channel__last_notified_sequence"),
                )
                .order_by("pk")
                .select_for_update(of=("self",))
            }
            new_ranges: list[ChangeRange] = []
            extended: list[Notification] = []
            for channel in channels:
                # The minimum time, not the first in sequence: a transaction that started
                # earlier may commit (and so be numbered) later.
                times = [
                    entry["changed_at"]
                    for entry in entries
                    if entry["sequence"] > channel.last_relayed_sequence
                    and matches_channel(channel, entry)
                ]
                if times:
                    since = whole_seconds(min(times))
                    existing = pending.get(channel.pk)
                    if existing is None:
                        new_ranges.append(
                            ChangeRange(channel, since, channel.last_notified_sequence, high)
                        )
                    else:
                        if existing.changes_since is None or since < existing.changes_since:
                            existing.changes_since = since
                        existing.changes_through_sequence = high
                        extended.append(existing)
                    # Ranges chain: the next notification starts where this one ends.
                    channel.last_notified_sequence = high
                channel.last_relayed_sequence = high
            created += len(create_change_notifications(new_ranges))
            Notification.objects.bulk_update(
                extended, ["changes_since", "changes_through_sequence"]
            )
            Channel.objects.bulk_update(
                channels, ["last_relayed_sequence", "last_notified_sequence"]
            )
        if len(entries) < batch_size:
            return created
