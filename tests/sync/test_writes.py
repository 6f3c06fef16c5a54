"""The write reconciler against a real Radicale server: managed-event writes recorded the way the
API records them reach the server once, in order, and survive crashes, conflicts and faults."""

from datetime import timedelta
from urllib.parse import urlsplit

import icalendar
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import Profile
from calendars.models import ChangeLogEntry, Event, ManagedEventWrite
from sync import services, tasks
from sync.models import SyncedResource
from sync.providers.base import RateLimited
from sync.providers.caldav import CalDAVProvider
from sync.schedules import SCHEDULES
from sync.services import engine, writes
from tests.factories import make_access_token, make_profile
from tests.sync.helpers import soon, vcalendar, vevent
from tests.sync.writes_helpers import connect, desired, server_resources, write

pytestmark = pytest.mark.django_db(transaction=False)

Status = ManagedEventWrite.Status


def _reconcile(*writes_, later: bool = False):
    now = timezone.now() + (timedelta(days=1) if later else timedelta(0))
    ids = [w.pk for w in writes_] if writes_ else None
    return services.reconcile_event_writes(write_ids=ids, now=now)


def _refresh(*objs):
    for obj in objs:
        obj.refresh_from_db()


@pytest.fixture
def setup(radicale_server):
    user, url, calendar = connect(radicale_server)
    return radicale_server, user, url, calendar


