"""The account page: its sections, the timeline built from what each app records (merged,
newest first, paged), and the retention of the sync activity behind it."""

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from calendars.models import Calendar
from console import timeline
from notifications.models import DeliveryAttempt, Notification
from sync import services
from sync.models import SyncActivity
from sync.services.activity import purge_sync_activity
from tests.console import helpers
from tests.factories import make_access_token, make_account, make_application, make_calendar
from tests.sync.helpers import soon, vcalendar, vevent


def account_page(client, account, **params):
    url = reverse("admin:accounts_account_overview", args=[account.pk])
    return client.get(url, params)


@pytest.fixture
def synced_account(db, radicale_server):
    """A CalDAV account with one event, synced once through the real engine."""
    user = radicale_server.make_user()
    url = radicale_server.make_calendar(user)
    radicale_server.put_event(url, "standup", vcalendar(vevent("standup", soon(1))))
    profile = services.connect_profile(
        account=make_account(),
        provider_key="caldav",
        credentials_dict={
            "url": radicale_server.base_url + "/",
            "username": user,
            "password": radicale_server.password(user),
        },
    )
    calendar = Calendar.objects.get(profile=profile, provider_calendar_id=url)
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    return calendar


def test_a_sync_is_recorded_with_its_counts_and_shown_on_the_timeline(admin_client, synced_account):
    calendar = synced_account
    [run] = SyncActivity.objects.filter(calendar=calendar, kind=SyncActivity.Kind.SYNC)
    assert (run.outcome, run.is_full, run.created, run.deleted) == ("synced", True, 1, 0)
    # An unchanged poll is not news: it is not recorded.
    assert services.sync_calendar(calendar_id=calendar.pk).status == "unchanged"
    assert SyncActivity.objects.filter(calendar=calendar).count() == 1

    page = account_page(admin_client, calendar.profile.account).content.decode()
    assert "full: 1 created, 0 updated, 0 unchanged, 0 deleted" in page
    assert "ok (poll)" in page and calendar.public_id in page
    assert f"/connect/relink/{calendar.profile.public_id}/" in page


def test_a_failed_sync_is_recorded_with_its_error(synced_account, settings, radicale_server):
    calendar = synced_account
    settings.CONNECT_ALLOWED_ORIGINS = []  # the server is now an address we may not reach
    assert services.sync_calendar(calendar_id=calendar.pk).status == "failed"
    failed = SyncActivity.objects.filter(calendar=calendar, outcome="failed").get()
    assert failed.detail and failed.created is None
    [item] = [i for i in timeline.account_timeline(calendar.profile.account).items if i.is_problem]
    assert item.detail == failed.detail
    # The unchanged sync that ends the failures is recorded (the ones after it are not).
    settings.CONNECT_ALLOWED_ORIGINS = [radicale_server.base_url]
    for _ in range(2):
        assert services.sync_calendar(calendar_id=calendar.pk).status == "unchanged"
    outcomes = SyncActivity.objects.filter(calendar=calendar).order_by("pk")
    assert [row.outcome for row in outcomes] == ["synced", "failed", "unchanged"]


def test_timeline_merges_every_source_newest_first(db):
    calendar = make_calendar()
    account = calendar.profile.account
    start = timezone.now() - timedelta(hours=1)
    with time_machine.travel(start, tick=False):
        SyncActivity.objects.create(
            profile=calendar.profile, calendar=calendar, kind="sync", outcome="failed"
        )
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        helpers.event_write(calendar, "failed")
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        channel = helpers.channel(account)
        notification = helpers.notification(channel, status=Notification.Status.DELIVERED)
    DeliveryAttempt.objects.create(
        notification=notification,
        number=1,
        started_at=start + timedelta(minutes=3),
        status_code=200,
        is_success=True,
    )
    SyncActivity.objects.create(profile=calendar.profile, kind="token_refresh", outcome="refreshed")
    kinds = [item.kind for item in timeline.account_timeline(account).items]
    assert kinds == [
        "Token refresh",
        "Delivery attempt",
        "Notification (change)",
        "Event write (upsert)",
        "Sync",
    ]
    other = make_account()
    assert timeline.account_timeline(other).items == []


def test_timeline_pages_are_exact_and_bounded(db, monkeypatch, django_assert_max_num_queries):
    monkeypatch.setattr(timeline, "PAGE_SIZE", 3)
    calendar = make_calendar()
    for n in range(7):
        SyncActivity.objects.create(
            profile=calendar.profile, kind="token_refresh", outcome=f"refreshed-{n}"
        )
    account = calendar.profile.account
    pages = []
    for number in (1, 2, 3):
        with django_assert_max_num_queries(len(timeline.SOURCES)):
            pages.append(timeline.account_timeline(account, page=number))
    outcomes = [item.outcome for page in pages for item in page.items]
    assert outcomes == [f"refreshed-{n}" for n in reversed(range(7))]
    assert [page.has_next for page in pages] == [True, True, False]


@pytest.mark.parametrize("raw", ["abc", "-4", "0", "", None, "9" * 30])
def test_timeline_page_numbers_from_the_query_string_never_fail(raw):
    assert 1 <= timeline.parse_page(raw) <= timeline.MAX_PAGE


def test_account_page_shows_authorizations_and_channels_in_few_queries(
    admin_client, django_assert_max_num_queries
):
    calendar = make_calendar()
    account = calendar.profile.account
    integrator = make_application(name="Acme Scheduling")
    make_access_token(account=account, application=integrator, scope="read_events")
    helpers.channel(account, application=integrator)
    helpers.sync_state(calendar, consecutive_failures=2, last_error_class="TemporaryError")
    for _ in range(3):
        make_calendar(profile=calendar.profile)
    with django_assert_max_num_queries(25):
        response = account_page(admin_client, account, page="nonsense")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Acme Scheduling" in page and "read_events" in page
    assert "failing (poll)" in page and "TemporaryError ×2" in page
    assert account_page(admin_client, make_account(), page="-1").status_code == 200
    missing = reverse("admin:accounts_account_overview", args=[987654])
    assert admin_client.get(missing).status_code == 404


def test_account_list_links_to_the_account_page(admin_client, db):
    account = make_calendar().profile.account
    listing = admin_client.get(reverse("admin:accounts_account_changelist")).content.decode()
    assert reverse("admin:accounts_account_overview", args=[account.pk]) in listing


def test_sync_activity_is_purged_after_its_retention(db, settings):
    settings.SYNC_ACTIVITY_RETENTION_DAYS = 30
    profile = make_calendar().profile
    old = timezone.now() - timedelta(days=31)
    with time_machine.travel(old, tick=False):
        SyncActivity.objects.create(profile=profile, kind="sync", outcome="failed")
    kept = SyncActivity.objects.create(profile=profile, kind="sync", outcome="synced")
    assert purge_sync_activity().deleted == 1
    assert list(SyncActivity.objects.all()) == [kept]
    assert purge_sync_activity().deleted == 0
