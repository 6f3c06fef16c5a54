"""Delivery from the outbox to a real receiver on 127.0.0.1: signing, retries, the 24 h budget."""

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta

import pycronofy
import pytest
import time_machine
from django.utils import timezone

from notifications import services, signing
from notifications.models import Channel, DeliveryAttempt, Notification
from notifications.services import dispatch
from notifications.transport import PostResult
from tests.factories import make_account
from tests.notifications.conftest import (
    SECRETS,
    Reply,
    add_secret,
    deliver_all,
    make_integrator,
    open_channel,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_loopback")]


def test_verification_is_delivered_with_the_cronofy_body_and_headers(receiver):
    account, app = make_account(), make_integrator()
    channel = open_channel(account, app, receiver.url("/hook?token=abc"))

    stats = deliver_all()

    assert stats.delivered == 1
    [request] = receiver.requests
    assert request.path == "/hook?token=abc"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.json == {
        "notification": {"type": "verification"},
        "channel": {
            "channel_id": channel.public_id,
            "callback_url": receiver.url("/hook?token=abc"),
            "filters": {},
        },
    }
    notification = Notification.objects.get(channel=channel)
    assert notification.status == Notification.Status.DELIVERED
    assert request.delivery_id == notification.delivery_id
    [attempt] = DeliveryAttempt.objects.filter(notification=notification)
    assert (attempt.number, attempt.status_code, attempt.is_success) == (1, 200, True)
    assert attempt.remote_ip == "127.0.0.1"
    assert attempt.response_body == "ok"


def test_hmac_header_verifies_with_pycronofy_for_each_of_two_active_secrets(receiver):
    account = make_account()
    app = make_integrator(secrets=SECRETS)
    add_secret(app, "retired-secret", is_active=False)
    open_channel(account, app, receiver.url())

    deliver_all()

    [request] = receiver.requests
    header = request.headers[signing.HEADER]
    assert len(header.split(",")) == 2
    body = request.body.decode()
    for secret in SECRETS:
        client = pycronofy.Client(client_id=app.client_id, client_secret=secret)
        assert client.hmac_valid(header, body)
    retired = pycronofy.Client(client_id=app.client_id, client_secret="retired-secret")
    assert not retired.hmac_valid(header, body)
    tampered = body.replace("verification", "verificatioN")
    assert not pycronofy.Client(client_secret=SECRETS[0]).hmac_valid(header, tampered)


def _standard_webhooks_valid(headers: dict, body: bytes, secret: str) -> bool:
    """An independent verifier (stdlib only), as a Standard Webhooks receiver does it."""
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest())
    return any(
        hmac.compare_digest(candidate.removeprefix("v1,").encode(), expected)
        for candidate in headers["webhook-signature"].split(" ")
        if candidate.startswith("v1,")
    )


def test_standard_webhooks_headers_verify_for_each_active_secret_and_not_when_tampered(receiver):
    account = make_account()
    app = make_integrator(secrets=SECRETS)
    add_secret(app, "retired-secret", is_active=False)
    open_channel(account, app, receiver.url())

    deliver_all()

    [request] = receiver.requests
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers["webhook-id"] == request.delivery_id
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in SECRETS:
        assert _standard_webhooks_valid(headers, request.body, secret)
    assert not _standard_webhooks_valid(headers, request.body, "retired-secret")
    flipped = bytes([request.body[0] ^ 1]) + request.body[1:]
    assert not _standard_webhooks_valid(headers, flipped, SECRETS[0])


def test_standard_webhooks_retry_keeps_the_id_and_is_signed_with_a_fresh_timestamp(receiver):
    answers = iter([Reply(status=500), Reply(status=200)])
    receiver.script = lambda received: next(answers)
    account, app = make_account(), make_integrator(secrets=SECRETS)
    open_channel(account, app, receiver.url())

    with time_machine.travel(timezone.now(), tick=True) as traveller:
        deliver_all()
        traveller.move_to(Notification.objects.get().next_attempt_at + timedelta(seconds=1))
        deliver_all()

    first, second = (
        {name.lower(): value for name, value in r.headers.items()} for r in receiver.requests
    )
    assert first["webhook-id"] == second["webhook-id"]
    assert int(second["webhook-timestamp"]) > int(first["webhook-timestamp"])
    assert first["webhook-signature"] != second["webhook-signature"]
    assert _standard_webhooks_valid(second, receiver.requests[1].body, SECRETS[0])


def test_signature_matches_cronofy_test_vectors():
    body = b'{"example":"well-known"}'
    assert signing.signature(body, "pDY0Oi7TJSP2hfNmZNkm5") == (
        "6r2/HjBkqymGegX0wOfifieeUXbbHwtV/LohHS+jv6c="
    )
    assert signing.header_value(
        body, ["opposable thumbs", "CRN_NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID"]
    ) == (
        "38ArsN7+J/O8joGsgirVEdV16a/+eb+5QgHGIiuv4hk=,5DxentQi5YSXODEzTVv06sRwJ3pULIz1KrYv20qxEK0="
    )


