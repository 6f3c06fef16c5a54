"""Provider push as part of sync, with a test-double provider speaking Google's channel
headers: subscribe, receive (secret checked, answered at once), one coalesced sync per burst,
renewal before expiry, stop on disconnect, and polling that continues as the safety net."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Profile
from calendars.models import Calendar
from sync import services
from sync.models import CalendarSyncState, ProviderSubscription, SyncActivity
from sync.providers import base, registry
from sync.services import engine, push
from tests.factories import make_account, make_profile

pytestmark = pytest.mark.django_db(transaction=True)


class PushDouble(base.Provider):
    """A push-capable provider double: records watch/renew/stop calls."""

    key = "google"
    supports_push = True
    calls: list[tuple] = []

    def __init__(self, creds, **options):
        self.creds = creds

    def describe_account(self):
        return base.ProviderAccount("double", "ada@example.com")

    def list_calendars(self):
        return [base.ProviderCalendar(provider_calendar_id="primary", name="Primary")]

    def fetch_changes(self, calendar_id, cursor, **known):
        return base.ChangeSet(cursor="c", is_full=cursor is None)

    stop_error: Exception | None = None

    def watch(self, calendar_id, *, channel_id, address, token, ttl_seconds):
        # Like Google: a channel id may be used once; the resource id names the calendar.
        if any(call[0] == "watch" and call[2] == channel_id for call in PushDouble.calls):
            raise base.PermanentError("channel id not unique")
        PushDouble.calls.append(("watch", calendar_id, channel_id, address, token))
        return base.Watch(
            resource_id=f"res-{calendar_id}",
            expires_at=timezone.now() + timedelta(seconds=ttl_seconds),
        )

    def stop_watch(self, *, channel_id, resource_id):
        if PushDouble.stop_error is not None:
            raise PushDouble.stop_error
        PushDouble.calls.append(("stop", channel_id, resource_id))

    @classmethod
    def parse_push(cls, *, headers, body, query):
        channel = headers.get("X-Goog-Channel-ID", "")
        if not channel:
            raise base.PermanentError("not a channel notification")
        token = headers.get("X-Goog-Channel-Token", "")
        return base.PushReceipt([base.PushNotification(channel_id=channel, token=token)])


@pytest.fixture
def calendar(settings, monkeypatch):
    settings.PUBLIC_BASE_URL = "https://calsync.example.com"
    monkeypatch.setitem(registry.PROVIDERS, "google", PushDouble)
    PushDouble.calls = []
    PushDouble.stop_error = None
    profile = make_profile(
        account=make_account(),
        provider=Profile.Provider.GOOGLE,
        provider_account_id="google-ada",
        credentials={"access_token": "a", "refresh_token": "r", "expires_at": time.time() + 3000},
    )
    calendar = Calendar.objects.create(profile=profile, provider_calendar_id="primary", name="P")
    CalendarSyncState.objects.create(calendar=calendar, next_poll_at=timezone.now())
    return calendar


@pytest.fixture
def queued(monkeypatch):
    syncs: list[int] = []
    monkeypatch.setattr(engine, "enqueue_sync", syncs.append)
    return syncs


def _notify(subscription, token=None):
    return Client().post(
        "/push/google/",
        HTTP_X_GOOG_CHANNEL_ID=subscription.channel_id,
        HTTP_X_GOOG_CHANNEL_TOKEN=token if token is not None else subscription.secret,
        HTTP_X_GOOG_RESOURCE_STATE="exists",
    )


def test_push_subscribes_at_our_stable_address_with_a_secret(calendar):
    report = push.maintain_subscriptions()
    assert report.subscribed == 1
    [(kind, calendar_id, channel_id, address, token)] = PushDouble.calls
    assert (kind, calendar_id) == ("watch", "primary")
    assert address == "https://calsync.example.com/push/google/"
    subscription = ProviderSubscription.objects.get(calendar=calendar)
    assert subscription.channel_id == channel_id and subscription.secret == token
    assert len(token) >= 32 and subscription.expires_at > timezone.now() + timedelta(days=6)
    assert push.maintain_subscriptions().subscribed == 0  # one per calendar


def test_push_without_a_public_address_subscribes_nothing(calendar, settings):
    settings.PUBLIC_BASE_URL = ""
    assert push.maintain_subscriptions().subscribed == 0 and PushDouble.calls == []


def test_push_burst_is_one_sync_and_answers_at_once(calendar, queued):
    push.maintain_subscriptions()
    subscription = ProviderSubscription.objects.get(calendar=calendar)
    answers = [_notify(subscription).status_code for _ in range(5)]
    assert answers == [202] * 5
    assert queued == [calendar.pk]  # the burst queued one sync
    assert ProviderSubscription.objects.get(pk=subscription.pk).last_notification_at
    received = SyncActivity.objects.filter(calendar=calendar, kind="push_received")
    assert [row.outcome for row in received] == ["change"] * 5  # the console's timeline

    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    assert queued == [calendar.pk]  # nothing arrived during the sync: no follow-up
    _notify(subscription)
    assert queued == [calendar.pk, calendar.pk]  # the next change queues the next sync


def test_push_during_a_sync_queues_the_next_one(calendar, queued, monkeypatch):
    push.maintain_subscriptions()
    subscription = ProviderSubscription.objects.get(calendar=calendar)
    fetch = PushDouble.fetch_changes

    def fetch_while_notified(self, *args, **kwargs):
        _notify(subscription)  # the provider changes again while we fetch
        return fetch(self, *args, **kwargs)

    monkeypatch.setattr(PushDouble, "fetch_changes", fetch_while_notified)
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    assert queued == [calendar.pk]  # left to the running sync, which queued the follow-up
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert state.push_requested_at and state.next_poll_at <= timezone.now()  # due at once


def test_push_wrong_secret_or_unknown_channel_is_ignored(calendar, queued):
    # Answered 2xx (a refused delivery is retried by the provider for days), and no sync.
    push.maintain_subscriptions()
    subscription = ProviderSubscription.objects.get(calendar=calendar)
    assert _notify(subscription, token="guess").status_code == 200
    secret = subscription.secret
    subscription.channel_id = "unknown"
    assert _notify(subscription, token=secret).status_code == 200
    assert Client().post("/push/google/").status_code == 400  # not a notification at all
    assert Client().post("/push/nowhere/").status_code == 404
    assert queued == []


def test_push_renews_before_expiry_with_a_new_channel(calendar):
    push.maintain_subscriptions()
    old = ProviderSubscription.objects.get(calendar=calendar)
    soon = timezone.now() + timedelta(hours=1)
    ProviderSubscription.objects.filter(pk=old.pk).update(expires_at=soon)

    assert push.maintain_subscriptions().renewed == 1

    # Google's way: a new channel (new id, new secret), then the old one stopped.
    assert [call[0] for call in PushDouble.calls] == ["watch", "watch", "stop"]
    assert PushDouble.calls[2][1:] == (old.channel_id, old.resource_id)
    renewed = ProviderSubscription.objects.get(calendar=calendar)
    assert renewed.channel_id != old.channel_id and renewed.secret != old.secret
    assert renewed.expires_at > timezone.now() + timedelta(days=6)
    assert _notify(renewed).status_code == 202
    assert push.maintain_subscriptions().renewed == 0  # not again until it is due


def test_push_expired_subscription_is_replaced(calendar):
    push.maintain_subscriptions()
    ProviderSubscription.objects.update(expires_at=timezone.now() - timedelta(minutes=5))
    assert push.maintain_subscriptions().renewed == 1
    assert ProviderSubscription.objects.get(calendar=calendar).is_healthy(timezone.now())


def test_push_respects_the_backoff_of_a_failing_calendar(calendar, queued):
    push.maintain_subscriptions()
    subscription = ProviderSubscription.objects.get(calendar=calendar)
    later = timezone.now() + timedelta(hours=2)
    CalendarSyncState.objects.filter(calendar=calendar).update(
        consecutive_failures=3, next_poll_at=later
    )
    assert _notify(subscription).status_code == 202
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert queued == [] and state.next_poll_at == later  # it waits for its next poll
    assert state.push_requested_at is not None


def test_push_notification_for_another_provider_is_refused(calendar, queued, monkeypatch):
    push.maintain_subscriptions()
    subscription = ProviderSubscription.objects.get(calendar=calendar)
    monkeypatch.setitem(registry.PROVIDERS, "microsoft", PushDouble)
    response = Client().post(
        "/push/microsoft/",
        HTTP_X_GOOG_CHANNEL_ID=subscription.channel_id,
        HTTP_X_GOOG_CHANNEL_TOKEN=subscription.secret,
    )
    assert response.status_code == 200 and queued == []  # ignored


def test_push_stops_when_the_profile_is_disconnected(calendar, monkeypatch):
    push.maintain_subscriptions()
    subscription = ProviderSubscription.objects.get(calendar=calendar)
    queued = []
    monkeypatch.setattr(push, "async_task", lambda name: queued.append(name))
    account_services.disconnect_profile(profile=calendar.profile, reason="revoked")
    # Queued after commit; the network work never runs inside the disconnect transaction.
    assert queued == ["sync.tasks.maintain_provider_subscriptions"]
    assert PushDouble.calls[-1][0] == "watch"

    PushDouble.stop_error = base.TemporaryError("provider down")
    report = push.maintain_subscriptions()
    assert report.stopped == 0 and ProviderSubscription.objects.exists()  # kept: it would post

    PushDouble.stop_error = None
    assert push.maintain_subscriptions().stopped == 1
    assert ("stop", subscription.channel_id, subscription.resource_id) in PushDouble.calls
    assert not ProviderSubscription.objects.exists()


def test_push_polling_continues_longer_while_healthy_then_as_usual(calendar, settings):
    push.maintain_subscriptions()
    services.sync_calendar(calendar_id=calendar.pk)
    state = CalendarSyncState.objects.get(calendar=calendar)
    wait = (state.next_poll_at - timezone.now()).total_seconds()
    assert wait >= 0.85 * settings.SYNC_PUSH_POLL_INTERVAL_SECONDS  # still polled, less often

    # Notifications stop (the subscription lapsed and could not be renewed): 5-minute polls.
    ProviderSubscription.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    services.sync_calendar(calendar_id=calendar.pk)
    state.refresh_from_db()
    wait = (state.next_poll_at - timezone.now()).total_seconds()
    assert wait <= 1.15 * settings.SYNC_POLL_INTERVAL_SECONDS
