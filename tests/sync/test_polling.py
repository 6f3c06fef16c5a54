"""Polling: the tick's claims, jitter, single-flight syncs, schedules declared in code."""

import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import Schedule

from accounts.models import Profile
from sync import services
from sync.models import CalendarSyncState
from sync.services import engine, polling
from tests.factories import make_calendar, make_profile


def _due_calendars(count, **profile_fields):
    profile = make_profile(**profile_fields)
    past = timezone.now() - timedelta(minutes=1)
    calendars = [make_calendar(profile=profile) for _ in range(count)]
    CalendarSyncState.objects.bulk_create(
        [CalendarSyncState(calendar=c, next_poll_at=past) for c in calendars]
    )
    return calendars


@pytest.mark.django_db
def test_enqueue_due_syncs_claims_due_calendars_once(django_capture_on_commit_callbacks):
    due = _due_calendars(3)
    later = make_calendar(profile=due[0].profile)
    CalendarSyncState.objects.create(
        calendar=later, next_poll_at=timezone.now() + timedelta(minutes=5)
    )
    [gone] = _due_calendars(1, status=Profile.Status.DISCONNECTED)
    enqueued = []

    with django_capture_on_commit_callbacks(execute=True):
        claimed = services.enqueue_due_syncs(enqueue=lambda ids, claim: enqueued.append(ids))

    assert sorted(claimed) == sorted(c.pk for c in due)
    assert enqueued == [claimed]  # one task for the profile's calendars
    assert services.enqueue_due_syncs(enqueue=enqueued.append) == []  # claimed: not due now
    # The disconnected profile's calendar is parked rather than polled (a relink resumes it).
    assert CalendarSyncState.objects.get(calendar=gone).next_poll_at is None


@pytest.mark.django_db
def test_enqueue_due_syncs_respects_the_batch_limit():
    _due_calendars(5)
    assert len(services.enqueue_due_syncs(limit=2, enqueue=lambda ids, claim: None)) == 2
    assert len(services.enqueue_due_syncs(limit=10, enqueue=lambda ids, claim: None)) == 3