def test_application_without_active_secret_is_never_sent_unsigned(receiver):
    account, app = make_account(), make_integrator(secrets=())
    open_channel(account, app, receiver.url())

    stats = deliver_all()

    assert receiver.requests == []
    assert stats.retrying == 1
    notification = Notification.objects.get()
    assert "no active secret" in notification.last_error


def test_receiver_500_then_200_is_retried_and_delivered_with_the_same_delivery_id(receiver):
    answers = iter([Reply(status=500, body=b"boom"), Reply(status=200)])
    receiver.script = lambda received: next(answers)
    account, app = make_account(), make_integrator()
    open_channel(account, app, receiver.url())

    with time_machine.travel(timezone.now(), tick=True) as traveller:
        assert deliver_all().retrying == 1
        notification = Notification.objects.get()
        assert notification.status == Notification.Status.PENDING
        assert notification.last_status_code == 500
        delay = (notification.next_attempt_at - notification.first_attempt_at).total_seconds()
        assert 4 <= delay <= 6.1  # 5 s ± 20 %
        assert deliver_all().claimed == 0  # not due yet
        traveller.move_to(notification.next_attempt_at)
        assert deliver_all().delivered == 1

    first, second = receiver.requests
    assert first.delivery_id == second.delivery_id
    assert (first.headers["X-Delivery-Attempt"], second.headers["X-Delivery-Attempt"]) == ("1", "2")
    attempts = list(
        DeliveryAttempt.objects.order_by("number").values_list("status_code", "response_body")
    )
    assert attempts == [(500, "boom"), (200, "ok")]


def test_receiver_slower_than_5_seconds_times_out_and_is_retried(receiver):
    receiver.script = lambda received: Reply(delay=8)
    account, app = make_account(), make_integrator()
    open_channel(account, app, receiver.url())

    started = datetime.now(UTC)
    stats = deliver_all()
    elapsed = (datetime.now(UTC) - started).total_seconds()

    assert stats.retrying == 1
    assert 4.9 <= elapsed < 6.5
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code is None
    assert attempt.error == "timeout after 5s"
    assert Notification.objects.get().status == Notification.Status.PENDING


def test_redirect_is_a_failure_and_location_is_not_followed(receiver):
    receiver.script = lambda received: (
        Reply(status=302, headers={"Location": receiver.url("/elsewhere")})
        if received.path == "/hook"
        else Reply()
    )
    account, app = make_account(), make_integrator()
    open_channel(account, app, receiver.url("/hook"))

    assert deliver_all().retrying == 1
    assert [r.path for r in receiver.requests] == ["/hook"]
    assert DeliveryAttempt.objects.get().status_code == 302


def test_connection_reset_after_the_request_is_a_failure(receiver):
    receiver.script = lambda received: Reply(reset=True)
    account, app = make_account(), make_integrator()
    open_channel(account, app, receiver.url())

    assert deliver_all().retrying == 1
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code is None
    assert "reset" in attempt.error


def test_closed_port_is_a_failure(receiver):
    account, app = make_account(), make_integrator()
    url = receiver.url()
    receiver.close()
    open_channel(account, app, url)

    assert deliver_all().retrying == 1
    assert DeliveryAttempt.objects.get().error == "connection refused"


def test_large_response_body_is_read_only_up_to_the_limit(receiver, settings):
    settings.PUSH_RESPONSE_BODY_LIMIT = 100
    receiver.script = lambda received: Reply(body=b"x" * 5_000_000)
    account, app = make_account(), make_integrator()
    open_channel(account, app, receiver.url())

    assert deliver_all().delivered == 1
    attempt = DeliveryAttempt.objects.get()
    assert attempt.response_body == "x" * 100
    assert attempt.duration_ms < 2000


def test_retry_after_on_503_is_honoured_within_bounds(receiver):
    receiver.script = lambda received: Reply(status=503, headers={"Retry-After": "9"})
    account, app = make_account(), make_integrator()
    open_channel(account, app, receiver.url())

    deliver_all()

    notification = Notification.objects.get()
    delay = (notification.next_attempt_at - notification.last_attempt_at).total_seconds()
    assert 9 <= delay <= 10  # Retry-After 9 within [5, 10]


def test_410_gone_closes_the_channel(receiver):
    receiver.script = lambda received: Reply(status=410)
    account, app = make_account(), make_integrator()
    channel = open_channel(account, app, receiver.url())

    assert deliver_all().failed == 1
    channel.refresh_from_db()
    assert channel.status == Channel.Status.CLOSED
    assert "410" in channel.closed_reason


def _drive_until_terminal(traveller, receiver, *, up_after: timedelta, start: datetime):
    """Move the clock to each scheduled attempt; the receiver is down until start+up_after."""
    offsets = []
    for _ in range(100):
        notification = Notification.objects.get()
        if notification.is_terminal:
            return notification, offsets
        traveller.move_to(notification.next_attempt_at)
        now = timezone.now()
        offsets.append(now - start)
        is_up = now - start >= up_after
        receiver.script = lambda received, up=is_up: Reply(status=200 if up else 503)
        deliver_all()
    raise AssertionError("never reached a terminal state")


