"""The poll task: claims checked when it starts, the account-wide unchanged check, the cost of
a poll that finds nothing, adaptive intervals and the calendar list's own refresh period."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY

from sync import services
from sync.models import CalendarSyncState, ProfileSyncState
from sync.providers import base, registry
from sync.providers.ics import IcsProvider
from sync.services import engine, polling
from sync.services.governor import lease_seconds
from sync.services.resources import current_window
from tests.factories import make_calendar, make_profile
from tests.sync.helpers import soon, vcalendar, vevent


class CountingProvider(IcsProvider):
    """A feed-like provider whose calendars change only when `changes` says so (one new event
    each time); it counts what it is asked. `unchanged_ids` is its account-wide answer (None:
    the default, none)."""

    key = "ics"
    fetches: list[str] = []
    checks: list[dict] = []
    listings: list[str] = []
    unchanged_ids: set[str] | None = None
    changes: dict[str, bool] = {}

    def __init__(self, creds, **options):
        self.creds = creds

    def describe_account(self):
        return base.ProviderAccount(provider_account_id=self.creds.url, profile_name="feed")

    def list_calendars(self):
        CountingProvider.listings.append(self.creds.url)
        return []

    def fetch_changes(self, calendar_id, cursor, **known):
        CountingProvider.fetches.append(calendar_id)
        if cursor and not CountingProvider.changes.get(calendar_id):
            return base.ChangeSet(cursor=cursor, unchanged=True)
        uid = f"event-{len(CountingProvider.fetches)}"
        event = base.ProviderResource(
            resource_id=uid, version="1", payload=vcalendar(vevent(uid, soon()))
        )
        return base.ChangeSet(cursor=f"cursor-{uid}", resources=[event])

    def unchanged_calendars(self, cursors):
        CountingProvider.checks.append(dict(cursors))
        if CountingProvider.unchanged_ids is None:
            return set()
        return {c for c in cursors if c in CountingProvider.unchanged_ids}


@pytest.fixture
def provider(monkeypatch):
    monkeypatch.setitem(registry.PROVIDERS, "ics", CountingProvider)
    CountingProvider.fetches, CountingProvider.checks, CountingProvider.listings = [], [], []
    CountingProvider.unchanged_ids, CountingProvider.changes = None, {}
    return CountingProvider


def _synced_calendars(count):
    """`count` calendars of one feed profile, synced once, due now."""
    profile = make_profile(
        provider="ics",
        provider_service="ics",
        credentials={"url": "https://feeds.example.com/a.ics"},
        is_initial_sync_required=False,
    )
    ProfileSyncState.objects.create(profile=profile, calendars_refreshed_at=timezone.now())
    now = timezone.now()
    calendars = [make_calendar(profile=profile) for _ in range(count)]
    CalendarSyncState.objects.bulk_create(
        [
            CalendarSyncState(
                calendar=c,
                cursor=f"cursor-{c.provider_calendar_id}",
                window_start=current_window(now).start.date(),
                last_synced_at=now - timedelta(minutes=5),
                next_poll_at=now - timedelta(seconds=1),
            )
            for c in calendars
        ]
    )
    return calendars


def _claim(calendars, now=None):
    """Claim them as the tick does; returns the claim's token."""
    claimed = polling.claim_due(now=now or timezone.now(), tasks=10, calendars=100)
    assert sorted(claimed.calendar_ids) == sorted(c.pk for c in calendars)
    return claimed.claim


def _poll(calendars, claim):
    return polling.poll_calendars(calendar_ids=[c.pk for c in calendars], claim=claim)


@pytest.mark.django_db
def test_poll_calendars_a_task_queued_twice_polls_once(provider):
    calendars = _synced_calendars(2)
    claim = _claim(calendars)

    first = _poll(calendars, claim)
    again = _poll(calendars, claim)

    assert [o.status for o in first] == ["unchanged", "unchanged"]
    assert again == [] and len(provider.fetches) == 2


@pytest.mark.django_db
def test_poll_calendars_a_task_whose_calendars_were_claimed_again_does_nothing(provider):
    [calendar] = _synced_calendars(1)
    stale = _claim([calendar])
    assert polling.claim_due(now=timezone.now(), tasks=10, calendars=100).groups == []
    # Its task waited past CLAIM_SECONDS (or was lost): the tick claims the calendar again.
    later = timezone.now() + timedelta(seconds=polling.CLAIM_SECONDS + 1)
    fresh = _claim([calendar], now=later)

    assert _poll([calendar], stale) == []
    assert [o.status for o in _poll([calendar], fresh)] == ["unchanged"]
    assert provider.fetches == [calendar.provider_calendar_id]


@pytest.mark.django_db
def test_poll_calendars_a_sync_that_ran_meanwhile_consumes_the_claim(provider):
    [calendar] = _synced_calendars(1)
    claim = _claim([calendar])
    services.sync_calendar(calendar_id=calendar.pk)  # a push notification's sync, say

    assert _poll([calendar], claim) == []
    assert len(provider.fetches) == 1


