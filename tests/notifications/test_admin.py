"""Support staff see deliveries and attempts, retry failed deliveries and reopen channels."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.auth import get_user_model

from notifications.models import Channel, DeliveryAttempt, Notification
from tests.factories import make_account
from tests.notifications.conftest import Reply, deliver_all, make_integrator, open_channel

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_loopback")]


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("support", "s@example.com", "pw")
    client.force_login(user)
    return client


def test_admin_pages_show_channels_notifications_and_attempts(staff_client, receiver):
    receiver.script = lambda received: Reply(status=500, body=b"receiver says no")
    channel = open_channel(make_account(), make_integrator(), receiver.url())
    deliver_all()
    notification = Notification.objects.get()

    for url in (
        "/admin/notifications/channel/",
        f"/admin/notifications/channel/{channel.pk}/change/",
        "/admin/notifications/notification/?status__exact=pending",
        f"/admin/notifications/notification/{notification.pk}/change/",
        "/admin/notifications/deliveryattempt/",
    ):
        response = staff_client.get(url)
        assert response.status_code == 200, url
    page = staff_client.get(f"/admin/notifications/notification/{notification.pk}/change/")
    assert b"receiver says no" in page.content


def test_admin_reopen_and_retry_actions_deliver_after_a_closed_channel(staff_client, receiver):
    receiver.script = lambda received: Reply(status=410)
    channel = open_channel(make_account(), make_integrator(), receiver.url())
    deliver_all()
    channel.refresh_from_db()
    assert channel.status == Channel.Status.CLOSED
    notification = Notification.objects.get()
    assert notification.status == Notification.Status.FAILED

    receiver.script = lambda received: Reply()
    staff_client.post(
        "/admin/notifications/channel/",
        {"action": "reopen_channels", "_selected_action": [channel.pk]},
    )
    staff_client.post(
        "/admin/notifications/notification/",
        {"action": "retry_now", "_selected_action": [notification.pk]},
    )
    deliver_all()

    channel.refresh_from_db()
    notification.refresh_from_db()
    assert channel.status == Channel.Status.OPEN
    assert notification.status == Notification.Status.DELIVERED
    assert DeliveryAttempt.objects.filter(notification=notification).count() == 2
    assert len({r.delivery_id for r in receiver.requests}) == 1


def test_admin_attempt_log_is_read_only(staff_client, receiver):
    with time_machine.travel(datetime(2025, 1, 1, tzinfo=UTC), tick=True):
        open_channel(make_account(), make_integrator(), receiver.url())
        deliver_all()
    attempt = DeliveryAttempt.objects.get()
    response = staff_client.post(
        f"/admin/notifications/deliveryattempt/{attempt.pk}/change/", {"error": "edited"}
    )
    assert response.status_code == 403
    attempt.refresh_from_db()
    assert attempt.error == ""
