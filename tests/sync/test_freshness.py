"""calendars.freshness through the sync app's reader: one rule for every caller."""

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Profile
from calendars import freshness
from sync.models import CalendarSyncState, ProviderSubscription
from tests.factories import make_calendar

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def _state(calendar, **fields):
    return CalendarSyncState.objects.create(calendar=calendar, **fields)


def test_recent_success_is_ok_and_polled(settings):
    settings.SYNC_POLL_INTERVAL_SECONDS = 300
    calendar = make_calendar()
    _state(calendar, last_synced_at=NOW - timedelta(seconds=899))
    fresh = freshness.freshness_of([calendar.pk], now=NOW)[calendar.pk]
    assert fresh == freshness.Freshness("ok", "poll", NOW - timedelta(seconds=899), 899)
    assert fresh.to_payload() == {
        "state": "ok",
        "source": "poll",
        "last_synced_at": "2026-12-03T11:45:01Z",
        "lag_seconds": 899,
    }


def test_three_intervals_without_success_is_lagging(settings):
    settings.SYNC_POLL_INTERVAL_SECONDS = 300
    calendar = make_calendar()
    _state(calendar, last_synced_at=NOW - timedelta(seconds=901))
    assert freshness.freshness_of([calendar.pk], now=NOW)[calendar.pk].state == "lagging"


def test_a_live_push_subscription_stretches_the_interval(settings):
    settings.SYNC_PUSH_POLL_INTERVAL_SECONDS = 3600
    calendar = make_calendar()
    _state(calendar, last_synced_at=NOW - timedelta(hours=2))
    ProviderSubscription.objects.create(
        calendar=calendar, channel_id="c1", secret="s", expires_at=NOW + timedelta(days=1)
    )
    fresh = freshness.freshness_of([calendar.pk], now=NOW)[calendar.pk]
    assert (fresh.state, fresh.source) == ("ok", "push")


def test_a_failed_last_attempt_is_failing_and_disconnected_wins():
    failing, gone = make_calendar(), make_calendar()
    _state(failing, last_synced_at=NOW, consecutive_failures=1)
    _state(gone, last_synced_at=NOW, consecutive_failures=2)
    Profile.objects.filter(pk=gone.profile_id).update(status=Profile.Status.DISCONNECTED)
    found = freshness.freshness_of([failing.pk, gone.pk], now=NOW)
    assert (found[failing.pk].state, found[gone.pk].state) == ("failing", "disconnected")


def test_never_synced_is_lagging_in_one_query(django_assert_num_queries):
    started, new = make_calendar(), make_calendar()
    _state(started)
    with django_assert_num_queries(1):
        found = freshness.freshness_of([started.pk, new.pk], now=NOW)
    assert found[started.pk] == found[new.pk] == freshness.NEVER_SYNCED
    assert not found[new.pk].is_trustworthy
