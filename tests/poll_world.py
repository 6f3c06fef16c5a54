"""Calendars to poll at scale, all synced once against the CalDAV stand-in
(tests/caldav_standin.py): for bench/poll_scale.py and the two-worker polling test."""

import random
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import Account, Profile
from calendars.models import Calendar
from sync.models import CalendarSyncState, ProfileSyncState
from sync.providers import base
from sync.providers.caldav import CalDAVProvider
from sync.services.resources import current_window
from tests.caldav_standin import PASSWORD, calendar_url, ctag, home_url, sync_token


def seed_synced_calendars(
    base_url: str,
    *,
    calendars: int,
    per_profile: int,
    interval: int,
    start: datetime,
    after_midnight: bool = False,
) -> None:
    """`calendars` calendars, `per_profile` to a CalDAV profile of the stand-in at `base_url`,
    each with the cursor its first sync stored, their profiles' polls due evenly over the
    interval from `start`; `after_midnight`: their window is yesterday's (the first poll must
    roll it)."""
    # The adapter's own cursor for one calendar; the others differ only by their ids.
    adapter = CalDAVProvider(
        base.CalDAVCredentials(url=home_url(base_url, 0), username="u0", password=PASSWORD)
    )
    template = adapter.fetch_changes(calendar_url(base_url, 0, 0), None).cursor
    assert ctag(0, 0) in template and sync_token(0, 0) in template, template
    window_start = current_window(start).start.date()
    if after_midnight:
        window_start -= timedelta(days=1)
    user = get_user_model().objects.create_user(username="poller")
    account = Account.objects.create(user=user, email="poller@example.com")
    with transaction.atomic():
        for p in range(-(-calendars // per_profile)):
            profile = Profile.objects.create(
                account=account,
                provider="caldav",
                provider_service="caldav",
                provider_account_id=home_url(base_url, p),
                profile_name=f"u{p}",
                credentials={
                    "url": home_url(base_url, p),
                    "username": f"u{p}",
                    "password": PASSWORD,
                },
                is_initial_sync_required=False,
            )
            ProfileSyncState.objects.create(
                profile=profile,
                calendars_refreshed_at=start - timedelta(seconds=random.uniform(0, interval)),
            )
            # As after a connect, which syncs a profile's calendars together: their polls are
            # due within the jitter (+-10%) of one another.
            due = random.uniform(0, interval)
            rows = Calendar.objects.bulk_create(
                [
                    Calendar(
                        profile=profile,
                        provider_calendar_id=calendar_url(base_url, p, i),
                        name=f"Calendar {i}",
                    )
                    for i in range(min(per_profile, calendars - p * per_profile))
                ]
            )
            CalendarSyncState.objects.bulk_create(
                [
                    CalendarSyncState(
                        calendar=row,
                        cursor=template.replace("p0c0", f"p{p}c{i}"),
                        window_start=window_start,
                        last_synced_at=start - timedelta(seconds=interval),
                        next_poll_at=start
                        + timedelta(seconds=due + random.uniform(-0.1, 0.1) * interval),
                    )
                    for i, row in enumerate(rows)
                ]
            )