@pytest.fixture
def calls(monkeypatch):
    """Count the CalDAV adapter's write calls (they still run against Radicale)."""
    counted: list[str] = []
    for name in ("create_event", "update_event", "delete_event"):
        original = getattr(CalDAVProvider, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            counted.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(CalDAVProvider, name, wrapper)
    return counted


def test_reconcile_upsert_creates_the_event_at_the_server(setup):
    server, user, url, calendar = setup
    w = write(calendar, desired(soon(2), summary="Interview", color="#49BED8"))

    result = _reconcile(w)

    assert result.done == [w.pk]
    _refresh(w, w.event)
    assert w.status == Status.DONE and w.completed_at and w.attempts == 0
    [(href, ical)] = server_resources(server, user, url).items()
    assert href == urlsplit(url).path + f"{w.event.ical_uid}.ics"
    assert f"UID:{w.event.ical_uid}" in ical and "SUMMARY:Interview" in ical
    assert "DTSTART;TZID=Europe/Berlin:" in ical and "BEGIN:VTIMEZONE" in ical
    assert "TRIGGER:-PT15M" in ical and "COLOR:#49BED8" in ical
    event = w.event
    assert event.provider_resource == href and event.provider_etag and not event.is_deleted
    assert event.start == soon(2) and event.summary == "Interview"
    assert SyncedResource.objects.get(calendar=calendar, href=href).uids == [event.ical_uid]


def test_reconcile_a_new_event_costs_a_bounded_number_of_queries(
    setup, django_assert_max_num_queries
):
    """Claim, gate, one PUT, and recording the success in the cache and the change log. Each
    query is CPU in the one delivery process that reconciles every write (issue 19: 40 before,
    31 now); the cap catches an N+1 or a lost shortcut."""
    _server, _user, _url, calendar = setup
    w = write(calendar, desired(soon(2)))

    with django_assert_max_num_queries(31):
        assert writes.reconcile_event_writes(limit=1).done == [w.pk]


def test_reconcile_second_upsert_updates_the_same_resource(setup):
    server, user, url, calendar = setup
    first = write(calendar, desired(soon(2), summary="Interview"))
    _reconcile(first)
    second = write(calendar, desired(soon(3), summary="Moved"), event=first.event)

    assert _reconcile(second).done == [second.pk]

    [ical] = server_resources(server, user, url).values()
    assert "SUMMARY:Moved" in ical and "SEQUENCE:1" in ical
    _refresh(second.event)
    assert second.event.start == soon(3) and second.event.summary == "Moved"


def test_reconcile_delete_removes_the_event(setup):
    server, user, url, calendar = setup
    created = write(calendar, desired(soon(2)))
    _reconcile(created)
    deleted = write(calendar, event=created.event, operation="delete")

    assert _reconcile(deleted).done == [deleted.pk]

    assert server_resources(server, user, url) == {}
    _refresh(deleted.event)
    assert deleted.event.is_deleted
    assert not SyncedResource.objects.filter(calendar=calendar).exists()
    # Deleting again (already gone) is success.
    again = write(calendar, event=created.event, operation="delete")
    assert _reconcile(again).done == [again.pk]


def test_reconcile_last_write_wins_and_older_writes_are_superseded(setup, calls):
    server, user, url, calendar = setup
    w1 = write(calendar, desired(soon(2), summary="First"))
    w2 = write(calendar, desired(soon(2), summary="Second"), event=w1.event)
    w3 = write(calendar, desired(soon(2), summary="Third"), event=w1.event)

    # The newest is processed first and supersedes the older pending ones at once.
    assert _reconcile(w3).done == [w3.pk]
    _refresh(w1, w2, w3)
    assert (w1.status, w2.status, w3.status) == (Status.SUPERSEDED, Status.SUPERSEDED, Status.DONE)
    # An older write that is pending again (a worker held it, or support retried it) is never
    # applied after the newer one.
    ManagedEventWrite.objects.filter(pk=w1.pk).update(status=Status.PENDING)
    assert _reconcile(w1).superseded == [w1.pk]
    _refresh(w1)
    assert w1.status == Status.SUPERSEDED
    [ical] = server_resources(server, user, url).values()
    assert "SUMMARY:Third" in ical
    assert calls == ["create_event"]


def test_reconcile_rerun_of_an_applied_write_makes_no_provider_call(setup, calls):
    _server, _user, _url, calendar = setup
    w = write(calendar, desired(soon(2)))
    _reconcile(w)
    ManagedEventWrite.objects.filter(pk=w.pk).update(status=Status.PENDING)
    same = write(calendar, desired(soon(2)), event=w.event)

    result = _reconcile(same)

    assert result.done == [same.pk]
    assert calls == ["create_event"]


def test_reconcile_after_a_crash_between_put_and_commit_makes_one_resource(setup, monkeypatch):
    server, user, url, calendar = setup
    w = write(calendar, desired(soon(2), summary="Once"))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("worker killed after the PUT")

    with monkeypatch.context() as patch:
        patch.setattr(writes, "_record_success", crash)
        with pytest.raises(KeyboardInterrupt):
            _reconcile(w)
    _refresh(w)
    assert w.status == Status.PENDING and w.locked_until  # the lease is still held
    assert _reconcile(w).done == []  # ...until it lapses

    result = services.reconcile_event_writes(
        now=timezone.now() + timedelta(seconds=settings.EVENT_WRITE_LEASE_SECONDS + 1)
    )

    assert result.done == [w.pk]
    [(href, ical)] = server_resources(server, user, url).items()
    assert "SUMMARY:Once" in ical
    _refresh(w.event)
    assert w.event.provider_resource == href and w.event.provider_etag


def test_reconcile_conflict_records_the_server_edit_then_merges_our_write(setup):
    server, user, url, calendar = setup
    first = write(calendar, desired(soon(2), summary="Ours"))
    _reconcile(first)
    _refresh(first.event)
    event = first.event
    # Someone edits the event at the server: categories, an attendee and an X- property.
    edited = event.raw.replace(
        "END:VEVENT",
        "CATEGORIES:Edited\r\nATTENDEE;CN=Carol:mailto:carol@example.com\r\n"
        "X-CLIENT-NOTE:keep me\r\nEND:VEVENT",
    )
    server.put_event(url, event.ical_uid, edited, user=user)
    before = ChangeLogEntry.objects.filter(event=event).count()
    second = write(calendar, desired(soon(2), summary="Ours again"), event=event)

    assert _reconcile(second).done == [second.pk]

    [ical] = server_resources(server, user, url).values()
    assert "SUMMARY:Ours again" in ical and "X-CLIENT-NOTE:keep me" in ical
    assert "carol@example.com" in ical and "CATEGORIES:Edited" in ical
    # The server's edit was recorded (and notified) first, then our write.
    kinds = list(
        ChangeLogEntry.objects.filter(event=event)
        .order_by("sequence")
        .values_list("kind", flat=True)[before:]
    )
    assert kinds == ["event_updated", "event_updated"]
    _refresh(event)
    assert event.categories == ["Edited"] and event.summary == "Ours again"
    assert [a["email"] for a in event.attendees] == ["carol@example.com"]


def test_sync_before_reconciliation_neither_tombstones_nor_reverts(setup):
    server, user, url, calendar = setup
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    created = write(calendar, desired(soon(2), summary="New"))

    services.sync_calendar(calendar_id=calendar.pk, full=True)  # before the create reached it

    _refresh(created.event)
    assert not created.event.is_deleted and created.event.summary == "New"
    _reconcile(created)
    update = write(calendar, desired(soon(2), summary="Renamed"), event=created.event)

    services.sync_calendar(calendar_id=calendar.pk)  # sees our created resource

    _refresh(update.event)
    assert update.event.summary == "Renamed" and not update.event.is_deleted
    _reconcile(update)
    account = calendar.profile.account
    before = ChangeLogEntry.objects.filter(account=account).count()

    outcome = services.sync_calendar(calendar_id=calendar.pk)
    full = services.sync_calendar(calendar_id=calendar.pk, full=True)

    assert outcome.result.changed == 0 and full.result.changed == 0
    assert ChangeLogEntry.objects.filter(account=account).count() == before
    assert Event.objects.filter(calendar=calendar).count() == 1
    assert len(server_resources(server, user, url)) == 1


def test_reconcile_temporary_error_backs_off_then_succeeds(own_radicale_server):
    server = own_radicale_server
    user, url, calendar = connect(server, "alice")
    w = write(calendar, desired(soon(2)))
    server.stop()
    try:
        result = _reconcile(w)
    finally:
        server.restart()

    assert result.retrying == [w.pk]
    _refresh(w)
    assert w.status == Status.PENDING and w.attempts == 1
    assert w.last_error_class == "TemporaryError" and w.last_error
    delay = (w.next_attempt_at - timezone.now()).total_seconds()
    assert writes.BASE_DELAY_SECONDS * 0.7 < delay <= writes.BASE_DELAY_SECONDS * 1.2
    assert _reconcile(w).done == []  # not due yet
    assert _reconcile(w, later=True).done == [w.pk]
    assert len(server_resources(server, user, url)) == 1


def test_retry_delay_doubles_caps_and_honours_retry_after():
    delays = [writes.retry_delay(n).total_seconds() for n in range(1, 15)]
    assert 48 <= delays[0] <= 72 and 96 <= delays[1] <= 144
    assert max(delays) <= writes.MAX_DELAY_SECONDS * 1.2
    assert 900 <= writes.retry_delay(1, RateLimited(retry_after=900)).total_seconds() <= 1080
    assert 5 <= writes.retry_delay(6, RateLimited(retry_after=5)).total_seconds() <= 6


def test_reconcile_gives_up_after_max_attempts(own_radicale_server):
    server = own_radicale_server
    _user, _url, calendar = connect(server, "alice")
    w = write(calendar, desired(soon(2)))
    ManagedEventWrite.objects.filter(pk=w.pk).update(attempts=writes.MAX_ATTEMPTS - 1)
    server.stop()
    try:
        assert _reconcile(w).failed == [w.pk]
    finally:
        server.restart()
    _refresh(w)
    assert w.status == Status.FAILED and w.last_error_class == "TemporaryError"


def test_reconcile_auth_failure_disconnects_and_keeps_the_write_until_relink(
    setup, django_capture_on_commit_callbacks, monkeypatch
):
    server, user, url, calendar = setup
    profile = calendar.profile
    profile.credentials = {**profile.credentials, "password": "wrong"}
    profile.save()
    w = write(calendar, desired(soon(2)))

    with django_capture_on_commit_callbacks(execute=True):
        assert _reconcile(w).retrying == [w.pk]

    _refresh(w, profile)
    assert profile.status == Profile.Status.DISCONNECTED
    assert w.status == Status.PENDING and w.attempts == 0 and w.last_error_class == "AuthExpired"
    assert _reconcile(w, later=True).done == []  # not claimed while disconnected

    enqueued = []
    monkeypatch.setattr(
        engine, "enqueue_managed_event_writes", lambda *, write_ids: enqueued.append(write_ids)
    )
    monkeypatch.setattr(engine, "enqueue_sync", lambda pk: None)
    with django_capture_on_commit_callbacks(execute=True):
        services.connect_profile(
            account=profile.account,
            provider_key="caldav",
            credentials_dict={**profile.credentials, "password": server.password(user)},
        )
    _refresh(w)
    assert w.next_attempt_at <= timezone.now()
    assert enqueued == [[w.pk]]
    assert _reconcile(w).done == [w.pk]
    assert len(server_resources(server, user, url)) == 1


def test_reconcile_permanent_failure_fails_and_admin_retry_works(setup, admin_client):
    server, user, url, calendar = setup
    server.session(user).delete(url, timeout=30).raise_for_status()  # deleted at the server
    w = write(calendar, desired(soon(2)))

    assert _reconcile(w).failed == [w.pk]

    _refresh(w)
    assert w.status == Status.FAILED and w.last_error and w.completed_at
    assert w.last_error_class == "PermanentError"
    # Support staff recreate the calendar and retry the write from the admin.
    server.session(user).request("MKCALENDAR", url, timeout=30).raise_for_status()
    response = admin_client.post(
        reverse("admin:calendars_managedeventwrite_changelist"),
        {"action": "retry_now", "_selected_action": [w.pk]},
        follow=True,
    )
    assert response.status_code == 200 and b"1 write(s) queued again" in response.content
    _refresh(w)
    assert w.status == Status.PENDING and w.attempts == 0 and w.completed_at is None
    assert _reconcile(w).done == [w.pk]
    assert len(server_resources(server, user, url)) == 1


def test_admin_lists_writes(setup, admin_client):
    _server, _user, _url, calendar = setup
    write(calendar, desired(soon(2)))
    response = admin_client.get(
        reverse("admin:calendars_managedeventwrite_changelist") + "?status__exact=pending"
    )
    assert response.status_code == 200 and b"upsert" in response.content


def test_reconcile_participation_sets_partstat(setup):
    server, user, url, calendar = setup
    me = f"{user}@example.com"
    server.put_event(
        url,
        "invite",
        vcalendar(
            vevent(
                "invite",
                soon(4),
                summary="Invitation",
                extra="ORGANIZER:mailto:boss@example.com\n"
                f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{me}\n"
                "ATTENDEE;PARTSTAT=ACCEPTED:mailto:other@example.com",
            )
        ),
        user=user,
    )
    services.sync_calendar(calendar_id=calendar.pk)
    event = Event.objects.get(calendar=calendar, provider_key="invite")
    assert event.participation_status == "needs_action"
    w = write(
        calendar, {"participation_status": "accepted"}, event=event, operation="participation"
    )

    assert _reconcile(w).done == [w.pk]

    [ical] = server_resources(server, user, url).values()
    [vevent_] = icalendar.Calendar.from_ical(ical).walk("VEVENT")
    partstats = {str(a): str(a.params["PARTSTAT"]) for a in vevent_.get("ATTENDEE")}
    assert partstats == {f"mailto:{me}": "ACCEPTED", "mailto:other@example.com": "ACCEPTED"}
    _refresh(event)
    assert event.participation_status == "accepted"


def test_reconcile_skips_writes_not_due_and_reports_nothing(setup):
    _server, _user, _url, calendar = setup
    w = write(calendar, desired(soon(2)))
    ManagedEventWrite.objects.filter(pk=w.pk).update(
        next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    assert str(_reconcile(w)) == "0 done, 0 superseded, 0 failed, 0 to retry"


def test_reconcile_task_and_sweep_schedule(setup):
    _server, _user, _url, calendar = setup
    w = write(calendar, desired(soon(2)))
    assert tasks.reconcile_event_writes([w.pk]).startswith("1 done")
    assert tasks.reconcile_due_event_writes().startswith("0 done")
    names = {s["name"]: s["func"] for s in SCHEDULES}
    assert names["sync.reconcile_due_event_writes"] == "sync.tasks.reconcile_due_event_writes"


def test_reconcile_sweep_drains_a_backlog_larger_than_one_batch(setup):
    server, user, url, calendar = setup
    backlog = [write(calendar, desired(soon(2 + n), summary=f"Backlog {n}")) for n in range(3)]

    result = services.reconcile_due_event_writes(limit=1)

    assert sorted(result.done) == sorted(w.pk for w in backlog)
    assert len(server_resources(server, user, url)) == 3


def test_reconcile_writes_one_instance_of_a_series_alone(setup):
    server, user, url, calendar = setup
    server.put_event(
        url,
        "series",
        vcalendar(vevent("series", soon(1), extra="RRULE:FREQ=DAILY;COUNT=3")),
        user=user,
    )
    services.sync_calendar(calendar_id=calendar.pk)
    instance = Event.objects.filter(calendar=calendar, provider_key="series").first()
    w = write(calendar, desired(soon(1), summary="Only this one"), event=instance)
    assert _reconcile(w).done == [w.pk]
    [text] = server_resources(server, user, url).values()
    assert "RRULE:FREQ=DAILY;COUNT=3" in text and "RECURRENCE-ID" in text
    summaries = sorted(
        Event.objects.filter(calendar=calendar, provider_key="series").values_list(
            "summary", flat=True
        )
    )
    assert summaries == ["Meeting", "Meeting", "Only this one"]


def test_reconcile_delete_wins_over_an_edit_made_at_the_server(setup, calls):
    server, user, url, calendar = setup
    created = write(calendar, desired(soon(2)))
    _reconcile(created)
    _refresh(created.event)
    edited = created.event.raw.replace("END:VEVENT", "X-EDITED:yes\r\nEND:VEVENT")
    server.put_event(url, created.event.ical_uid, edited, user=user)
    deleted = write(calendar, event=created.event, operation="delete")

    assert _reconcile(deleted).done == [deleted.pk]

    assert server_resources(server, user, url) == {}
    assert calls == ["create_event", "delete_event", "delete_event"]  # 412, then the fresh etag


def test_reconcile_update_of_an_event_deleted_at_the_server_recreates_it(setup):
    server, user, url, calendar = setup
    created = write(calendar, desired(soon(2)))
    _reconcile(created)
    server.delete_event(url, created.event.ical_uid, user=user)
    update = write(calendar, desired(soon(2), summary="Still wanted"), event=created.event)

    assert _reconcile(update).done == [update.pk]

    [ical] = server_resources(server, user, url).values()
    assert "SUMMARY:Still wanted" in ical


def test_reconcile_rate_limited_honours_retry_after(setup, monkeypatch):
    _server, _user, _url, calendar = setup

    def throttled(self, *args, **kwargs):
        raise RateLimited("slow down", retry_after=900)

    monkeypatch.setattr(CalDAVProvider, "create_event", throttled)
    w = write(calendar, desired(soon(2)))

    assert _reconcile(w).retrying == [w.pk]

    _refresh(w)
    assert w.attempts == 1 and w.last_error_class == "RateLimited"
    assert (w.next_attempt_at - timezone.now()).total_seconds() > 890


def test_reconcile_logs_no_credentials(setup, caplog):
    server, user, _url, calendar = setup
    profile = calendar.profile
    profile.credentials = {**profile.credentials, "password": "wrong-Secret-123"}
    profile.save()
    w = write(calendar, desired(soon(2)))
    _reconcile(w)
    _refresh(w)
    assert "wrong-Secret-123" not in caplog.text and "wrong-Secret-123" not in w.last_error
    assert server.password(user) not in caplog.text


def test_reconcile_participation_for_the_users_other_address(setup, client):
    # One rule for "the end-user": an invitation sent to the address of the user's other
    # profile is accepted by the API (202) and applied at the provider, not failed there.
    server, user, url, calendar = setup
    account = calendar.profile.account
    make_profile(account=account, profile_name="ada.private@example.org")
    server.put_event(
        url,
        "private-invite",
        vcalendar(
            vevent(
                "private-invite",
                soon(5),
                summary="Dinner",
                extra="ORGANIZER:mailto:friend@example.com\n"
                "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:Ada.Private@example.org",
            )
        ),
        user=user,
    )
    services.sync_calendar(calendar_id=calendar.pk)
    event = Event.objects.get(calendar=calendar, provider_key="private-invite")
    token = make_access_token(account=account, scope="read_write change_participation_status")
    response = client.post(
        f"/v1/calendars/{calendar.public_id}/events/{event.event_uid}/participation_status",
        {"status": "accepted"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 202, response.content

    result = _reconcile()
    assert result.failed == [] and len(result.done) == 1

    [ical] = server_resources(server, user, url).values()
    [vevent_] = icalendar.Calendar.from_ical(ical).walk("VEVENT")
    [attendee] = [vevent_.get("ATTENDEE")]
    assert str(attendee.params["PARTSTAT"]) == "ACCEPTED"