def _unchanged_syncs_counted() -> float:
    return REGISTRY.get_sample_value("calsync_syncs_total", {"outcome": "unchanged"}) or 0.0


@pytest.mark.django_db
def test_poll_calendars_records_what_the_provider_says_is_unchanged_without_a_fetch(provider):
    calendars = _synced_calendars(3)
    quiet, changed, leased = calendars
    provider.unchanged_ids = {quiet.provider_calendar_id, leased.provider_calendar_id}
    provider.changes = {changed.provider_calendar_id: True}
    claim = _claim(calendars)
    # Another sync holds one of the unchanged ones: its poll is skipped, not recorded.
    CalendarSyncState.objects.filter(calendar=leased).update(
        locked_until=timezone.now() + timedelta(minutes=5), lock_token="other"
    )

    counted_before = _unchanged_syncs_counted()
    outcomes = {o.calendar_id: o.status for o in _poll(calendars, claim)}

    assert outcomes == {quiet.pk: "unchanged", changed.pk: "synced", leased.pk: "skipped"}
    assert _unchanged_syncs_counted() == counted_before + 1  # /metrics sees it as a poll
    assert provider.fetches == [changed.provider_calendar_id]
    assert len(provider.checks) == 1 and len(provider.checks[0]) == 3
    state = CalendarSyncState.objects.get(calendar=quiet)
    assert state.poll_claim == "" and state.last_attempt_at is not None
    assert state.next_poll_at > timezone.now() + timedelta(minutes=4)


@pytest.mark.django_db
def test_poll_calendars_a_failed_check_leaves_each_calendar_to_its_sync(provider, monkeypatch):
    calendars = _synced_calendars(2)

    def refuse(self, cursors):
        raise base.TemporaryError("503")

    monkeypatch.setattr(CountingProvider, "unchanged_calendars", refuse)

    outcomes = _poll(calendars, _claim(calendars))

    assert [o.status for o in outcomes] == ["unchanged", "unchanged"]
    assert len(provider.fetches) == 2


@pytest.mark.django_db
def test_sync_calendar_a_poll_that_finds_nothing_costs_four_queries_at_most(provider):
    # Before: 9 queries and 3 UPDATEs (get_or_create, lease, load, profile and account locks,
    # lease renewal and row lock, save, release), and the calendar-list claim.
    [calendar] = _synced_calendars(1)

    with CaptureQueriesContext(connection) as queries:
        outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "unchanged"
    statements = [q["sql"] for q in queries.captured_queries]
    updates = [sql for sql in statements if sql.startswith("UPDATE")]
    # The lease, the result (with the release), the calendar list's claim.
    assert len(statements) <= 4 and len(updates) <= 3, statements
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert state.locked_until is None and state.lock_token == ""


@pytest.mark.django_db
def test_poll_calendars_three_unchanged_calendars_cost_a_few_queries_in_all(provider, monkeypatch):
    calendars = _synced_calendars(3)
    provider.unchanged_ids = {c.provider_calendar_id for c in calendars}
    claim = _claim(calendars)
    monkeypatch.setattr(polling, "queued_tasks", lambda: 10**6)  # no room: nothing claimed next

    with CaptureQueriesContext(connection) as queries:
        outcomes = _poll(calendars, claim)

    assert [o.status for o in outcomes] == ["unchanged"] * 3 and provider.fetches == []
    # Take the claim, load the claimed states, one UPDATE each, the calendar list's claim.
    assert len(queries.captured_queries) <= 6, [q["sql"] for q in queries.captured_queries]


@pytest.mark.django_db
def test_a_calendar_that_changed_recently_is_polled_sooner(provider, settings):
    settings.SYNC_POLL_INTERVAL_SECONDS, settings.SYNC_POLL_MIN_INTERVAL_SECONDS = 300, 60
    quiet, busy = _synced_calendars(2)
    provider.changes = {busy.provider_calendar_id: True}

    services.sync_calendar(calendar_id=busy.pk)
    services.sync_calendar(calendar_id=quiet.pk)

    def wait(calendar):
        state = CalendarSyncState.objects.get(calendar=calendar)
        return (state.next_poll_at - state.last_synced_at).total_seconds()

    assert 54 <= wait(busy) <= 66  # the minimum, with jitter
    assert 270 <= wait(quiet) <= 330
    # Twenty minutes after its last change it is back at the full interval, and never longer.
    CalendarSyncState.objects.filter(calendar=busy).update(
        last_changed_at=timezone.now() - timedelta(minutes=20)
    )
    provider.changes = {}
    services.sync_calendar(calendar_id=busy.pk)
    assert 270 <= wait(busy) <= 330
    CalendarSyncState.objects.filter(calendar=busy).update(
        last_changed_at=timezone.now() - timedelta(minutes=8)
    )
    services.sync_calendar(calendar_id=busy.pk)
    assert 108 <= wait(busy) <= 132  # a quarter of the 8 minutes


