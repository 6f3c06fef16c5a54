from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule, Task

from calendars import freshness
from calendars.models import Calendar
from console import dashboard
from notifications.models import Channel, Notification
from sync.freshness import calendars_in_state
from tests.console import helpers
from tests.factories import make_calendar, make_profile

HOUR = timedelta(hours=1)


def figures_by_label(context) -> dict:
    return {f.label: f for section in context["sections"] for f in section.figures}


def listed_count(client, url: str) -> int:
    """How many rows the admin list behind a figure shows."""
    response = client.get(url)
    assert response.status_code == 200, url
    assert "e=1" not in response.get("Location", ""), url  # the filter was accepted
    return response.context["cl"].result_count


@pytest.fixture
def calendars_in_every_state(db):
    now = timezone.now()
    poll = settings.SYNC_POLL_INTERVAL_SECONDS
    push = settings.SYNC_PUSH_POLL_INTERVAL_SECONDS
    made = {}
    made["ok"] = make_calendar()
    helpers.sync_state(made["ok"], last_synced_at=now)
    made["failing"] = make_calendar()
    helpers.sync_state(made["failing"], last_synced_at=now, consecutive_failures=2)
    made["lagging"] = make_calendar()
    helpers.sync_state(made["lagging"], last_synced_at=now - timedelta(seconds=4 * poll))
    made["never_synced"] = make_calendar()
    helpers.sync_state(made["never_synced"])
    made["no_state_yet"] = make_calendar()
    # Under push the safety-net poll is longer: the same lag is fine...
    made["pushed_ok"] = make_calendar()
    helpers.sync_state(made["pushed_ok"], last_synced_at=now - timedelta(seconds=4 * poll))
    helpers.subscription(made["pushed_ok"], expires_in=24 * HOUR)
    # ...until it exceeds three push-poll intervals; an expired subscription is no push.
    made["pushed_lagging"] = make_calendar()
    helpers.sync_state(made["pushed_lagging"], last_synced_at=now - timedelta(seconds=4 * push))
    helpers.subscription(made["pushed_lagging"], expires_in=24 * HOUR)
    made["push_expired"] = make_calendar()
    helpers.sync_state(made["push_expired"], last_synced_at=now - timedelta(seconds=4 * poll))
    helpers.subscription(made["push_expired"], expires_in=-HOUR)
    # Not counted: deleted calendars and those of disconnected profiles (counted as such).
    deleted = make_calendar(is_deleted=True)
    helpers.sync_state(deleted, consecutive_failures=3)
    gone = make_calendar(profile=helpers.disconnected_profile())
    helpers.sync_state(gone, consecutive_failures=3)
    return made


def test_dashboard_calendar_counts_follow_the_freshness_rule(calendars_in_every_state):
    now = timezone.now()
    live = calendars_in_every_state
    expected = {
        freshness.FAILING: {live["failing"].pk},
        freshness.LAGGING: {live[name].pk for name in ("lagging", "never_synced", "no_state_yet")}
        | {live["pushed_lagging"].pk, live["push_expired"].pk},
    }
    found = freshness.freshness_of([c.pk for c in live.values()], now=now)
    for state, pks in expected.items():
        assert {pk for pk, fresh in found.items() if fresh.state == state} == pks
        assert set(calendars_in_state(state, now).values_list("pk", flat=True)) == pks
    figures = {f.label: f.count for f in dashboard.sync_figures(now)}
    assert figures == {"Calendars failing": 1, "Calendars lagging": 5}


def test_calendars_in_state_refuses_states_it_has_no_filter_for(db):
    with pytest.raises(ValueError):
        calendars_in_state(freshness.OK, timezone.now())


@pytest.fixture
def troubles(calendars_in_every_state):
    """One more row of each kind the dashboard counts, next to rows it must not count."""
    now = timezone.now()
    helpers.disconnected_profile()
    make_profile()  # connected
    healthy = make_calendar()
    helpers.subscription(healthy, expires_in=48 * HOUR)
    helpers.subscription(make_calendar(), expires_in=HOUR)  # due for renewal
    helpers.subscription(make_calendar(), expires_in=None)  # never confirmed: expired
    helpers.sync_state(make_calendar(), push_failures=2)

    writes_on = make_calendar()
    account = writes_on.profile.account
    for status in ("pending", "pending", "failed", "applied"):
        helpers.event_write(writes_on, status)

    failing = helpers.channel(account)
    helpers.notification(failing, status=Notification.Status.PENDING, attempts=3)
    given_up = helpers.channel(account)
    helpers.notification(given_up, status=Notification.Status.FAILED, finished_at=now - HOUR)
    old_failure = helpers.channel(account)
    helpers.notification(
        old_failure, status=Notification.Status.FAILED, finished_at=now - 48 * HOUR
    )
    delivered = helpers.channel(account)
    helpers.notification(delivered, status=Notification.Status.DELIVERED)
    helpers.notification(delivered, status=Notification.Status.PENDING)  # not yet tried
    helpers.channel(account, status=Channel.Status.CLOSED, closed_at=now - HOUR)
    helpers.channel(account, status=Channel.Status.CLOSED, closed_at=now - 48 * HOUR)


