"""The sync engine against a real Radicale server: initial and incremental sync, every kind of
change, recurrence, faults (invalid token, server down, wrong password)."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.models import Profile
from calendars.models import Calendar, ChangeLogEntry, Event
from sync import services
from sync.models import CalendarSyncState
from sync.services import engine
from tests.factories import make_account
from tests.sync.helpers import soon, stamp, vcalendar, vevent

pytestmark = pytest.mark.django_db(transaction=False)

SERIES = "series-1"


def _connect(server, user="alice", account=None):
    return services.connect_profile(
        account=account or make_account(email=f"{user}@example.com"),
        provider_key="caldav",
        credentials_dict={
            "url": server.base_url + "/",
            "username": user,
            "password": server.password(user),
        },
    )


def _series(start, *, summary="Standup", extra=""):
    return vevent(SERIES, start, summary=summary, extra=f"RRULE:FREQ=WEEKLY;COUNT=4\n{extra}")


@pytest.fixture
def synced(radicale_server):
    """A new user's calendar with one single event and a 4-instance weekly series, synced."""
    server = radicale_server
    user = server.make_user()
    url = server.make_calendar(user)
    server.put_event(url, "single", vcalendar(vevent("single", soon(3), summary="Lunch")))
    server.put_event(url, SERIES, vcalendar(_series(soon(1))))
    profile = _connect(server, user)
    calendar = Calendar.objects.get(profile=profile, provider_calendar_id=url)
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.status == "synced" and outcome.full
    return server, url, calendar


def _changes_after(calendar, fn):
    before = ChangeLogEntry.objects.filter(account=calendar.profile.account).count()
    fn()
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    kinds = list(
        ChangeLogEntry.objects.filter(account=calendar.profile.account)
        .order_by("sequence")[before:]
        .values_list("kind", flat=True)
    )
    return outcome, kinds


def test_sync_calendar_initial_sync_caches_events_and_series_instances(synced):
    _server, _url, calendar = synced
    events = Event.objects.filter(calendar=calendar, is_deleted=False)
    assert events.filter(provider_key="single").get().summary == "Lunch"
    instances = events.filter(provider_key=SERIES).order_by("start")
    assert instances.count() == 4
    assert all(e.is_recurring and e.original_start == e.start for e in instances)
    assert [e.start for e in instances] == [soon(1) + timedelta(weeks=n) for n in range(4)]
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert state.cursor and state.last_synced_at and state.consecutive_failures == 0


def test_sync_calendar_without_change_writes_nothing(synced):
    _server, _url, calendar = synced
    updated = dict(Event.objects.filter(calendar=calendar).values_list("pk", "updated_at"))
    outcome, kinds = _changes_after(calendar, lambda: None)
    assert outcome.status == "unchanged" and not outcome.full
    assert kinds == []
    assert dict(Event.objects.filter(calendar=calendar).values_list("pk", "updated_at")) == updated


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("create", ["event_created"]),
        ("update", ["event_updated"]),
        ("move", ["event_updated"]),
        ("delete", ["event_deleted"]),
        ("series_edit", ["event_updated"] * 4),
        ("instance_override", ["event_updated"]),
        ("exdate", ["event_deleted"]),
    ],
)
def test_sync_calendar_incremental_picks_up_exactly_the_change(synced, change, expected):
    server, url, calendar = synced
    second = soon(1) + timedelta(weeks=1)
    actions = {
        "create": lambda: server.put_event(url, "new", vcalendar(vevent("new", soon(5)))),
        "update": lambda: server.put_event(
            url, "single", vcalendar(vevent("single", soon(3), summary="Lunch with Bob"))
        ),
        "move": lambda: server.put_event(
            url, "single", vcalendar(vevent("single", soon(4), summary="Lunch"))
        ),
        "delete": lambda: server.delete_event(url, "single"),
        "series_edit": lambda: server.put_event(
            url, SERIES, vcalendar(_series(soon(1), summary="Daily sync"))
        ),
        "instance_override": lambda: server.put_event(
            url,
            SERIES,
            vcalendar(
                _series(soon(1)),
                vevent(
                    SERIES,
                    second + timedelta(hours=2),
                    summary="Standup (moved)",
                    extra=f"RECURRENCE-ID:{stamp(second)}",
                ),
            ),
        ),
        "exdate": lambda: server.put_event(
            url, SERIES, vcalendar(_series(soon(1), extra=f"EXDATE:{stamp(second)}"))
        ),
    }
    outcome, kinds = _changes_after(calendar, actions[change])
    assert outcome.status == "synced" and not outcome.full
    assert kinds == expected
    live = Event.objects.filter(calendar=calendar, is_deleted=False)
    if change == "move":
        assert live.get(provider_key="single").start == soon(4)
    if change == "instance_override":
        moved = live.get(provider_key=SERIES, original_start=second)
        assert moved.start == second + timedelta(hours=2) and moved.summary == "Standup (moved)"
    if change == "exdate":
        gone = Event.objects.get(calendar=calendar, provider_key=SERIES, original_start=second)
        assert gone.is_deleted and live.filter(provider_key=SERIES).count() == 3
    # ...and the next sync finds nothing more to do.
    assert _changes_after(calendar, lambda: None)[1] == []