@pytest.mark.django_db
def test_poll_calendars_refreshes_the_calendar_list_once_per_its_period(provider, settings):
    settings.SYNC_CALENDAR_LIST_REFRESH_SECONDS = 900
    calendars = _synced_calendars(3)
    ProfileSyncState.objects.filter(profile=calendars[0].profile).update(
        calendars_refreshed_at=timezone.now() - timedelta(minutes=10)
    )
    _poll(calendars, _claim(calendars))
    assert provider.listings == []  # ten minutes old: not yet

    ProfileSyncState.objects.filter(profile=calendars[0].profile).update(
        calendars_refreshed_at=timezone.now() - timedelta(minutes=16)
    )
    CalendarSyncState.objects.update(next_poll_at=timezone.now())
    _poll(calendars, _claim(calendars))
    assert len(provider.listings) == 1  # once for the three calendars


@pytest.mark.django_db
def test_poll_calendars_the_first_poll_after_midnight_rolls_the_window_without_a_full_fetch(
    provider,
):
    calendars = _synced_calendars(2)
    today = current_window(timezone.now()).start.date()
    CalendarSyncState.objects.update(window_start=today - timedelta(days=1))

    outcomes = _poll(calendars, _claim(calendars))

    assert [(o.status, o.full) for o in outcomes] == [("unchanged", False)] * 2
    assert provider.checks == []  # a window to roll: each calendar goes through its sync
    assert set(CalendarSyncState.objects.values_list("window_start", flat=True)) == {today}


@pytest.mark.django_db
def test_a_parked_calendar_is_polled_again_when_its_profile_lists_it_again(provider, monkeypatch):
    [calendar] = _synced_calendars(1)
    calendar.is_deleted = True
    calendar.save()
    assert polling.claim_due(now=timezone.now(), tasks=10, calendars=100).parked == 1
    assert CalendarSyncState.objects.get(calendar=calendar).next_poll_at is None

    listed = [base.ProviderCalendar(provider_calendar_id=calendar.provider_calendar_id, name="B")]
    monkeypatch.setattr(CountingProvider, "list_calendars", lambda self: listed)
    services.refresh_profile_calendars(profile=calendar.profile)

    assert _claim([calendar])  # due again


@pytest.mark.django_db
def test_poll_calendars_past_its_time_budget_hands_the_rest_back_due_now(provider, settings):
    """A task the worker kills at Q_TIMEOUT would leave its calendars claimed for 10 minutes:
    past half the timeout it stops and hands the rest back for the next claim."""
    calendars = _synced_calendars(3)
    claim = _claim(calendars)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 0}  # the budget is spent at once

    assert _poll(calendars, claim) == []

    assert provider.fetches == []
    # Handed back, then claimed at once by the task's own top-up: a new claim, a new task.
    states = CalendarSyncState.objects.filter(calendar__in=calendars)
    assert claim not in {s.poll_claim for s in states}
    assert {s.poll_claim for s in states} != {""}


@pytest.mark.django_db
def test_poll_calendars_whose_worker_dies_are_polled_again_within_the_promise(
    provider, monkeypatch
):
    """The worker is killed in the middle of the run (here: the first sync never returns):
    the claim the run took lapses after the longest a task may run, not CLAIM_SECONDS
    (10 minutes, which also covers the wait in the queue and broke the 5-minute promise)."""
    calendars = _synced_calendars(2)
    claim = _claim(calendars)

    def killed(**kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(engine, "sync_calendar", killed)
    started = timezone.now()
    with pytest.raises(SystemExit):
        _poll(calendars, claim)

    lapse = started + timedelta(seconds=lease_seconds())
    assert lease_seconds() < 5 * 60 < polling.CLAIM_SECONDS
    assert polling.claim_due(now=lapse - timedelta(seconds=1), tasks=10, calendars=100).groups == []
    again = polling.claim_due(now=lapse + timedelta(seconds=60), tasks=10, calendars=100)
    assert sorted(again.calendar_ids) == sorted(c.pk for c in calendars)


@pytest.mark.django_db
@pytest.mark.parametrize(("queued", "claimed_next"), [(3, False), (2, True)])
def test_poll_calendars_refills_the_queue_only_once_it_is_half_empty(
    provider, monkeypatch, settings, django_capture_on_commit_callbacks, queued, claimed_next
):
    """A claim to add one task cost as much as the poll itself: a task tops the queue up only
    when it is down to half its depth."""
    settings.SYNC_POLL_QUEUE_DEPTH = 4
    polled, waiting = _synced_calendars(1), _synced_calendars(1)
    claim = _claim([*polled, *waiting])
    CalendarSyncState.objects.filter(calendar__in=waiting).update(
        next_poll_at=timezone.now() - timedelta(seconds=1), poll_claim=""
    )
    monkeypatch.setattr(polling, "queued_tasks", lambda: queued)
    queued_next = []
    monkeypatch.setattr(polling, "enqueue_poll", lambda ids, claim: queued_next.append(ids))

    with django_capture_on_commit_callbacks(execute=True):
        _poll(polled, claim)

    assert queued_next == ([[waiting[0].pk]] if claimed_next else [])
