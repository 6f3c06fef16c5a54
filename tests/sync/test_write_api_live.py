"""The whole write path: the API records a write (202), the reconciler applies it to a real
Radicale server, and the next sync finds exactly what we wrote (no duplicate, no change)."""

import json
import threading
from datetime import UTC, datetime, timedelta

import icalendar
import pytest
from django.db import connection
from django.test import Client

from calendars.models import ChangeLogEntry, Event, ManagedEventWrite
from sync import services
from sync.models import SyncedResource
from sync.providers.base import PermanentError, ProviderResource
from sync.providers.caldav import CalDAVProvider
from tests.factories import make_access_token, make_application
from tests.sync.helpers import vcalendar, vevent
from tests.sync.writes_helpers import connect, server_resources

START = (datetime.now(UTC) + timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)


def _utc(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _body(event_id: str, **fields) -> dict:
    return {
        "event_id": event_id,
        "summary": "Interview",
        "description": "Second round",
        "start": _utc(START),
        "end": _utc(START + timedelta(hours=1)),
        "tzid": "Europe/Paris",
        **fields,
    }


class Api:
    def __init__(self, calendar, token: str):
        self.path = f"/v1/calendars/{calendar.public_id}/events"
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def call(self, method: str, body: dict, path: str | None = None):
        return getattr(Client(), method)(
            path or self.path, json.dumps(body), content_type="application/json", **self.headers
        )

    def events(self) -> list[dict]:
        response = Client().get(
            "/v1/events",
            {
                "tzid": "Etc/UTC",
                "include_managed": "true",
                "calendar_ids[]": [],
                "to": "2100-01-01",
            },
            **self.headers,
        )
        assert response.status_code == 200, response.content
        return response.json()["events"]


@pytest.fixture
def live(radicale_server, settings):
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""  # the test runs the reconciler itself
    user, url, calendar = connect(radicale_server)
    services.sync_calendar(calendar_id=calendar.pk)
    token = make_access_token(
        account=calendar.profile.account, application=make_application(), scope="read_write"
    )
    return radicale_server, user, url, calendar, Api(calendar, token)


def _only_vevent(resources: dict[str, str]) -> icalendar.Event:
    [text] = resources.values()
    [vevent] = icalendar.Calendar.from_ical(text).walk("VEVENT")
    return vevent


@pytest.mark.django_db
def test_write_path_upsert_update_delete_reach_radicale_once(live):
    server, user, url, calendar, api = live

    assert api.call("post", _body("booking-1")).status_code == 202
    # Read before reconciliation: the cache already shows the desired state (as Cronofy does).
    [cached] = api.events()
    assert cached["event_id"] == "booking-1" and cached["summary"] == "Interview"
    assert server_resources(server, user, url) == {}

    services.reconcile_event_writes()
    vevent = _only_vevent(server_resources(server, user, url))
    assert str(vevent["SUMMARY"]) == "Interview"
    assert vevent.decoded("DTSTART") == START

    # The next sync recognises our own write: nothing imported, nothing changed.
    before = ChangeLogEntry.objects.count()
    outcome = services.sync_calendar(calendar_id=calendar.pk)
    assert outcome.status == "synced" and outcome.result.changed == 0, outcome
    assert ChangeLogEntry.objects.count() == before
    assert Event.objects.filter(calendar=calendar, is_deleted=False).count() == 1

    assert api.call("post", _body("booking-1", summary="Interview (moved)")).status_code == 202
    services.reconcile_event_writes()
    assert str(_only_vevent(server_resources(server, user, url))["SUMMARY"]) == "Interview (moved)"

    assert api.call("delete", {"event_id": "booking-1"}).status_code == 202
    assert api.events() == []
    services.reconcile_event_writes()
    assert server_resources(server, user, url) == {}
    assert set(ManagedEventWrite.objects.values_list("status", flat=True)) == {"done"}


@pytest.mark.django_db
def test_write_path_edit_at_the_server_between_two_upserts_is_synced_not_lost(live):
    server, user, url, calendar, api = live
    api.call("post", _body("booking-2"))
    services.reconcile_event_writes()
    [href] = server_resources(server, user, url)
    text = server_resources(server, user, url)[href]
    # The end-user adds a note at the server (a property we do not manage).
    edited = text.replace("END:VEVENT", "X-USER-NOTE:bring the CV\r\nEND:VEVENT")
    session = server.session(user)
    assert session.put(server.base_url + href, data=edited.encode()).status_code in (200, 201, 204)

    api.call("post", _body("booking-2", summary="Interview, room 4"))
    services.reconcile_event_writes()

    vevent = _only_vevent(server_resources(server, user, url))
    assert str(vevent["SUMMARY"]) == "Interview, room 4"
    assert str(vevent["X-USER-NOTE"]) == "bring the CV"  # merged into, not overwritten


@pytest.mark.django_db
def test_write_path_bulk_delete_by_query_removes_everything_at_the_server(live):
    server, user, url, calendar, api = live
    for n in range(3):
        api.call(
            "post",
            _body(
                f"bulk-{n}",
                start=_utc(START + timedelta(hours=n)),
                end=_utc(START + timedelta(hours=n, minutes=30)),
            ),
        )
    services.reconcile_event_writes()
    assert len(server_resources(server, user, url)) == 3

    response = Client().delete("/v1/events?delete_all=True", **api.headers)
    assert response.status_code == 202
    services.reconcile_event_writes()
    assert server_resources(server, user, url) == {}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_write_path_twenty_concurrent_identical_upserts_make_one_event_at_the_server(live):
    server, user, url, calendar, api = live
    barrier = threading.Barrier(20)
    statuses = []

    def upsert():
        try:
            barrier.wait()
            statuses.append(api.call("post", _body("booking-race")).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=upsert) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [202] * 20
    assert Event.objects.filter(calendar=calendar, event_id="booking-race").count() == 1
    reconcilers = [
        threading.Thread(target=lambda: (services.reconcile_event_writes(), connection.close()))
        for _ in range(4)
    ]
    for thread in reconcilers:
        thread.start()
    for thread in reconcilers:
        thread.join()
    services.reconcile_event_writes()  # anything a racing reconciler deferred

    assert len(server_resources(server, user, url)) == 1
    assert not ManagedEventWrite.objects.filter(status="pending").exists()
    services.sync_calendar(calendar_id=calendar.pk)
    assert Event.objects.filter(calendar=calendar, is_deleted=False).count() == 1


@pytest.mark.django_db
def test_write_path_confirmation_is_attributed_to_the_writing_application(live):
    server, user, url, calendar, api = live
    api.call("post", _body("booking-3"))
    services.reconcile_event_writes()

    event = Event.objects.get(calendar=calendar, event_id="booking-3")
    entries = ChangeLogEntry.objects.filter(event=event)
    assert entries.exists()
    # The API's entry and the reconciler's confirmation both name the writer, so the relay
    # does not tell that application about its own write (README: Push notifications).
    assert set(entries.values_list("application_id", flat=True)) == {event.application_id}


@pytest.mark.django_db
def test_write_path_second_upsert_before_reconciliation_keeps_the_first_ones_changes(live):
    # Attendee invites are changes and omitted reminders/transparency mean "leave as is":
    # the second write must not silently drop what the first one asked for.
    server, user, url, calendar, api = live
    first = _body(
        "booking-4",
        attendees={"invite": [{"email": "bob@example.com", "display_name": "Bob"}]},
        reminders=[{"minutes": 10}],
        transparency="transparent",
    )
    api.call("post", first)
    api.call("post", _body("booking-4", summary="Interview (renamed)"))
    services.reconcile_event_writes()

    vevent = _only_vevent(server_resources(server, user, url))
    assert str(vevent["SUMMARY"]) == "Interview (renamed)"
    assert "bob@example.com" in str(vevent.get("ATTENDEE")).lower()
    assert str(vevent["TRANSP"]) == "TRANSPARENT"
    assert [alarm for alarm in vevent.subcomponents if alarm.name == "VALARM"]
    statuses = sorted(ManagedEventWrite.objects.values_list("status", flat=True))
    assert statuses == ["done", "superseded"]
    [cached] = api.events()
    assert cached["transparency"] == "transparent"


@pytest.mark.django_db
def test_write_path_external_update_then_participation_both_reach_the_server(live):
    server, user, url, calendar, api = live
    me = calendar.profile.account.email
    invitation = (
        "ORGANIZER:mailto:boss@example.com\r\n"
        f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{me}\r\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:boss@example.com"
    )
    start = START + timedelta(days=1)
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:invite-1\r\n"
        f"DTSTAMP:20260101T000000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{start + timedelta(hours=1):%Y%m%dT%H%M%SZ}\r\nSUMMARY:Quarterly review\r\n"
        f"{invitation}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    server.put_event(url, "invite-1", ics, user=user)
    services.sync_calendar(calendar_id=calendar.pk)
    event_uid = Event.objects.get(calendar=calendar, provider_key="invite-1").event_uid

    update = _body("", summary="Quarterly review (room 2)", start=_utc(start))
    update.pop("event_id")
    update.update(event_uid=event_uid, end=_utc(start + timedelta(hours=1)))
    assert api.call("post", update).status_code == 202
    answer = api.call(
        "post", {"status": "accepted"}, path=f"{api.path}/{event_uid}/participation_status"
    )
    assert answer.status_code == 202
    services.reconcile_event_writes()

    vevent = _only_vevent(server_resources(server, user, url))
    assert str(vevent["SUMMARY"]) == "Quarterly review (room 2)"
    mine = [a for a in vevent["ATTENDEE"] if me in str(a).lower()]
    assert mine and mine[0].params["PARTSTAT"] == "ACCEPTED"


@pytest.mark.django_db
def test_write_path_same_upsert_after_an_edit_at_the_server_is_applied_again(live):
    server, user, url, calendar, api = live
    api.call("post", _body("booking-5"))
    services.reconcile_event_writes()
    [(href, text)] = server_resources(server, user, url).items()
    renamed = text.replace("SUMMARY:Interview", "SUMMARY:Edited by the user")
    assert server.session(user).put(server.base_url + href, data=renamed.encode()).ok
    services.sync_calendar(calendar_id=calendar.pk)
    assert api.events()[0]["summary"] == "Edited by the user"

    assert api.call("post", _body("booking-5")).status_code == 202  # the very same body
    services.reconcile_event_writes()

    assert str(_only_vevent(server_resources(server, user, url))["SUMMARY"]) == "Interview"
    assert api.events()[0]["summary"] == "Interview"


@pytest.mark.django_db
def test_write_path_refused_delete_puts_the_event_back_in_the_cache(live, monkeypatch):
    server, user, url, calendar, api = live
    start = START + timedelta(days=2)
    server.put_event(url, "keep-me", vcalendar(vevent("keep-me", start)), user=user)
    services.sync_calendar(calendar_id=calendar.pk)
    event_uid = Event.objects.get(calendar=calendar, provider_key="keep-me").event_uid

    def refuse(self, href, **kwargs):
        raise PermanentError("403 Forbidden: the calendar owner does not allow deletes")

    monkeypatch.setattr(CalDAVProvider, "delete_event", refuse)
    assert api.call("delete", {"event_uid": event_uid}).status_code == 202
    assert api.events() == []  # shown deleted at once, as Cronofy does
    services.reconcile_event_writes()

    assert ManagedEventWrite.objects.get().status == "failed"
    assert [e["event_uid"] for e in api.events()] == [event_uid]  # the provider still has it


@pytest.mark.django_db
def test_write_path_refused_create_removes_the_event_from_the_cache(live, monkeypatch):
    server, user, url, calendar, api = live

    def refuse(self, calendar_id, payload, *, idempotency_key):
        raise PermanentError("403 Forbidden")

    monkeypatch.setattr(CalDAVProvider, "create_event", refuse)
    api.call("post", _body("never-created"))
    services.reconcile_event_writes()

    assert ManagedEventWrite.objects.get().status == "failed"
    assert api.events() == []
    assert server_resources(server, user, url) == {}


@pytest.mark.django_db
def test_write_path_sync_snapshot_older_than_a_write_does_not_undo_it(live, monkeypatch):
    server, user, url, calendar, api = live
    original = CalDAVProvider.fetch_changes

    def snapshot_then_write(self, *args, **kwargs):
        changes = original(self, *args, **kwargs)  # the provider as it was before the write
        api.call("post", _body("booking-6"))
        services.reconcile_event_writes()
        return changes

    monkeypatch.setattr(CalDAVProvider, "fetch_changes", snapshot_then_write)
    services.sync_calendar(calendar_id=calendar.pk, full=True)
    monkeypatch.setattr(CalDAVProvider, "fetch_changes", original)

    [event] = api.events()  # not tombstoned by the stale snapshot
    assert event["event_id"] == "booking-6"
    assert not ChangeLogEntry.objects.filter(kind="event_deleted").exists()
    services.sync_calendar(calendar_id=calendar.pk)
    assert [e["event_id"] for e in api.events()] == ["booking-6"]


@pytest.mark.django_db
def test_write_path_unreadable_provider_copy_leaves_the_resource_to_the_next_sync(
    live, monkeypatch
):
    server, user, url, calendar, api = live
    start = START + timedelta(days=3)
    server.put_event(url, "odd", vcalendar(vevent("odd", start)), user=user)
    services.sync_calendar(calendar_id=calendar.pk)
    event = Event.objects.get(calendar=calendar, provider_key="odd")

    def refuse(self, href, **kwargs):
        raise PermanentError("403 Forbidden")

    def unreadable(self, href, **kwargs):
        return ProviderResource(href, version='"odd"', payload="this is not iCalendar")

    monkeypatch.setattr(CalDAVProvider, "delete_event", refuse)
    monkeypatch.setattr(CalDAVProvider, "get_event", unreadable)
    api.call("delete", {"event_uid": event.event_uid})
    result = services.reconcile_event_writes()

    assert len(result.failed) == 1 and not result.retrying
    stored = SyncedResource.objects.get(calendar=calendar, href=event.provider_resource)
    assert stored.etag == ""  # the next sync reads it again instead of trusting it