def test_sync_calendar_instance_ids_are_stable_across_syncs(synced):
    server, url, calendar = synced
    uids = set(Event.objects.filter(provider_key=SERIES).values_list("event_uid", flat=True))
    server.put_event(url, SERIES, vcalendar(_series(soon(1), summary="Renamed")))
    services.sync_calendar(calendar_id=calendar.pk)
    services.sync_calendar(calendar_id=calendar.pk, full=True)
    assert set(Event.objects.filter(provider_key=SERIES).values_list("event_uid", flat=True)) == (
        uids
    )


def test_sync_calendar_invalid_sync_token_resyncs_by_mark_and_sweep(synced):
    server, url, calendar = synced
    CalendarSyncState.objects.filter(calendar=calendar).update(
        cursor="http://radicale.org/ns/sync/not-a-token"  # a bare token, as stored before
    )
    server.delete_event(url, "single")
    outcome, kinds = _changes_after(calendar, lambda: None)
    assert outcome.status == "synced" and outcome.full
    assert kinds == ["event_deleted"]  # the unchanged series wrote nothing
    assert Event.objects.filter(calendar=calendar, is_deleted=False).count() == 4
    cursor = json.loads(CalendarSyncState.objects.get(calendar=calendar).cursor)
    assert cursor["token"].startswith("http://radicale") and cursor["ctag"]


def test_sync_calendar_full_resync_writes_nothing_when_nothing_changed(synced):
    _server, _url, calendar = synced
    outcome, kinds = _changes_after(calendar, lambda: None)
    outcome = services.sync_calendar(calendar_id=calendar.pk, full=True)
    assert outcome.full and outcome.result.changed == 0 and kinds == []


def test_sync_calendar_window_rolls_forward_daily(synced):
    server, url, calendar = synced
    weekly = vevent("open-ended", soon(-14), summary="Weekly", extra="RRULE:FREQ=WEEKLY")
    server.put_event(url, "open-ended", vcalendar(weekly))
    services.sync_calendar(calendar_id=calendar.pk)
    live = Event.objects.filter(calendar=calendar, provider_key="open-ended", is_deleted=False)
    count = live.count()
    with time_machine.travel(timezone.now() + timedelta(days=7), tick=True):
        outcome = services.sync_calendar(calendar_id=calendar.pk)
    # A new day re-expands every series, from the stored series: no full fetch.
    assert outcome.status == "synced" and not outcome.full
    assert outcome.result.created == 1 and outcome.result.deleted == 0
    assert live.count() == count + 1  # the instance that aged out is kept, not deleted


def test_sync_calendar_window_roll_needs_no_provider(own_radicale_server):
    server = own_radicale_server
    server.make_calendar("alice")
    profile = _connect(server)
    calendar = profile.calendars.get()
    url = calendar.provider_calendar_id
    server.put_event(
        url,
        "daily",
        vcalendar(vevent("daily", soon(-3), summary="Daily", extra="RRULE:FREQ=DAILY")),
    )
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    live = Event.objects.filter(calendar=calendar, provider_key="daily", is_deleted=False)
    count = live.count()

    server.stop()
    try:
        with time_machine.travel(timezone.now() + timedelta(days=2), tick=True):
            outcome = services.sync_calendar(calendar_id=calendar.pk)
            window_start = services.current_window().start.date()
    finally:
        server.restart()
    assert outcome.status == "failed" and "TemporaryError" in outcome.error  # provider down
    assert live.count() == count + 2  # ... and yet two more days of the series are there
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert state.window_start == window_start and state.cursor  # the cursor was kept