EXPECTED_COUNTS = {
    # the fixture's disconnected profile, the calendar fixture's one and this one
    "Disconnected profiles": 2,
    "Calendars failing": 1,
    "Calendars lagging": 5 + 5,  # the fixture's, and the five never synced made here
    "Provider push subscriptions expired": 2,  # push_expired, never confirmed
    "Provider push subscriptions due for renewal": 1,
    "Calendars whose push subscription failed": 1,
    "Integrator channels failing": 2,
    "Integrator channels closed in the last 24 h": 1,
    "Event writes pending": 2,
    "Event writes failed": 1,
    # pending: the retried one and the untried one; failed: both given up on
    "Notifications pending": 2,
    "Notifications failed": 2,
}


def test_dashboard_counts_each_kind_of_trouble(admin_client, troubles):
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    figures = figures_by_label(response.context)
    assert {label: f.count for label, f in figures.items()} == EXPECTED_COUNTS


def test_dashboard_figures_link_to_lists_of_exactly_their_rows(admin_client, troubles):
    figures = figures_by_label(admin_client.get("/admin/").context)
    for label, figure in figures.items():
        assert listed_count(admin_client, figure.url) == figure.count, label


def test_dashboard_shows_the_latest_disconnections_with_reason(admin_client, db):
    helpers.disconnected_profile(reason="invalid_grant from Google")
    content = admin_client.get("/admin/").content.decode()
    assert "invalid_grant from Google" in content


def test_dashboard_queries_do_not_grow_with_rows(
    admin_client, troubles, django_assert_max_num_queries
):
    for _ in range(3):
        helpers.disconnected_profile()
        helpers.sync_state(make_calendar(), consecutive_failures=1)
    with django_assert_max_num_queries(30):
        assert admin_client.get("/admin/").status_code == 200


def test_dashboard_shows_each_schedule_last_run_and_overdue_ones(admin_client, db):
    now = timezone.now()
    task = Task.objects.create(
        id="a" * 32,
        name="pump-run",
        func="notifications.tasks.pump_notifications",
        started=now - timedelta(seconds=5),
        stopped=now - timedelta(seconds=4),
        success=True,
    )
    Schedule.objects.create(
        name="notifications.pump",
        func="notifications.tasks.pump_notifications",
        schedule_type=Schedule.MINUTES,
        minutes=1,
        next_run=now + timedelta(seconds=50),
        task=task.id,
    )
    Schedule.objects.create(
        name="sync.tick",
        func="sync.tasks.enqueue_due_syncs",
        schedule_type=Schedule.MINUTES,
        minutes=1,
        next_run=now - timedelta(minutes=30),  # nobody ran it: the worker is down
    )
    runs = {run.name: run for run in dashboard.schedule_runs(now)}
    assert runs["notifications.pump"].last_success is True
    assert runs["notifications.pump"].last_run_at == task.stopped
    assert not runs["notifications.pump"].is_overdue
    assert runs["sync.tick"].last_run_at is None and runs["sync.tick"].is_overdue
    content = admin_client.get("/admin/").content.decode()
    assert "overdue: is the worker running?" in content


@pytest.mark.parametrize(
    "url",
    [
        "/admin/calendars/calendar/?health=bogus",
        "/admin/calendars/calendar/?health=",
        "/admin/notifications/channel/?trouble=%00",
        "/admin/sync/providersubscription/?push=nonsense",
        "/admin/sync/calendarsyncstate/?push_failures__gt=many",
    ],
)
def test_console_filters_take_bad_input_without_a_500(admin_client, db, url):
    assert admin_client.get(url).status_code in (200, 302, 400)


def test_calendar_list_shows_health_in_one_query_per_page(
    admin_client, calendars_in_every_state, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        response = admin_client.get("/admin/calendars/calendar/")
    content = response.content.decode()
    assert "failing (poll)" in content and "ok (push)" in content
    assert Calendar.objects.count() > 8
