"""The sync app's answer to calendars.freshness: each calendar's freshness from its sync
state, its profile's status and its push subscription, in one query for any number of
calendars (named by CALENDAR_FRESHNESS_READER)."""

from datetime import datetime

from django.conf import settings

from accounts.models import Profile
from calendars import freshness
from sync.models import CalendarSyncState


def read_freshness(calendar_pks: list[int], now: datetime) -> dict[int, freshness.Freshness]:
    rows = CalendarSyncState.objects.filter(calendar_id__in=calendar_pks).values_list(
        "calendar_id",
        "calendar__profile__status",
        "consecutive_failures",
        "last_synced_at",
        "calendar__provider_subscription__expires_at",
    )
    result = {}
    for calendar_pk, status, failures, last_synced_at, push_expires_at in rows:
        pushed = push_expires_at is not None and push_expires_at > now
        result[calendar_pk] = freshness.classify(
            connected=status == Profile.Status.CONNECTED,
            consecutive_failures=failures,
            last_synced_at=last_synced_at,
            # The safety-net poll runs at the longer interval while push is healthy.
            interval_seconds=(
                settings.SYNC_PUSH_POLL_INTERVAL_SECONDS
                if pushed
                else settings.SYNC_POLL_INTERVAL_SECONDS
            ),
            source=freshness.PUSH if pushed else freshness.POLL,
            now=now,
        )
    return result