def test_sync_calendar_server_down_backs_off_and_loses_nothing(own_radicale_server, settings):
    server = own_radicale_server
    url = server.make_calendar("alice")
    server.put_event(url, "a", vcalendar(vevent("a", soon(2))))
    profile = _connect(server)
    calendar = Calendar.objects.get(profile=profile, provider_calendar_id=url)
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    cursor = CalendarSyncState.objects.get(calendar=calendar).cursor

    server.stop()
    try:
        before = timezone.now()
        outcomes = [services.sync_calendar(calendar_id=calendar.pk) for _ in range(2)]
    finally:
        server.restart()
    assert [o.status for o in outcomes] == ["failed", "failed"]
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert state.last_error_class == "TemporaryError" and state.consecutive_failures == 2
    # Exponential backoff: the second failure waits about twice the poll interval.
    interval = settings.SYNC_POLL_INTERVAL_SECONDS
    assert state.next_poll_at >= before + timedelta(seconds=2 * interval * 0.9)
    assert state.cursor == cursor
    assert Profile.objects.get(pk=profile.pk).is_connected
    assert Event.objects.filter(calendar=calendar, is_deleted=False).count() == 1

    server.put_event(url, "b", vcalendar(vevent("b", soon(3))))
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.status == "synced" and not outcome.full and outcome.result.created == 1
    state.refresh_from_db()
    assert state.consecutive_failures == 0 and state.last_error == ""


def test_sync_calendar_wrong_password_disconnects_profile(own_radicale_server):
    server = own_radicale_server
    server.make_calendar("bob")
    profile = _connect(server, "bob")
    calendar = profile.calendars.get()
    profile.credentials = {**profile.credentials, "password": "changed-at-the-provider"}
    profile.save()

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "failed" and "AuthExpired" in outcome.error
    profile.refresh_from_db()
    assert profile.status == Profile.Status.DISCONNECTED and profile.disconnected_reason
    assert services.enqueue_due_syncs(enqueue=lambda ids, claim: None) == []  # polling stopped
    # Relinking with the right password reconnects the same profile and resumes polling.
    again = _connect(server, "bob", account=profile.account)
    assert again.pk == profile.pk and again.is_connected
    assert services.enqueue_due_syncs(enqueue=lambda ids, claim: None) == [calendar.pk]


def test_connect_profile_creates_profile_calendars_and_first_sync_clears_flag(
    own_radicale_server, django_capture_on_commit_callbacks, monkeypatch
):
    server = own_radicale_server
    work = server.make_calendar("bob", name="Work")
    server.make_calendar("bob", name="Home")
    enqueued = []
    monkeypatch.setattr(engine, "enqueue_sync", enqueued.append)
    completed = []
    monkeypatch.setattr(engine, "on_initial_sync_completed", completed.append)

    with django_capture_on_commit_callbacks(execute=True):
        profile = _connect(server, "bob")

    assert profile.provider == "caldav" and profile.is_initial_sync_required
    assert profile.provider_account_id.endswith("/bob/")
    calendars = {c.name: c for c in profile.calendars.all()}
    assert set(calendars) == {"Work", "Home"} and calendars["Work"].provider_calendar_id == work
    assert sorted(enqueued) == sorted(c.pk for c in calendars.values())
    with django_capture_on_commit_callbacks(execute=True):
        services.sync_calendar(calendar_id=calendars["Work"].pk)
    assert Profile.objects.get(pk=profile.pk).is_initial_sync_required and not completed
    with django_capture_on_commit_callbacks(execute=True):
        services.sync_calendar(calendar_id=calendars["Home"].pk)
    assert not Profile.objects.get(pk=profile.pk).is_initial_sync_required
    assert [p.pk for p in completed] == [profile.pk]


def test_refresh_profile_calendars_adds_new_and_marks_removed(own_radicale_server):
    server = own_radicale_server
    old = server.make_calendar("bob", name="Old")
    profile = _connect(server, "bob")
    server.session("bob").delete(old, timeout=30).raise_for_status()
    server.make_calendar("bob", name="New")

    services.refresh_profile_calendars(profile=profile)

    by_name = {c.name: c for c in Calendar.objects.filter(profile=profile)}
    assert by_name["Old"].is_deleted and not by_name["New"].is_deleted
    assert CalendarSyncState.objects.filter(calendar=by_name["New"]).exists()
    kinds = set(
        ChangeLogEntry.objects.filter(account=profile.account).values_list("kind", flat=True)
    )
    assert {"calendar_created", "calendar_deleted"} <= kinds


def test_sync_calendar_deleted_series_takes_its_past_instances(synced):
    # Instances that aged out of the window are kept while their series lives on; when the
    # series itself is deleted at the provider, they are tombstoned with it.
    server, url, calendar = synced
    server.put_event(
        url,
        "daily",
        vcalendar(vevent("daily", soon(-3), summary="Daily", extra="RRULE:FREQ=DAILY")),
    )
    services.sync_calendar(calendar_id=calendar.pk)
    series = Event.objects.filter(calendar=calendar, provider_key="daily")
    with time_machine.travel(timezone.now() + timedelta(days=45), tick=True):
        services.sync_calendar(calendar_id=calendar.pk)
        window_start = services.current_window().start
        assert series.filter(is_deleted=False, original_start__lt=window_start).exists()
        server.delete_event(url, "daily")
        outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.status == "synced"
    assert not series.filter(is_deleted=False).exists()