@pytest.mark.django_db
def test_enqueue_due_syncs_claims_batch_after_batch_until_nothing_is_due(
    monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(polling, "TICK_BATCH", 2)
    calendars = [c for _ in range(4) for c in _due_calendars(2)]
    tasks = []

    with django_capture_on_commit_callbacks(execute=True):
        claimed = services.enqueue_due_syncs(enqueue=lambda ids, claim: tasks.append(ids))

    assert sorted(claimed) == sorted(c.pk for c in calendars)  # one run, four batches
    assert sorted(map(sorted, tasks)) == sorted(
        sorted(c.pk for c in calendars if c.profile_id == p)
        for p in {c.profile_id for c in calendars}
    )


@pytest.mark.django_db
def test_enqueue_due_syncs_claims_nothing_while_the_queue_is_full(monkeypatch, settings):
    settings.SYNC_POLL_QUEUE_DEPTH = 3
    first, second = _due_calendars(2), _due_calendars(2)
    monkeypatch.setattr(polling, "queued_tasks", lambda: 3)
    assert services.enqueue_due_syncs(enqueue=lambda ids, claim: None) == []
    # Room for one task: one profile's calendars are claimed, the other's wait.
    monkeypatch.setattr(polling, "queued_tasks", lambda: 2)
    claimed = polling.claim_and_enqueue(enqueue=lambda ids, claim: None, seconds=0)
    assert sorted(claimed) in (sorted(c.pk for c in first), sorted(c.pk for c in second))


@pytest.mark.django_db
def test_enqueue_due_syncs_polls_a_profiles_calendars_due_soon_with_the_due_one(
    django_capture_on_commit_callbacks,
):
    [due] = _due_calendars(1)
    soon = make_calendar(profile=due.profile)
    CalendarSyncState.objects.create(
        calendar=soon, next_poll_at=timezone.now() + timedelta(seconds=20)
    )
    far = make_calendar(profile=due.profile)
    CalendarSyncState.objects.create(
        calendar=far, next_poll_at=timezone.now() + timedelta(seconds=200)
    )
    tasks = []

    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_due_syncs(enqueue=lambda ids, claim: tasks.append(sorted(ids)))

    assert tasks == [sorted([due.pk, soon.pk])]


def test_poll_delay_spreads_calendars_with_jitter():
    delays = {engine._poll_delay(300).total_seconds() for _ in range(200)}
    assert min(delays) >= 270 and max(delays) <= 330 and len(delays) > 100


def _run_in_threads(count, target):
    barrier = threading.Barrier(count)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            results.append(target())
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_enqueue_due_syncs_two_workers_ticking_at_once_never_claim_the_same_calendar():
    calendars = _due_calendars(60)
    enqueued, lock = [], threading.Lock()

    def record(ids, claim):
        with lock:
            enqueued.extend(ids)

    results = _run_in_threads(2, lambda: services.enqueue_due_syncs(limit=40, enqueue=record))

    claimed = [pk for result in results for pk in result]
    assert len(claimed) == len(set(claimed)) == 60  # disjoint, and together complete
    assert sorted(enqueued) == sorted(c.pk for c in calendars)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sync_calendar_concurrent_runs_of_one_calendar_are_single_flight(radicale_server):
    server = radicale_server
    user = server.make_user()
    url = server.make_calendar(user)
    profile = services.connect_profile(
        account=make_profile().account,
        provider_key="caldav",
        credentials_dict={
            "url": server.base_url + "/",
            "username": user,
            "password": server.password(user),
        },
    )
    calendar = profile.calendars.get(provider_calendar_id=url)

    outcomes = _run_in_threads(4, lambda: services.sync_calendar(calendar_id=calendar.pk))

    statuses = sorted(o.status for o in outcomes)
    assert statuses.count("synced") == 1 and statuses.count("skipped") == 3
    assert CalendarSyncState.objects.get(calendar=calendar).locked_until is None


@pytest.mark.django_db
def test_sync_calendar_skips_a_calendar_whose_lease_is_held():
    [calendar] = _due_calendars(1)
    CalendarSyncState.objects.filter(calendar=calendar).update(
        locked_until=timezone.now() + timedelta(minutes=5), lock_token="other"
    )
    assert services.sync_calendar(calendar_id=calendar.pk).status == "skipped"
    # ...and a lapsed lease (crashed worker) is taken over.
    CalendarSyncState.objects.filter(calendar=calendar).update(
        locked_until=timezone.now() - timedelta(seconds=1)
    )
    assert services.sync_calendar(calendar_id=calendar.pk).status == "failed"  # no server


@pytest.mark.django_db
def test_setup_schedules_upserts_declared_schedules_by_name():
    call_command("setup_schedules", stdout=open("/dev/null", "w"))  # noqa: SIM115
    call_command("setup_schedules", stdout=open("/dev/null", "w"))  # noqa: SIM115
    schedule = Schedule.objects.get(name="sync.enqueue_due_syncs")
    assert schedule.func == "sync.tasks.enqueue_due_syncs" and schedule.minutes == 1
    assert Schedule.objects.filter(name="sync.enqueue_due_syncs").count() == 1
    sweep = Schedule.objects.get(name="notifications.sweep")
    assert sweep.func == "notifications.tasks.relay_and_dispatch" and sweep.minutes == 1


@pytest.mark.django_db
def test_setup_schedules_deletes_the_retired_notification_pump():
    # What databases set up by earlier versions hold: the pump held a worker 55 s a minute.
    Schedule.objects.create(
        name="notifications.pump",
        func="notifications.tasks.pump_notifications",
        schedule_type=Schedule.MINUTES,
        minutes=1,
        repeats=-1,
    )
    call_command("setup_schedules", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert not Schedule.objects.filter(name="notifications.pump").exists()
    assert not Schedule.objects.filter(func="notifications.tasks.pump_notifications").exists()


@pytest.mark.django_db
def test_hand_out_polls_claims_what_is_due_and_sleeps_until_the_next_is(
    monkeypatch, django_capture_on_commit_callbacks
):
    due = _due_calendars(1)
    later = make_calendar(profile=make_profile())  # another account's: not polled along
    CalendarSyncState.objects.create(
        calendar=later, next_poll_at=timezone.now() + timedelta(seconds=1)
    )
    queued = []
    monkeypatch.setattr(polling, "enqueue_poll", lambda ids, claim: queued.append(ids))

    with django_capture_on_commit_callbacks(execute=True):
        pause = polling.hand_out_polls()

    assert queued == [[due[0].pk]]
    assert 0.5 <= pause <= 1.0  # until `later` falls due
    CalendarSyncState.objects.filter(calendar=later).update(next_poll_at=None)
    assert polling.hand_out_polls() == polling.HAND_OUT_LONGEST_SLEEP  # nothing is due, ever


@pytest.mark.django_db
def test_hand_out_polls_with_a_full_queue_looks_again_soon(monkeypatch, settings):
    _due_calendars(1)
    monkeypatch.setattr(polling, "queued_tasks", lambda: settings.SYNC_POLL_QUEUE_DEPTH)

    assert polling.hand_out_polls() == polling.HAND_OUT_SHORTEST_SLEEP


@pytest.mark.django_db
def test_hand_out_polls_does_not_claim_or_spin_over_a_leased_due_calendar(monkeypatch):
    [busy] = _due_calendars(1)
    CalendarSyncState.objects.filter(calendar=busy).update(
        locked_until=timezone.now() + timedelta(minutes=10)  # a long sync holds it
    )
    monkeypatch.setattr(polling, "claim_and_enqueue", lambda **kwargs: pytest.fail("claimed"))

    assert polling.hand_out_polls() == polling.HAND_OUT_LONGEST_SLEEP


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_leaves_other_profiles_due_calendars_to_a_concurrent_claimer():
    """A claim with room for one task locks one profile's calendars, not a batch of 500: a
    second claimer meanwhile takes the next profile whole (it used to find every due row
    locked, and split profiles into one-calendar tasks from what was left)."""
    first, second = _due_calendars(3), _due_calendars(3)
    CalendarSyncState.objects.filter(calendar__in=second).update(
        next_poll_at=timezone.now() - timedelta(seconds=30)  # due after `first`
    )
    holding, done = threading.Event(), threading.Event()
    claims = {}

    def hold_first_claim():
        try:
            with transaction.atomic():
                claims["first"] = polling.claim_due(now=timezone.now(), tasks=1, calendars=500)
                holding.set()
                done.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_first_claim)
    holder.start()
    try:
        assert holding.wait(10)
        claims["second"] = polling.claim_due(now=timezone.now(), tasks=1, calendars=500)
    finally:
        done.set()
        holder.join(10)

    assert [sorted(g) for g in claims["first"].groups] == [sorted(c.pk for c in first)]
    assert [sorted(g) for g in claims["second"].groups] == [sorted(c.pk for c in second)]
