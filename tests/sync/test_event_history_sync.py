"""A sync after the event history purge (docs/operations.md, "Event history"): the resource
map still names the purged events' resources, and re-reading them neither brings the events
back as created nor fails."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from calendars.models import ChangeLogEntry, Event
from calendars.services import history_horizon, purge_change_log, purge_event_history
from sync import services
from sync.models import SyncedResource
from tests.factories import make_account
from tests.sync.helpers import soon, vcalendar, vevent
from tests.sync.test_sync_ics import Feed

pytestmark = pytest.mark.django_db


@pytest.fixture
def feed(httpserver):
    return Feed(httpserver)


def test_ics_resync_after_the_purge_does_not_resurrect_history(feed, settings):
    settings.EVENT_HISTORY_RETENTION_DAYS = 400  # the first sync caches the old event
    settings.CHANGE_LOG_RETENTION_DAYS = 30
    old = soon(-200)
    weekly = vevent("weekly", soon(-300), extra="RRULE:FREQ=WEEKLY")
    feed.body = vcalendar(vevent("old", old), vevent("now", soon(2)), weekly)
    profile = services.connect_profile(
        account=make_account(), provider_key="ics", credentials_dict={"url": feed.url}
    )
    calendar = profile.calendars.get()
    services.sync_calendar(calendar_id=calendar.pk)
    assert Event.objects.filter(calendar=calendar, provider_key="old").exists()

    with time_machine.travel(timezone.now() + timedelta(days=31)):
        settings.EVENT_HISTORY_RETENTION_DAYS = 30
        purge_change_log()
        assert purge_event_history() >= 1
        assert not Event.objects.filter(calendar=calendar, provider_key="old").exists()
        assert SyncedResource.objects.filter(calendar=calendar).count() == 3
        head = profile.account.__class__.objects.get(pk=profile.account.pk).last_change_seq

        # The provider edits the old event and the series: both resources are read again.
        feed.body = vcalendar(
            vevent("old", old, summary="Renamed"),
            vevent("now", soon(2)),
            weekly.replace("SUMMARY:Meeting", "SUMMARY:Renamed series"),
        )
        services.sync_calendar(calendar_id=calendar.pk)
        horizon, window_end = history_horizon(), soon(201 - 31)

    assert not Event.objects.filter(calendar=calendar, provider_key="old").exists()
    # No instance of the series that ended by the horizon is back, and what the window roll
    # left behind as history is still there.
    instances = Event.objects.filter(calendar=calendar, provider_key="weekly")
    assert not instances.filter(end__lte=horizon).exists()
    assert instances.filter(end__gt=horizon, start__lt=horizon + timedelta(days=7)).exists()
    entries = ChangeLogEntry.objects.filter(account=profile.account, sequence__gt=head)
    assert not entries.filter(kind=ChangeLogEntry.Kind.EVENT_DELETED).exists()
    # Created: only the instances the window's end rolled over (31 days of a weekly series).
    created = Event.objects.filter(
        changes__in=entries.filter(kind=ChangeLogEntry.Kind.EVENT_CREATED)
    )
    assert created.exists()
    assert set(created.values_list("provider_key", flat=True)) == {"weekly"}
    assert not created.filter(start__lt=window_end - timedelta(days=1)).exists()
