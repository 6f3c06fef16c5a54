"""The relay: committed change-log entries become coalesced `change` notifications."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import transaction

from calendars.models import ChangeLogEntry, Event
from calendars.services import apply_provider_events, record_changes
from calendars.types import EventIdentity
from notifications import services
from notifications.models import Notification
from tests.factories import make_account, make_calendar, make_event_data, make_profile
from tests.notifications.conftest import deliver_all, make_integrator, open_channel

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_loopback")]

T0 = datetime(2025, 6, 2, 10, 15, 30, 700000, tzinfo=UTC)  # in the past: due now


@pytest.fixture
def world(receiver):
    account = make_account()
    profile = make_profile(account=account)
    cal1, cal2 = make_calendar(profile=profile), make_calendar(profile=profile)
    app = make_integrator()
    return account, cal1, cal2, app


def changes_for(channel) -> list[Notification]:
    return list(Notification.objects.filter(channel=channel, type=Notification.Type.CHANGE))


def test_provider_change_notifies_each_channel_once_with_changes_since(world, receiver):
    account, cal1, _, app = world
    first = open_channel(account, app, receiver.url("/a"))
    second = open_channel(account, make_integrator(name="Other"), receiver.url("/b"))
    deliver_all()  # verifications

    with time_machine.travel(T0, tick=False):
        apply_provider_events(calendar=cal1, upserts=[make_event_data()])
    assert services.relay_changes() == 2
    assert services.relay_changes() == 0  # cursors moved: nothing twice
    deliver_all()

    for channel in (first, second):
        [notification] = changes_for(channel)
        assert notification.changes_since == T0.replace(microsecond=0)
        assert notification.status == Notification.Status.DELIVERED
    bodies = [r.json for r in receiver.of_type("change")]
    assert len(bodies) == 2
    assert {b["notification"]["changes_since"] for b in bodies} == {"2025-06-02T10:15:30Z"}
    assert {b["channel"]["channel_id"] for b in bodies} == {first.public_id, second.public_id}


def test_calendar_ids_filter_only_matches_its_calendars(world, receiver):
    account, cal1, cal2, app = world
    on_cal1 = open_channel(account, app, receiver.url("/1"), calendar_ids=[cal1.public_id])
    on_cal2 = open_channel(account, app, receiver.url("/2"), calendar_ids=[cal2.public_id])
    unfiltered = open_channel(account, app, receiver.url("/all"))

    apply_provider_events(calendar=cal1, upserts=[make_event_data()])
    services.relay_changes()

    assert len(changes_for(on_cal1)) == 1
    assert changes_for(on_cal2) == []
    assert len(changes_for(unfiltered)) == 1


def test_only_managed_filter_matches_only_the_apps_managed_events(world, receiver):
    account, cal1, _, app = world
    managed_only = open_channel(account, app, receiver.url("/m"), only_managed=True)
    other_app = make_integrator(name="Other")
    apply_provider_events(calendar=cal1, upserts=[make_event_data(key="plain")])
    services.relay_changes()
    assert changes_for(managed_only) == []

    # The provider changed an event the app manages (e.g. the user moved it).
    event = Event.objects.get(provider_key="plain")
    Event.objects.filter(pk=event.pk).update(application=app, event_id="e1")
    with transaction.atomic():
        record_changes(account=account, changes=[("event_updated", cal1, event)])
    services.relay_changes()
    assert len(changes_for(managed_only)) == 1

    # A change to another application's managed event does not match.
    Notification.objects.filter(type="change").delete()
    other = make_event_data(key="theirs")
    apply_provider_events(calendar=cal1, upserts=[other])
    theirs = Event.objects.get(provider_key="theirs")
    Event.objects.filter(pk=theirs.pk).update(application=other_app, event_id="e2")
    with transaction.atomic():
        record_changes(account=account, changes=[("event_updated", cal1, theirs)])
    services.relay_changes()
    assert changes_for(managed_only) == []


def test_changes_made_by_the_channels_own_application_are_not_notified(world, receiver):
    account, cal1, _, app = world
    own = open_channel(account, app, receiver.url("/own"))
    other = open_channel(account, make_integrator(name="Other"), receiver.url("/other"))
    event_data = make_event_data()
    apply_provider_events(calendar=cal1, upserts=[event_data])
    services.relay_changes()
    Notification.objects.filter(type="change").delete()
    event = Event.objects.get()

    with transaction.atomic():
        record_changes(account=account, changes=[("event_updated", cal1, event)], application=app)
    services.relay_changes()

    assert changes_for(own) == []
    assert len(changes_for(other)) == 1


def test_burst_of_100_changes_produces_one_notification_with_the_earliest_time(world, receiver):
    account, cal1, _, app = world
    channel = open_channel(account, app, receiver.url())
    with time_machine.travel(T0, tick=False) as traveller:
        for i in range(100):
            apply_provider_events(calendar=cal1, upserts=[make_event_data(key=f"k{i}")])
            if i == 50:
                services.relay_changes()  # a relay mid-burst: the pending row absorbs the rest
            traveller.shift(timedelta(seconds=1))
    services.relay_changes()

    [notification] = changes_for(channel)
    assert notification.changes_since == T0.replace(microsecond=0)
    assert ChangeLogEntry.objects.filter(account=account).count() == 100
    deliver_all()
    assert len(receiver.of_type("change")) == 1


def test_rolled_back_change_produces_no_notification(world, receiver):
    account, cal1, _, app = world
    channel = open_channel(account, app, receiver.url())

    with pytest.raises(RuntimeError), transaction.atomic():
        apply_provider_events(calendar=cal1, upserts=[make_event_data()])
        raise RuntimeError("the surrounding work failed")
    services.relay_changes()

    assert changes_for(channel) == []
    assert not ChangeLogEntry.objects.filter(account=account).exists()
    deliver_all()
    assert receiver.of_type("change") == []


def test_channel_created_after_a_change_is_not_told_about_it(world, receiver):
    account, cal1, _, app = world
    apply_provider_events(calendar=cal1, upserts=[make_event_data()])
    channel = open_channel(account, app, receiver.url())

    services.relay_changes()

    assert changes_for(channel) == []


def test_change_after_a_notification_was_claimed_gets_its_own_notification(world, receiver):
    account, cal1, _, app = world
    channel = open_channel(account, app, receiver.url())
    deliver_all()
    apply_provider_events(calendar=cal1, upserts=[make_event_data(key="one")])
    services.relay_changes()
    [claim] = services.claim_due(limit=5)  # being sent: the receiver may read before change two

    apply_provider_events(calendar=cal1, upserts=[make_event_data(key="two")])
    services.relay_changes()

    notifications = changes_for(channel)
    assert len(notifications) == 2
    assert sorted(n.status for n in notifications) == ["pending", "sending"]
    assert claim.notification_id in {n.pk for n in notifications}


def test_deletion_and_update_are_changes_too(world, receiver):
    account, cal1, _, app = world
    data = make_event_data(key="x")
    apply_provider_events(calendar=cal1, upserts=[data])
    channel = open_channel(account, app, receiver.url())
    deliver_all()

    apply_provider_events(calendar=cal1, deletions=[EventIdentity("x")])
    services.relay_changes()

    assert len(changes_for(channel)) == 1


def test_unchanged_event_from_the_provider_is_not_a_change(world, receiver):
    account, cal1, _, app = world
    data = make_event_data(key="same")
    apply_provider_events(calendar=cal1, upserts=[data])
    channel = open_channel(account, app, receiver.url())

    apply_provider_events(calendar=cal1, upserts=[data])
    services.relay_changes()

    assert changes_for(channel) == []


def test_reopened_channel_hears_about_changes_missed_while_closed(world, receiver):
    account, cal1, _, app = world
    channel = open_channel(account, app, receiver.url())
    services.close_channel(channel=channel, reason="test")
    with time_machine.travel(T0, tick=False):
        apply_provider_events(calendar=cal1, upserts=[make_event_data()])
    services.relay_changes()
    assert changes_for(channel) == []

    services.reopen_channel(channel=channel)
    services.relay_changes()

    [notification] = changes_for(channel)
    assert notification.changes_since == T0.replace(microsecond=0)
