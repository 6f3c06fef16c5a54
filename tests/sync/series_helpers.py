"""Recurring managed events and conferencing through Cronofy's Python SDK: a client for a
connected calendar's account on the live test server, and the instances it reads back."""

from datetime import UTC, datetime, timedelta

import pycronofy

from calendars.models import Calendar, Event, ManagedEventWrite
from sync.providers.base import WriteContext
from sync.providers.registry import provider_class
from tests.factories import make_access_token, make_application

# A Monday two weeks ahead, inside the sync window.
_today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
MONDAY = _today + timedelta(days=14 - _today.weekday())


def sdk_for(calendar: Calendar, base_url: str) -> pycronofy.Client:
    application = make_application()
    client = pycronofy.Client(
        client_id=application.client_id,
        client_secret="integrator-secret",
        access_token=make_access_token(
            account=calendar.profile.account, application=application, scope="read_write"
        ),
    )
    client.request_handler.base_url = base_url
    return client


def standup(**fields) -> dict:
    return {
        "event_id": "standup",
        "summary": "Stand-up",
        "start": MONDAY,
        "end": MONDAY + timedelta(minutes=15),
        "tzid": "Europe/Berlin",
        **fields,
    }


def weekly(**rule) -> dict:
    return {"rules": [{"frequency": "weekly", "by_day": ["monday", "wednesday"], **rule}]}


def starts(*days: int) -> list[str]:
    return [(MONDAY + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in days]


def read_managed(client: pycronofy.Client) -> list[dict]:
    events = client.read_events(
        from_date=MONDAY.date() - timedelta(days=1),
        to_date=MONDAY.date() + timedelta(days=60),
        tzid="Etc/UTC",
        only_managed=True,
    )
    return sorted(events, key=lambda e: e["start"])


def assert_a_rerun_makes_no_call(calendar: Calendar) -> None:
    """The newest upsert, rendered again over what the provider answered, is no change: a
    retried or repeated write of the series reaches the provider no second time."""
    write = ManagedEventWrite.objects.filter(status="done", operation="upsert").latest("id")
    event = Event.objects.get(pk=write.event_id)
    adapter = provider_class(calendar.profile.provider)
    rendered = adapter.render_event(
        desired=write.desired,
        current=event.raw,
        context=WriteContext(
            uid=event.ical_uid or event.provider_key, instance_start=event.original_start
        ),
    )
    assert not rendered.changed


def read_external(client: pycronofy.Client, days: int = 10) -> list[dict]:
    """The calendar's events around MONDAY, by start (external ones included)."""
    events = client.read_events(
        from_date=MONDAY.date() - timedelta(days=1),
        to_date=MONDAY.date() + timedelta(days=days),
        tzid="Etc/UTC",
    )
    return sorted(events, key=lambda e: e["start"])


def writable_daily_instances(client: pycronofy.Client) -> tuple[str, str, str, str]:
    """The event_uids of the four daily instances of an external series from MONDAY, each of
    which the caller may update, delete and answer on its own."""
    instances = read_external(client)
    assert [e["start"] for e in instances] == starts(0, 1, 2, 3)
    every_write = {"update": True, "delete": True, "change_participation_status": True}
    assert all(e["options"] == every_write for e in instances)
    first, second, third, fourth = (e["event_uid"] for e in instances)
    return first, second, third, fourth


def assert_read_back_after_instance_writes(client, uids, moved: datetime) -> dict[str, dict]:
    """After write_one_instance_each and a sync: the same ids, the second moved, the third
    gone, the first declined, the fourth untouched. Returns the events by uid."""
    first, second, _third, fourth = uids
    after = {e["event_uid"]: e for e in read_external(client)}
    assert set(after) == {first, second, fourth}
    assert after[second]["start"] == moved.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert after[first]["participation_status"] == "declined"
    assert after[fourth]["participation_status"] == "needs_action"
    return after


def write_one_instance_each(client: pycronofy.Client, calendar: Calendar, uids) -> datetime:
    """Through the SDK: the second instance moved two hours later and renamed, the third
    deleted, the first declined. Returns the moved instance's new start."""
    first, second, third = uids
    moved = MONDAY + timedelta(days=1, hours=2)
    client.upsert_event(
        calendar.public_id,
        {
            "event_uid": second,
            "summary": "Review (later)",
            "start": moved,
            "end": moved + timedelta(hours=1),
        },
    )
    client.delete_external_event(calendar.public_id, third)
    client.change_participation_status(calendar.public_id, first, "declined")
    return moved


def assert_instance_writes_make_no_second_call(calendar: Calendar) -> None:
    """Each done write of one instance, rendered again over what the provider answered, is no
    change (a delete where the occurrence was a resource of its own is gone with it)."""
    adapter = provider_class(calendar.profile.provider)
    writes = ManagedEventWrite.objects.filter(status="done", event__original_start__isnull=False)
    assert writes.exists()
    for write in writes:
        event = Event.objects.get(pk=write.event_id)
        context = WriteContext(
            uid=event.ical_uid or event.provider_key,
            instance_start=event.original_start,
            self_emails=frozenset(calendar.profile.account.email_addresses()),
        )
        if write.operation == "participation":
            status = write.desired["participation_status"]
            rendered = adapter.render_participation(
                status=status, current=event.raw, context=context
            )
        elif write.operation == "delete":
            if adapter.instance_resources:
                continue
            rendered = adapter.render_event(
                desired={"delete_instance": True}, current=event.raw, context=context
            )
        else:
            rendered = adapter.render_event(
                desired=write.desired, current=event.raw, context=context
            )
        assert not rendered.changed, (write.operation, event.raw, rendered.payload)
