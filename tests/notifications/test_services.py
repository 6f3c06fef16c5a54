"""Notifications other services cause: profile disconnected, initial sync, GDPR; the queue kick."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ

from notifications import services
from notifications.models import Notification
from tests.factories import make_account, make_profile
from tests.notifications.conftest import deliver_all, make_integrator, open_channel

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_loopback")]


def test_notify_profile_disconnected_reaches_every_open_channel_of_the_account(receiver):
    profile = make_profile()
    a = open_channel(profile.account, make_integrator(), receiver.url("/a"))
    b = open_channel(profile.account, make_integrator(), receiver.url("/b"))
    closed = open_channel(profile.account, make_integrator(), receiver.url("/c"))
    services.close_channel(channel=closed)
    open_channel(make_account(), make_integrator(), receiver.url("/other-account"))
    deliver_all()
    receiver.requests.clear()

    assert services.notify_profile_disconnected(profile) == 2
    deliver_all()

    requests = receiver.of_type("profile_disconnected")
    assert sorted(r.path for r in requests) == ["/a", "/b"]
    assert {r.json["channel"]["channel_id"] for r in requests} == {a.public_id, b.public_id}
    assert requests[0].json["notification"] == {"type": "profile_disconnected"}


def test_notify_initial_sync_completed_skips_channels_created_after_completion(receiver):
    profile = make_profile()
    before = open_channel(profile.account, make_integrator(), receiver.url("/before"))
    completed_at = timezone.now()
    after = open_channel(profile.account, make_integrator(), receiver.url("/after"))
    after.created_at = completed_at + timedelta(seconds=1)
    after.save(update_fields=["created_at"])

    assert services.notify_profile_initial_sync_completed(profile, completed_at=completed_at) == 1
    deliver_all()

    [request] = receiver.of_type("profile_initial_sync_completed")
    assert request.path == "/before"
    assert request.json["channel"]["channel_id"] == before.public_id


def test_notify_gdpr_requested_queues_one_per_channel(receiver):
    account = make_account()
    open_channel(account, make_integrator(), receiver.url())
    assert services.notify_gdpr_requested(account) == 1
    deliver_all()
    assert receiver.of_type("gdpr_requested")[0].json["notification"] == {"type": "gdpr_requested"}


def test_notification_rolls_back_with_the_transaction_that_caused_it(receiver):
    profile = make_profile()
    open_channel(profile.account, make_integrator(), receiver.url())
    with pytest.raises(RuntimeError), transaction.atomic():
        services.notify_profile_disconnected(profile)
        raise RuntimeError("marking the profile disconnected failed")
    assert not Notification.objects.filter(type="profile_disconnected").exists()


def test_kick_dispatcher_enqueues_a_dispatch_task_after_commit(
    receiver, settings, django_capture_on_commit_callbacks
):
    settings.PUSH_ENQUEUE_ON_COMMIT = True
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        open_channel(make_account(), make_integrator(), receiver.url())
    assert len(callbacks) == 1
    assert OrmQ.objects.count() == 1


def test_retry_notification_resends_a_failed_one_with_the_same_delivery_id(receiver):
    account = make_account()
    channel = open_channel(account, make_integrator(), receiver.url())
    notification = Notification.objects.get(channel=channel)
    Notification.objects.filter(pk=notification.pk).update(
        status=Notification.Status.FAILED, first_attempt_at=timezone.now() - timedelta(days=2)
    )
    notification.refresh_from_db()

    assert services.retry_notification(notification=notification)
    deliver_all()

    notification.refresh_from_db()
    assert notification.status == Notification.Status.DELIVERED
    assert receiver.requests[0].delivery_id == notification.delivery_id


def test_retry_notification_needs_an_open_channel(receiver):
    channel = open_channel(make_account(), make_integrator(), receiver.url())
    notification = Notification.objects.get(channel=channel)
    services.close_channel(channel=channel)
    Notification.objects.filter(pk=notification.pk).update(status=Notification.Status.FAILED)
    notification.refresh_from_db()

    assert not services.retry_notification(notification=notification)
    services.reopen_channel(channel=channel)
    assert services.retry_notification(notification=notification)
