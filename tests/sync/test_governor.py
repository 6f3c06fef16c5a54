"""Rate governance: a provider's cap on concurrent requests per profile holds across threads
(each with its own database connection, as workers are), and waiting for a slot is not a
failure."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Profile
from calendars.models import Calendar
from sync import services
from sync.models import CalendarSyncState, ProviderRequestSlot
from sync.providers import base, registry
from sync.services import governor
from tests.factories import make_account, make_profile
from tests.sync.writes_helpers import connect, desired, write

pytestmark = pytest.mark.django_db(transaction=True)


class CappedProvider(base.Provider):
    """Declares Graph's cap shape (here 2) and records how many of its calls overlap."""

    key = "google"
    max_concurrent_requests = 2
    lock = threading.Lock()
    in_flight = 0
    most = 0
    calls = 0

    def __init__(self, creds, **options):
        self.creds = creds

    def describe_account(self):
        return base.ProviderAccount("capped", "ada@example.com")

    def list_calendars(self):
        return []

    def fetch_changes(self, calendar_id, cursor, **known):
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.calls += 1
            cls.most = max(cls.most, cls.in_flight)
        time.sleep(0.3)
        with cls.lock:
            cls.in_flight -= 1
        return base.ChangeSet(cursor="c", is_full=cursor is None)


@pytest.fixture
def capped(monkeypatch):
    monkeypatch.setitem(registry.PROVIDERS, "google", CappedProvider)
    CappedProvider.in_flight = CappedProvider.most = CappedProvider.calls = 0
    return CappedProvider


def google_profile() -> Profile:
    return make_profile(
        account=make_account(),
        provider=Profile.Provider.GOOGLE,
        provider_service="google",
        provider_account_id=f"google-{time.monotonic_ns()}",
        credentials={"access_token": "a", "refresh_token": "r", "expires_at": time.time() + 3000},
    )


def hold_every_slot(profile, *, until):
    """Other holders (another worker's calls) with leases running `until`."""
    ProviderRequestSlot.objects.bulk_create(
        [
            ProviderRequestSlot(profile=profile, number=n, holder="other", held_until=until)
            for n in range(CappedProvider.max_concurrent_requests)
        ]
    )


def fetch(profile):
    return services.call_with_fresh_credentials(
        profile, lambda provider: provider.fetch_changes("primary", None)
    )


@pytest.mark.postgres
def test_provider_slot_caps_concurrent_calls_of_a_profile_across_connections(capped):
    profile = google_profile()
    other = google_profile()  # another profile's calls are not held back by this one's
    errors = []

    def worker(who):
        try:
            fetch(who)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(profile,)) for _ in range(6)]
    threads.append(threading.Thread(target=worker, args=(other,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert capped.calls == 7
    assert capped.most == 3  # two of `profile`, one of `other`
    assert not ProviderRequestSlot.objects.exclude(holder="").exists()  # all given back


def test_provider_slot_is_free_again_after_a_failed_call(capped, monkeypatch):
    profile = google_profile()

    def fail(provider):
        raise base.TemporaryError("boom")

    for _ in range(3):  # more than the cap: each failure gave its slot back
        with pytest.raises(base.TemporaryError):
            services.call_with_fresh_credentials(profile, fail)
    assert fetch(profile).cursor == "c"


def test_provider_slot_of_a_crashed_holder_lapses(capped, monkeypatch):
    profile = google_profile()
    monkeypatch.setattr(governor, "WAIT_SECONDS", 0.3)
    hold_every_slot(profile, until=timezone.now() - timedelta(seconds=1))  # leases lapsed
    assert fetch(profile).cursor == "c"


def test_provider_slot_is_held_longer_than_the_task_timeout(capped, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 900}  # huge calendars, slow calls
    profile = google_profile()
    leases = []

    def note_the_lease(provider):
        leases.append(ProviderRequestSlot.objects.exclude(holder="").get().held_until)
        return provider.fetch_changes("primary", None)

    before = timezone.now()
    services.call_with_fresh_credentials(profile, note_the_lease)
    assert leases[0] >= before + timedelta(seconds=900)


def test_sync_waiting_for_a_slot_is_postponed_not_failed(capped, monkeypatch):
    profile = google_profile()
    calendar = Calendar.objects.create(profile=profile, provider_calendar_id="primary", name="P")
    monkeypatch.setattr(governor, "WAIT_SECONDS", 0.3)
    hold_every_slot(profile, until=timezone.now() + timedelta(minutes=2))

    before = timezone.now()
    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "skipped" and "in flight" in outcome.error
    assert capped.calls == 0
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert state.consecutive_failures == 0 and state.last_error == ""
    assert before + timedelta(seconds=10) < state.next_poll_at < before + timedelta(seconds=30)
    assert state.lock_token == ""  # the lease was given back


def test_providers_without_a_cap_take_no_slot(radicale_server):
    _user, _url, calendar = connect(radicale_server)
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    assert not ProviderRequestSlot.objects.exists()


def test_write_waiting_for_a_slot_is_deferred_not_an_attempt(capped, monkeypatch):
    profile = google_profile()
    calendar = Calendar.objects.create(profile=profile, provider_calendar_id="primary", name="P")
    monkeypatch.setattr(governor, "WAIT_SECONDS", 0.3)
    hold_every_slot(profile, until=timezone.now() + timedelta(minutes=2))
    pending = write(calendar, desired(timezone.now() + timedelta(days=1)))

    before = timezone.now()
    result = services.reconcile_event_writes()

    assert result.retrying == [pending.pk]
    pending.refresh_from_db()
    assert pending.status == "pending" and pending.attempts == 0 and pending.last_error == ""
    assert before + timedelta(seconds=10) < pending.next_attempt_at < before + timedelta(seconds=30)