def test_receiver_down_23_hours_then_up_is_delivered(receiver):
    account, app = make_account(), make_integrator()
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        channel = open_channel(account, app, receiver.url())
        notification, offsets = _drive_until_terminal(
            traveller, receiver, up_after=timedelta(hours=23), start=start
        )

    assert notification.status == Notification.Status.DELIVERED
    assert timedelta(hours=23) <= offsets[-1] <= timedelta(hours=24)
    channel.refresh_from_db()
    assert channel.status == Channel.Status.OPEN
    assert len({r.delivery_id for r in receiver.requests}) == 1


def test_receiver_down_25_hours_closes_the_channel_after_24_hours(receiver):
    account, app = make_account(), make_integrator()
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        channel = open_channel(account, app, receiver.url())
        notification, offsets = _drive_until_terminal(
            traveller, receiver, up_after=timedelta(hours=25), start=start
        )

    assert notification.status == Notification.Status.FAILED
    assert offsets[-1] == timedelta(hours=24)  # the final attempt is exactly at the budget
    channel.refresh_from_db()
    assert channel.status == Channel.Status.CLOSED
    assert channel.closed_reason == "deliveries failed for 24 hours"
    assert DeliveryAttempt.objects.filter(notification=notification).count() == len(offsets)


def test_retry_schedule_offsets_follow_the_backoff_table(receiver):
    account, app = make_account(), make_integrator()
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        open_channel(account, app, receiver.url())
        _, offsets = _drive_until_terminal(
            traveller, receiver, up_after=timedelta(days=2), start=start
        )

    gaps = [(b - a).total_seconds() for a, b in zip(offsets, offsets[1:], strict=False)]
    for gap, base in zip(gaps, dispatch.RETRY_DELAYS, strict=False):
        assert base * 0.8 <= gap <= base * 1.2
    # After the table: hourly (±20 %), except the final attempt clamped to the 24 h mark.
    assert all(3600 * 0.8 <= gap <= 3600 * 1.2 for gap in gaps[len(dispatch.RETRY_DELAYS) : -1])
    assert 0 < gaps[-1] <= 3600 * 1.2
    assert offsets[0] == timedelta(0) and offsets[-1] == timedelta(hours=24)
    assert 20 <= len(offsets) <= 30


def test_dispatcher_killed_after_sending_redelivers_with_the_same_delivery_id(receiver):
    account, app = make_account(), make_integrator()
    open_channel(account, app, receiver.url())

    with time_machine.travel(timezone.now(), tick=True) as traveller:
        # A worker claims and sends, then dies before recording (nothing written after send).
        [claim] = services.claim_due(limit=10)
        result = dispatch.send(
            claim, timeout=5, allowed=services.channels.allowed_networks(), max_response_bytes=100
        )
        assert result.status_code == 200
        assert deliver_all().claimed == 0  # the lease still protects the claim
        traveller.shift(timedelta(seconds=61))  # the lease (60 s) lapses
        assert deliver_all().delivered == 1

    first, second = receiver.requests
    assert first.delivery_id == second.delivery_id
    notification = Notification.objects.get()
    assert (notification.status, notification.attempts) == (Notification.Status.DELIVERED, 2)


def test_late_result_of_a_lapsed_claim_is_logged_but_changes_nothing(receiver):
    account, app = make_account(), make_integrator()
    open_channel(account, app, receiver.url())
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        [stale] = services.claim_due(limit=10)
        traveller.shift(timedelta(seconds=61))
        assert deliver_all().delivered == 1
        outcomes = services.record_results([(stale, PostResult(status_code=500))])

    assert outcomes == ["stale"]
    notification = Notification.objects.get()
    assert notification.status == Notification.Status.DELIVERED
    assert DeliveryAttempt.objects.filter(notification=notification).count() == 2


def test_only_one_notification_per_channel_is_in_flight(receiver):
    account, app = make_account(), make_integrator()
    channel = open_channel(account, app, receiver.url())
    services.notify_gdpr_requested(account)

    first = services.claim_due(limit=10)
    assert [c.channel_id for c in first] == [channel.pk]
    assert services.claim_due(limit=10) == []  # the channel is busy
    services.record_results([(first[0], PostResult(status_code=200))])
    [second] = services.claim_due(limit=10)
    assert second.notification_id != first[0].notification_id


def test_slow_receiver_does_not_delay_a_healthy_one(receiver, settings):
    settings.PUSH_DELIVERY_TIMEOUT_SECONDS = 3
    receiver.script = lambda received: Reply(delay=10) if received.path == "/slow" else Reply()
    account, app = make_account(), make_integrator()
    for _ in range(3):
        open_channel(make_account(), app, receiver.url("/slow"))
    open_channel(account, app, receiver.url("/fast"))
    started = time.monotonic()

    stats = services.run_dispatcher(concurrency=8)

    fast = [r for r in receiver.requests if r.path == "/fast"]
    assert len(fast) == 1 and fast[0].at - started < 1.5
    assert stats.delivered == 1 and stats.retrying == 3
