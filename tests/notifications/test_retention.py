"""Delivery history is purged after PUSH_RETENTION_DAYS; pending work never is."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from notifications import services
from notifications.models import DeliveryAttempt, Notification
from tests.factories import make_account, make_profile
from tests.notifications.conftest import deliver_all, make_integrator, open_channel

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_loopback")]


def test_purge_delivery_history_drops_finished_notifications_past_retention(receiver, settings):
    settings.PUSH_RETENTION_DAYS = 30
    account, app = make_account(), make_integrator()
    channel = open_channel(account, app, receiver.url())
    deliver_all()
    delivered = Notification.objects.get(channel=channel)
    assert delivered.status == Notification.Status.DELIVERED

    later = timezone.now() + timedelta(days=31)
    with time_machine.travel(later, tick=False):
        # A notification queued now is still pending: the purge leaves it alone.
        services.notify_profile_disconnected(make_profile(account=account))
        report = services.purge_delivery_history()

    assert (report.attempts, report.notifications) == (1, 1)
    assert not Notification.objects.filter(pk=delivered.pk).exists()
    assert not DeliveryAttempt.objects.filter(notification_id=delivered.pk).exists()
    [pending] = Notification.objects.filter(channel=channel)
    assert pending.status == Notification.Status.PENDING


def test_purge_delivery_history_keeps_recent_history(receiver):
    account, app = make_account(), make_integrator()
    open_channel(account, app, receiver.url())
    deliver_all()

    report = services.purge_delivery_history()

    assert (report.attempts, report.notifications) == (0, 0)
    assert Notification.objects.count() == 1 and DeliveryAttempt.objects.count() == 1
