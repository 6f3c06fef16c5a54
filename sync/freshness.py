"""The sync app's answer to calendars.freshness: each calendar's freshness from its sync
state, its profile's status and its push subscription, in one query for any number of
calendars (named by CALENDAR_FRESHNESS_READER)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet

from accounts.models import Profile
from calendars import freshness
from calendars.models import Calendar
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


def _stale_before(now: datetime, interval_seconds: int) -> datetime:
    return now - timedelta(seconds=freshness.LAGGING_AFTER_INTERVALS * interval_seconds)


def calendars_in_state(state: str, now: datetime) -> QuerySet[Calendar]:
    """The live calendars of connected profiles whose freshness is `state` (failing or
    lagging), as a queryset: classify's rule written as a filter, for counts and list filters
    over every calendar, where reading each one's freshness would not scale. Built from the
    same constants and settings as read_freshness; tests check that the two agree."""
    live = Calendar.objects.filter(is_deleted=False, profile__status=Profile.Status.CONNECTED)
    failing = Q(sync_state__consecutive_failures__gt=0)
    if state == freshness.FAILING:
        return live.filter(failing)
    if state != freshness.LAGGING:
        raise ValueError(f"no calendar filter for freshness {state!r}")
    pushed = Q(provider_subscription__expires_at__gt=now)
    stale = (
        Q(sync_state__isnull=True)
        | Q(sync_state__last_synced_at__isnull=True)
        | (
            pushed
            & Q(
                sync_state__last_synced_at__lt=_stale_before(
                    now, settings.SYNC_PUSH_POLL_INTERVAL_SECONDS
                )
            )
        )
        | (
            ~pushed
            & Q(
                sync_state__last_synced_at__lt=_stale_before(
                    now, settings.SYNC_POLL_INTERVAL_SECONDS
                )
            )
        )
    )
    return live.exclude(failing).filter(stale)
