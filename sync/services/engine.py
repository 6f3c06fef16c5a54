"""The sync engine: connect profiles, sync calendars, schedule polls.

Adapters (sync.providers) talk to providers and return dataclasses; this module turns them
into rows through calendars.services, and owns every retry/backoff/disconnect decision.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Case, Q, QuerySet, Value, When
from django.utils import timezone
from django_q.tasks import async_task

import metrics
from accounts import services as account_services
from accounts.errors import is_transient_database_error
from accounts.models import Account, Profile
from accounts.queueing import enqueue_after_commit, enqueue_now
from calendars import services as calendar_services
from calendars.models import Calendar, ManagedEventWrite
from calendars.types import ApplyResult, CalendarData
from notifications import services as notification_services
from sync.models import CalendarSyncState, ProfileSyncState, ProviderSubscription, SyncedResource
from sync.providers import base
from sync.providers.base import Window
from sync.providers.registry import PROVIDERS
from sync.services import activity, resources
from sync.services.backoff import backoff_delay
from sync.services.credentials import build_provider, call_with_fresh_credentials
from sync.services.governor import ProfileBusy
from sync.services.identity import identity_lookup, stored_identity
from sync.services.resources import current_window

log = logging.getLogger(__name__)

# A sync holds its calendar for at most this long; a crashed worker's lease then lapses.
LEASE_SECONDS = 15 * 60
MAX_BACKOFF_SECONDS = 6 * 3600
JITTER = 0.1  # polls are spread +-10% so that calendars drift apart
# Of the time since a calendar's last change, the part its next poll waits (adaptive polling).
RECENT_CHANGE_FRACTION = 0.25


# --- telling integrators (push notifications) ---
def on_initial_sync_completed(profile: Profile) -> None:
    """Inside the transaction that clears the initial-sync flag; only channels that existed
    before this moment are told (Cronofy's rule). A seam tests may replace."""
    log.info("profile %s completed its initial sync", profile.public_id)
    notification_services.notify_profile_initial_sync_completed(profile)


def _poll_delay(seconds: float) -> timedelta:
    return timedelta(seconds=seconds * random.uniform(1 - JITTER, 1 + JITTER))


def push_poll_interval(calendar_id: int, now: datetime) -> int:
    """The safety-net poll interval: longer while a push subscription is healthy."""
    subscription = ProviderSubscription.objects.filter(calendar_id=calendar_id).first()
    if subscription is not None and subscription.is_healthy(now):
        return settings.SYNC_PUSH_POLL_INTERVAL_SECONDS
    return settings.SYNC_POLL_INTERVAL_SECONDS


def poll_interval(*, calendar_id: int, last_changed_at: datetime | None, has_push: bool) -> float:
    """Seconds until a calendar's next poll (before jitter). A calendar that changed recently
    is likely to change again soon (a meeting being arranged): it waits a quarter of the time
    since its last change, at least SYNC_POLL_MIN_INTERVAL_SECONDS. Never longer than
    SYNC_POLL_INTERVAL_SECONDS, the promise; a healthy push subscription stretches it instead,
    since the provider then tells us of changes itself."""
    now = timezone.now()
    base_interval = (
        push_poll_interval(calendar_id, now) if has_push else settings.SYNC_POLL_INTERVAL_SECONDS
    )
    if last_changed_at is None or base_interval > settings.SYNC_POLL_INTERVAL_SECONDS:
        return base_interval
    since_change = (now - last_changed_at).total_seconds() * RECENT_CHANGE_FRACTION
    return min(base_interval, max(settings.SYNC_POLL_MIN_INTERVAL_SECONDS, since_change))


def record_unchanged_poll(
    states: QuerySet, *, interval: float, cursor: str | None = None, **more
) -> bool:
    """One UPDATE that records a successful poll that found nothing new on the state `states`
    selects (a lease or claim condition: it matches nothing once another sync owns the
    calendar), releases its lease and sets its next poll. A provider notification that came
    meanwhile makes the next poll due at once. Returns whether it was recorded."""
    now = timezone.now()
    fields = {"cursor": cursor} if cursor is not None else {}
    return bool(
        states.update(
            last_synced_at=now,
            last_error="",
            last_error_class="",
            consecutive_failures=0,
            next_poll_at=Case(
                When(push_requested_at__isnull=False, then=Value(now)),
                default=Value(now + _poll_delay(interval)),
            ),
            locked_until=None,
            lock_token="",
            poll_claim="",
            updated_at=now,
            **fields,
            **more,
        )
    )


def enqueue_sync(calendar_id: int) -> None:
    """Queue one calendar's sync (a seam: tests replace it to run syncs themselves)."""
    async_task(
        "sync.tasks.sync_calendar",
        calendar_id,
        save=False,  # accounts/queueing.py: only failures are stored
        task_name=f"sync_calendar:{calendar_id}",
    )


def enqueue_full_sync(calendar_id: int) -> None:
    """Queue one calendar's full resync (mark-and-sweep from an empty cursor)."""
    async_task(
        "sync.tasks.sync_calendar", calendar_id, True, task_name=f"full_sync_calendar:{calendar_id}"
    )


def enqueue_push_maintenance() -> None:
    """Queue a run of provider-subscription maintenance (sync.services.push)."""
    async_task("sync.tasks.maintain_provider_subscriptions")


def enqueue_calendar_discovery(profile_id: int) -> None:
    """Queue the discovery of a profile's calendars (a seam: tests replace it)."""
    async_task(
        "sync.tasks.discover_calendars", profile_id, task_name=f"discover_calendars:{profile_id}"
    )


# --- managed-event writes (settings.MANAGED_EVENT_WRITE_TRIGGER) ---
def enqueue_managed_event_writes(*, write_ids: Sequence[int]) -> None:
    """Start reconciling just-committed writes now rather than at the next sweep.

    Called by calendars after commit. Enqueueing is only the trigger: a lost task is harmless,
    the rows stay pending and the periodic sweep claims them.
    """
    if write_ids:
        async_task("sync.tasks.reconcile_event_writes", list(write_ids), save=False)


# --- creating calendars (settings.CALENDAR_PROVIDER_CREATOR) ---
def create_calendar_at_provider(
    *, profile: Profile, name: str, color: str = ""
) -> calendar_services.ProviderCalendar:
    """POST /v1/calendars at the profile's provider (calendars.services.create_calendar calls
    this through the setting, since calendars never imports sync).

    Raises calendars.services.CalendarCreationNotSupported (read-only providers),
    ProfileNotWritable (credentials rejected) or CalendarCreationFailed (try later).
    """
    try:
        created = call_with_fresh_credentials(profile, lambda p: p.create_calendar(name))
    except base.NotSupported as exc:
        raise calendar_services.CalendarCreationNotSupported(str(exc)) from exc
    except base.AuthExpired as exc:
        raise calendar_services.ProfileNotWritable(str(exc)) from exc
    except base.ProviderError as exc:
        raise calendar_services.CalendarCreationFailed(str(exc)) from exc
    return calendar_services.ProviderCalendar(
        provider_calendar_id=created.provider_calendar_id, name=created.name, color=color
    )


# --- connecting profiles and their calendar lists ---
def connect_profile(*, account: Account, provider_key: str, credentials_dict: dict) -> Profile:
    """Connect (or relink) a provider account: discover it, store the profile and calendars,
    and enqueue the first sync of each calendar.

    The profile is unique on (account, provider, provider_account_id; a keyed hash for an ICS
    feed, see sync.services.identity): connecting the same provider account again updates its
    credentials and reconnects it. Raises the adapter's errors (AuthExpired for bad
    credentials, TemporaryError, PermanentError) before writing.
    """
    provider = build_provider(provider_key, credentials_dict)
    identity = provider.describe_account()
    return store_connected_profile(
        account=account,
        provider_key=provider_key,
        credentials=credentials_dict,
        provider_account=identity,
        provider_calendars=provider.list_calendars(),
    )


def store_connected_profile(
    *,
    account: Account,
    provider_key: str,
    credentials: dict,
    provider_account: base.ProviderAccount,
    provider_calendars: Sequence[base.ProviderCalendar] | None,
) -> Profile:
    """Store an already verified connection: create or relink the Profile (status connected,
    credentials replaced), upsert its calendars and enqueue their first sync after commit.

    `provider_calendars` None leaves the calendar list to the first sync (OAuth providers
    whose adapters need an authorized session); a relink then keeps the cached calendars.
    """
    with transaction.atomic():
        profile, created = _lock_or_create_profile(account, provider_key, provider_account)
        newly_connected = created or profile.status != Profile.Status.CONNECTED
        profile.profile_name = provider_account.profile_name
        profile.provider_service = provider_account.provider_service
        profile.credentials = credentials
        profile.status = Profile.Status.CONNECTED
        profile.disconnected_reason = ""
        profile.disconnected_at = None
        profile.save()
        if provider_calendars is None:
            # OAuth providers: discovery needs an authorized adapter and the network, so it
            # runs in the worker right after commit (and the tick retries it if that fails).
            calendars = list(profile.calendars.filter(is_deleted=False))
            # Connecting counts as the tick's claim: one discovery, not two at once.
            ProfileSyncState.objects.update_or_create(
                profile=profile, defaults={"calendars_refreshed_at": timezone.now()}
            )
            if provider_key in PROVIDERS:
                enqueue_after_commit(
                    lambda: enqueue_calendar_discovery(profile.pk), what="calendar discovery"
                )
        else:
            calendars = _store_calendar_list(profile, provider_calendars)
        if newly_connected:
            # After the calendars: the account row (the log's sequence) comes later in the lock
            # order (docs/architecture.md, Lock order). A credentials refresh is not a change.
            calendar_services.record_profile_change(
                profile=profile, kind=calendar_services.PROFILE_CONNECTED
            )
        # A relink resumes polling now. The failure record stays (what went wrong and when)
        # until the next successful sync: a relink alone does not prove anything was fixed.
        CalendarSyncState.objects.filter(calendar__in=calendars).update(next_poll_at=timezone.now())
        for calendar in calendars:
            enqueue_after_commit(lambda pk=calendar.pk: enqueue_sync(pk), what="calendar sync")
        # Writes kept pending while the profile was disconnected are due again now.
        write_ids = list(
            ManagedEventWrite.objects.pending()
            .filter(calendar__profile=profile)
            .values_list("pk", flat=True)
        )
        if write_ids:
            ManagedEventWrite.objects.filter(pk__in=write_ids).update(
                next_attempt_at=timezone.now(), locked_until=None, lock_token=""
            )
            enqueue_after_commit(
                lambda: enqueue_managed_event_writes(write_ids=write_ids),
                what="managed event writes",
            )
    log.info("profile %s %s", profile.public_id, "connected" if created else "relinked")
    return profile


def _lock_or_create_profile(
    account: Account, provider_key: str, provider_account: base.ProviderAccount
) -> tuple[Profile, bool]:
    """The account's profile of this provider identity, locked (or a new one). A secret
    identity is found by its keyed hash under any configured key and re-hashed under the first
    (sync.services.identity)."""
    identity = provider_account.provider_account_id
    profiles = Profile.objects.select_for_update(no_key=True)
    stored = identity_lookup(provider_key, identity)
    profile = profiles.filter(
        account=account, provider=provider_key, provider_account_id__in=stored
    ).first()
    if profile is not None:
        profile.provider_account_id = stored[0]
        return profile, False
    return profiles.get_or_create(
        account=account,
        provider=provider_key,
        provider_account_id=stored_identity(provider_key, identity),
        defaults={"profile_name": provider_account.profile_name},
    )


def _store_calendar_list(
    profile: Profile, provider_calendars: Sequence[base.ProviderCalendar]
) -> list[Calendar]:
    result = calendar_services.upsert_provider_calendars(
        profile=profile,
        calendars=[
            CalendarData(
                provider_calendar_id=c.provider_calendar_id,
                name=c.name,
                is_readonly=c.is_readonly,
                is_primary=c.is_primary,
                color=c.color,
            )
            for c in provider_calendars
        ],
    )
    now = timezone.now()
    CalendarSyncState.objects.bulk_create(
        [CalendarSyncState(calendar=c, next_poll_at=now) for c in result.calendars],
        ignore_conflicts=True,
    )
    # A calendar back in the list after it was deleted (and its polling parked) is polled again.
    CalendarSyncState.objects.filter(
        calendar__in=[c for c in result.calendars if not c.is_deleted], next_poll_at__isnull=True
    ).update(next_poll_at=now)
    ProfileSyncState.objects.update_or_create(
        profile=profile, defaults={"calendars_refreshed_at": now}
    )
    if result.created and not profile.is_initial_sync_required:
        # A new calendar has no cached data yet; the profile completes again after its sync.
        Profile.objects.filter(pk=profile.pk).update(is_initial_sync_required=True)
        profile.is_initial_sync_required = True
    return result.calendars


def refresh_profile_calendars(*, profile: Profile) -> list[Calendar]:
    """Re-read the profile's calendar list: new calendars appear (and get polled), removed
    ones are marked deleted. Raises the adapter's errors."""
    provider_calendars = call_with_fresh_credentials(profile, lambda p: p.list_calendars())
    with transaction.atomic():
        return _store_calendar_list(profile, provider_calendars)


def discover_calendars(*, profile_id: int) -> list[Calendar]:
    """Read a connected profile's calendar list now (any kind of profile, OAuth included) and
    queue the first sync of each calendar found. Returns its live calendars; a provider error
    is logged and leaves the list for the tick to retry (a dead grant disconnects the profile).
    """
    profile = Profile.objects.select_related("account").get(pk=profile_id)
    if not profile.is_connected:
        return []
    try:
        calendars = refresh_profile_calendars(profile=profile)
    except base.AuthExpired as exc:
        with transaction.atomic():
            _disconnect_profile(profile, reason=str(exc)[:255])
        return []
    except base.ProviderError as exc:
        log.warning("calendars of %s not discovered yet: %s", profile.public_id, exc)
        return []
    live = [c for c in calendars if not c.is_deleted]
    for calendar in live:
        enqueue_after_commit(lambda pk=calendar.pk: enqueue_sync(pk), what="calendar sync")
    if live and PROVIDERS[profile.provider].supports_push:
        # Subscribe the new calendars now, not at the next maintenance run (15 minutes).
        enqueue_after_commit(enqueue_push_maintenance, what="push maintenance")
    return live


def maybe_refresh_calendars(profile_id: int) -> None:
    """After a successful poll: refresh the profile's calendar list, at most once per
    SYNC_CALENDAR_LIST_REFRESH_SECONDS (claimed by a conditional UPDATE, so concurrent polls do
    it once). Its own period, longer than the poll's: with one, a profile whose polls run late
    (a backlog) read its list again at nearly every poll, 4 requests and 19 queries each time.
    A failure here is logged; it does not turn the poll into a failed one."""
    now = timezone.now()
    due = now - timedelta(seconds=settings.SYNC_CALENDAR_LIST_REFRESH_SECONDS)
    try:
        claimed = (
            ProfileSyncState.objects.filter(profile_id=profile_id)
            .filter(Q(calendars_refreshed_at__isnull=True) | Q(calendars_refreshed_at__lt=due))
            .update(calendars_refreshed_at=now)
        )
        if claimed:  # once per period: only then is the profile loaded
            profile = Profile.objects.select_related("account").get(pk=profile_id)
            refresh_profile_calendars(profile=profile)
    except (base.ProviderError, DatabaseError) as exc:
        log.warning("calendar list of profile %s not refreshed: %s", profile_id, exc)


# --- syncing one calendar ---
Progress = Callable[[int, int], None]  # (events applied so far, events to apply)


@dataclass
class SyncOutcome:
    calendar_id: int
    status: str  # synced | unchanged | skipped | failed
    full: bool = False
    result: ApplyResult = field(default_factory=ApplyResult)
    error: str = ""
    skipped_resources: int = 0
    has_push: bool = False  # the provider can notify us (a follow-up sync may be due)
    recovered: bool = False  # succeeded after failed ones: ends a failure streak
    profile_id: int | None = None  # set once the sync reached the provider
    released: bool = False  # the lease was already given back (with the unchanged result)

    @property
    def fetched(self) -> int:
        """Events the provider reported: every one was created, updated or left unchanged."""
        r = self.result
        return r.created + r.updated + r.unchanged

    def __str__(self) -> str:
        if self.status in ("synced", "unchanged"):
            r = self.result
            kind = "full" if self.full else "incremental"
            text = (
                f"{self.status} ({kind}): {r.created} created, {r.updated} updated, "
                f"{r.unchanged} unchanged of {self.fetched} fetched; {r.deleted} deleted"
            )
            if self.skipped_resources:
                text += f"; {self.skipped_resources} unreadable resources kept as they were"
            return text
        return f"{self.status}: {self.error}"


@metrics.observed_sync
def sync_calendar(
    *,
    calendar_id: int,
    full: bool = False,
    progress: Progress | None = None,
    claim: str = "",
    refresh_calendars: bool = True,
) -> SyncOutcome:
    """Bring one calendar's cache up to date with its provider. Idempotent; single-flight.

    Takes a lease on the calendar by conditional UPDATE (a second sync of the same calendar
    returns `skipped`); on a new day re-expands the stored series into the new window first,
    without asking the provider; fetches changes since the stored cursor (a full fetch when
    there is none, when `full`, or when the provider rejects the cursor — mark-and-sweep, the
    cache is never blanked); applies them in batches of APPLY_BATCH_EVENTS and stores the new
    cursor with the last one. `progress(done, total)` is
    called after each batch. Every failure — provider error, database error or a bug — is
    recorded on the sync state and decides the next poll (backoff, Retry-After) or disconnects
    the profile (auth failure); none is raised.

    `claim`: the tick's claim on this poll (sync.services.polling): the sync runs only while
    the calendar still holds it, so a poll task queued twice syncs once. `refresh_calendars`
    False leaves the profile's calendar list to the caller (a poll of several calendars
    refreshes it once).
    """
    token = uuid.uuid4().hex
    leased = _take_lease(calendar_id, token, claim)
    if not leased and not claim:
        _, created = CalendarSyncState.objects.get_or_create(
            calendar_id=calendar_id, defaults={"next_poll_at": timezone.now()}
        )
        leased = created and _take_lease(calendar_id, token, claim)
    if not leased:
        return SyncOutcome(calendar_id, "skipped", error="another sync of it is running")
    outcome = None
    try:
        outcome = _sync_leased(calendar_id, token, full, progress)
    except ProfileBusy as exc:
        outcome = _postpone(calendar_id, token, exc)
    except Exception as exc:  # noqa: BLE001 - recorded where support staff look, not lost
        outcome = _record_failure_safely(calendar_id, exc, token)
        metrics.count_sync_error(exc)
    finally:
        if outcome is None or not outcome.released:
            _release_lease(calendar_id, token)
    # Unchanged polls are the bulk and no news, unless one ends a run of failures.
    if outcome.status in ("synced", "failed") or outcome.recovered:
        activity.record_sync(outcome)
    if outcome.status == "synced" and outcome.result.changed:
        _kick_relay(calendar_id)
    if outcome.status in ("synced", "unchanged"):
        if refresh_calendars and outcome.profile_id is not None:
            maybe_refresh_calendars(outcome.profile_id)
        if outcome.has_push:
            _follow_up_push(calendar_id)
    return outcome


def _take_lease(calendar_id: int, token: str, claim: str) -> bool:
    """The single-flight lease, by conditional UPDATE: only while no other sync holds it (and,
    for a poll, only while the tick's claim is still this one). Any sync taking the lease
    consumes the claim, so a queued poll that a push sync overtook does nothing."""
    now = timezone.now()
    states = CalendarSyncState.objects.filter(calendar_id=calendar_id).filter(
        Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    )
    if claim:
        states = states.filter(poll_claim=claim)
    return bool(
        states.update(
            locked_until=now + timedelta(seconds=LEASE_SECONDS),
            lock_token=token,
            last_attempt_at=now,
            push_requested_at=None,  # this sync serves every notification received so far
            poll_claim="",
        )
    )


def _kick_relay(calendar_id: int) -> None:
    """Changes just committed: queue their relay where PUSH_ENQUEUE_ON_COMMIT asks for it (the
    delivery process needs no trigger: the change log's NOTIFY wakes it)."""
    try:
        account_id = (
            Calendar.objects.filter(pk=calendar_id)
            .values_list("profile__account_id", flat=True)
            .first()
        )
        if account_id is not None:
            notification_services.kick_relay(account_id=account_id)
    except DatabaseError as exc:  # the minute sweep relays them anyway
        log.warning("relay after the sync of calendar %s not queued: %s", calendar_id, exc)


def _follow_up_push(calendar_id: int) -> None:
    """A provider notification that came while we ran was left to us: queue its sync."""
    try:
        if CalendarSyncState.objects.filter(
            calendar_id=calendar_id, push_requested_at__isnull=False
        ).exists():
            enqueue_now(lambda: enqueue_sync(calendar_id), what="push follow-up sync")
    except DatabaseError as exc:  # its next poll (made due now by _save_success) serves it
        log.warning("push follow-up of calendar %s not queued: %s", calendar_id, exc)


def _postpone(calendar_id: int, token: str, exc: ProfileBusy) -> SyncOutcome:
    """The profile's other calls hold every request slot: poll again shortly. Not a failure:
    nothing went wrong at the provider, so no backoff and no error on record."""
    CalendarSyncState.objects.filter(calendar_id=calendar_id, lock_token=token).update(
        next_poll_at=timezone.now() + timedelta(seconds=exc.retry_after or 15)
    )
    log.info("sync of calendar %s postponed: %s", calendar_id, exc)
    return SyncOutcome(calendar_id, "skipped", error=str(exc))


def _release_lease(calendar_id: int, token: str) -> None:
    try:
        CalendarSyncState.objects.filter(calendar_id=calendar_id, lock_token=token).update(
            locked_until=None, lock_token=""
        )
    except DatabaseError as exc:
        # The lease then lapses by itself (LEASE_SECONDS); nothing else is held.
        log.warning("lease on calendar %s not released: %s", calendar_id, exc)


def _record_failure_safely(calendar_id: int, exc: Exception, token: str) -> SyncOutcome:
    """_record_failure, unless the database refuses that too: then the failure is only
    logged, and the lease lapses so that the next poll retries."""
    try:
        return _record_failure(calendar_id, exc, token)
    except DatabaseError as db_exc:
        log.warning(
            "sync of calendar %s failed (%s: %s) and could not be recorded: %s",
            calendar_id,
            type(exc).__name__,
            exc,
            db_exc,
        )
        return SyncOutcome(calendar_id, "failed", error=f"{type(exc).__name__}: {exc}")


def lock_owner(profile: Profile) -> None:
    """Inside a transaction that writes sync bookkeeping of `profile` and may touch the profile
    or its account (initial-sync flag, disconnect, change log): lock the profile row, then the
    account row, before any event or sync state row.

    The one lock order (calendars.services.locks) is profile -> calendars -> account -> events
    -> event writes -> sync state: a relink locks the profile and updates calendars and sync
    states; a sync batch writes events and the change log, which locks the account, and renews
    its lease on the sync state last. Taking them in another order let a relink and a sync
    deadlock each other on PostgreSQL. FOR NO KEY UPDATE, for the reason given there."""
    list(Profile.objects.select_for_update(no_key=True).filter(pk=profile.pk).values_list("pk"))
    calendar_services.lock_for_event_changes(account_id=profile.account_id)


class LeaseLost(Exception):
    """Another sync took the calendar over (our lease lapsed); stop writing."""


def _hold_lease(state: CalendarSyncState, token: str) -> CalendarSyncState:
    """Inside a write transaction: the state row, locked, while the lease is still ours; the
    lease is renewed (every batch is a heartbeat, so a long sync is never taken over)."""
    renewed = CalendarSyncState.objects.filter(pk=state.pk, lock_token=token).update(
        locked_until=timezone.now() + timedelta(seconds=LEASE_SECONDS)
    )
    if not renewed:
        raise LeaseLost
    return CalendarSyncState.objects.select_for_update().get(pk=state.pk)


def _sync_leased(
    calendar_id: int, token: str, full: bool, progress: Progress | None
) -> SyncOutcome:
    state = CalendarSyncState.objects.select_related("calendar__profile__account").get(
        calendar_id=calendar_id
    )
    calendar = state.calendar
    profile = calendar.profile
    if not profile.is_connected or calendar.is_deleted:
        return SyncOutcome(calendar_id, "skipped", error="profile disconnected or calendar deleted")
    now = timezone.now()
    window = current_window(now)
    window_rolled = state.window_start != window.start.date()
    full = full or not state.cursor
    rolled = ApplyResult()
    if window_rolled and not full:
        rolled = _roll_window(calendar, state, token, window, now, progress)
        window_rolled = False

    def known_versions() -> dict[str, str]:
        return dict(SyncedResource.objects.filter(calendar=calendar).values_list("href", "etag"))

    def known_payloads(resource_ids: list[str]) -> dict[str, str]:
        return resources.stored_series(calendar, resource_ids)

    def fetch(provider: base.Provider) -> tuple[base.ChangeSet, bool]:
        try:
            changes = provider.fetch_changes(
                calendar.provider_calendar_id,
                None if full else state.cursor,
                known_versions=known_versions,
                known_payloads=known_payloads,
                window=window,
            )
            return changes, full
        except base.CursorInvalid:
            # Routine (Google/Graph/CalDAV all do it): resync by mark-and-sweep.
            log.info("cursor of %s rejected: full resync", calendar.public_id)
            changes = provider.fetch_changes(
                calendar.provider_calendar_id,
                None,
                known_versions=known_versions,
                known_payloads=known_payloads,
                window=window,
            )
            return changes, True

    changes, full = call_with_fresh_credentials(profile, fetch)

    unchanged = changes.unchanged and not rolled.changed
    outcome = SyncOutcome(
        calendar_id,
        "unchanged" if unchanged else "synced",
        full=full,
        has_push=PROVIDERS[profile.provider].supports_push,
        recovered=state.consecutive_failures > 0,
        profile_id=profile.pk,
    )
    if unchanged and not profile.is_initial_sync_required:
        # The bulk of polls: nothing to write but the state row, so one conditional UPDATE
        # (while the lease is ours) records it and releases the lease; no profile or account
        # lock is needed, since no event, change log or profile row is touched.
        interval = poll_interval(
            calendar_id=calendar_id,
            last_changed_at=state.last_changed_at,
            has_push=outcome.has_push,
        )
        leased = CalendarSyncState.objects.filter(pk=state.pk, lock_token=token)
        if not record_unchanged_poll(
            leased, interval=interval, cursor=changes.cursor, window_start=window.start.date()
        ):
            return SyncOutcome(calendar_id, "skipped", error="lease lost")
        outcome.released = True
        return outcome
    outcome.result.add(rolled)
    plan = None
    if not changes.unchanged:
        plan = resources.plan_changes(
            calendar=calendar, changes=changes, window=window, reuse_unchanged=not window_rolled
        )
        outcome.skipped_resources = plan.skipped
        outcome.result.unchanged += plan.kept_events
    try:
        if plan is not None:
            _apply_plan(calendar, plan, state, token, outcome.result, now, progress)
        with transaction.atomic():
            # The cursor is saved only with the data it covers, and only while we hold the lease.
            lock_owner(profile)
            locked = _hold_lease(state, token)
            if plan is not None:
                resources.store_resource_map(calendar, plan.stored, {}, plan.gone_hrefs)
            _save_success(
                locked,
                changes,
                window,
                has_push=outcome.has_push,
                changed=outcome.result.changed,
            )
            _complete_initial_sync_if_done(profile)
    except LeaseLost:
        return SyncOutcome(calendar_id, "skipped", error="lease lost")
    return outcome


def _roll_window(
    calendar: Calendar,
    state: CalendarSyncState,
    token: str,
    window: Window,
    now: datetime,
    progress: Progress | None,
) -> ApplyResult:
    """A new day: re-expand the calendar's recurring series into the new window from their
    stored payload (its adapter expands it), without asking the provider (so it works while
    the provider is down, and costs no full fetch). Instances that aged out are kept; new ones
    at the far end appear.
    The window is saved with the last batch; the provider's own changes follow as usual."""
    series = [
        base.ProviderResource(resource_id=r.href, version=r.etag, payload=r.series_payload)
        for r in SyncedResource.objects.filter(calendar=calendar).exclude(series_payload="")
    ]
    result = ApplyResult()
    if series:
        plan = resources.plan_changes(
            calendar=calendar,
            changes=base.ChangeSet(cursor="", resources=series),
            window=window,
            reuse_unchanged=False,
        )
        _apply_plan(calendar, plan, state, token, result, now, progress)
    with transaction.atomic():
        lock_owner(calendar.profile)
        locked = _hold_lease(state, token)
        locked.window_start = window.start.date()
        locked.save(update_fields=["window_start", "updated_at"])
    log.info("window of %s rolled to %s: %s", calendar.public_id, window.start.date(), result)
    return result


def _save_success(
    locked: CalendarSyncState,
    changes: base.ChangeSet,
    window: Window,
    *,
    has_push: bool,
    changed: bool,
) -> None:
    done = timezone.now()
    if changed:
        locked.last_changed_at = done
    interval = poll_interval(
        calendar_id=locked.calendar_id, last_changed_at=locked.last_changed_at, has_push=has_push
    )
    locked.cursor = changes.cursor
    locked.window_start = window.start.date()
    locked.last_synced_at = done
    locked.last_error = locked.last_error_class = ""
    locked.consecutive_failures = 0
    # A notification that came during this sync makes the next poll due at once, so that it
    # is served even if its follow-up task is lost.
    locked.next_poll_at = done if locked.push_requested_at else done + _poll_delay(interval)
    locked.save(
        update_fields=[
            "cursor",
            "window_start",
            "last_synced_at",
            "last_error",
            "last_error_class",
            "consecutive_failures",
            "next_poll_at",
            "last_changed_at",
            "updated_at",
        ]
    )


def _apply_plan(
    calendar: Calendar,
    plan: resources.ChangePlan,
    state: CalendarSyncState,
    token: str,
    result: ApplyResult,
    snapshot_taken_at: datetime,
    progress: Progress | None,
) -> None:
    """Apply the plan's upserts, then its deletions, one short transaction per batch.

    An upsert batch holds whole resources (at least one, up to APPLY_BATCH_EVENTS events) and
    writes their resource-map rows with their events, so the map never lags behind the cache.
    A crash between batches loses nothing: the cursor is not saved yet, so the next sync
    fetches the same changes again, and what was already applied compares as unchanged.
    `snapshot_taken_at`: when the provider was asked; events an API write changed at the
    provider after that are newer than the snapshot and are left alone."""
    total, done = plan.size, 0
    for hrefs, upserts, deletions in resources.batches(plan):
        with transaction.atomic():
            applied = resources.apply_batch(
                calendar, plan, hrefs, upserts, deletions, writes_done_since=snapshot_taken_at
            )
            # Last, in lock order (the account row, locked by the change log, comes before
            # the sync state); a lost lease rolls the batch back.
            _hold_lease(state, token)
        result.add(applied)
        done += len(upserts) + len(deletions)
        if progress is not None:
            progress(done, total)


def _complete_initial_sync_if_done(profile: Profile) -> None:
    """Clear the profile's initial-sync flag once every live calendar has synced once."""
    if not profile.is_initial_sync_required:
        return
    pending = CalendarSyncState.objects.filter(
        calendar__profile=profile, calendar__is_deleted=False, last_synced_at__isnull=True
    ).exists()
    if pending:
        return
    with transaction.atomic():
        cleared = Profile.objects.filter(pk=profile.pk, is_initial_sync_required=True).update(
            is_initial_sync_required=False
        )
        if cleared:
            profile.is_initial_sync_required = False
            on_initial_sync_completed(profile)


def _record_failure(calendar_id: int, exc: Exception, token: str) -> SyncOutcome:
    """Record a failed sync on its state: when, what, and the next poll (exponential backoff,
    or Retry-After); disconnect the profile on an auth failure. The cursor and the cached data
    are left as they were: nothing is lost. Logged once: one line for a provider error or a
    busy database, the traceback for anything else (a bug)."""
    state = (
        CalendarSyncState.objects.select_related("calendar__profile")
        .filter(calendar_id=calendar_id)
        .first()
    )
    if state is None:  # the calendar is gone meanwhile
        return SyncOutcome(calendar_id, "failed", error=f"{type(exc).__name__}: {exc}")
    now = timezone.now()
    failures = state.consecutive_failures + 1
    delay = backoff_delay(
        attempt=failures,
        base_seconds=settings.SYNC_POLL_INTERVAL_SECONDS,
        cap_seconds=MAX_BACKOFF_SECONDS,
        jitter=JITTER,
        error=exc,
    )
    with transaction.atomic():
        lock_owner(state.calendar.profile)
        recorded = CalendarSyncState.objects.filter(pk=state.pk, lock_token=token).update(
            last_error=str(exc)[:1000] or type(exc).__name__,
            last_error_class=type(exc).__name__,
            last_error_at=now,
            consecutive_failures=failures,
            next_poll_at=now + delay,
        )
        # Only while the lease is ours: a sync that took over decides for itself.
        if recorded and isinstance(exc, base.AuthExpired):
            _disconnect_profile(state.calendar.profile, reason=str(exc)[:255])
    name = state.calendar.public_id
    if isinstance(exc, base.ProviderError) or is_transient_database_error(exc):
        log.warning("sync of %s failed (%s): %s", name, type(exc).__name__, exc)
    else:
        log.error("sync of %s failed", name, exc_info=(type(exc), exc, exc.__traceback__))
    return SyncOutcome(calendar_id, "failed", error=f"{type(exc).__name__}: {exc}")


def _disconnect_profile(profile: Profile, *, reason: str) -> None:
    """Mark the profile disconnected (polling and writes stop until it is relinked). The
    accounts service tells integrators (`profile_disconnected`) inside its transaction, once."""
    log.info("disconnecting profile %s: %s", profile.public_id, reason)
    account_services.disconnect_profile(profile=profile, reason=reason)
    profile.refresh_from_db(fields=["status", "disconnected_reason", "disconnected_at"])


def sync_profile(*, profile_id: int) -> list[SyncOutcome]:
    """Refresh a profile's calendar list, then sync each live calendar now (foreground)."""
    profile = Profile.objects.select_related("account").get(pk=profile_id)
    try:
        calendars = refresh_profile_calendars(profile=profile)
    except base.AuthExpired as exc:
        with transaction.atomic():
            _disconnect_profile(profile, reason=str(exc)[:255])
        raise
    return [sync_calendar(calendar_id=c.pk) for c in calendars if not c.is_deleted]


# --- polling (the tick and poll tasks: sync.services.polling) ---
def enqueue_due_discoveries(*, now: datetime | None = None, limit: int = 100) -> list[int]:
    """Connected profiles without a live calendar (a discovery that failed, or an account that
    had none) are not reached by calendar syncs: claim those whose list is older than a poll
    interval (conditional UPDATE) and queue their discovery. Returns the profile ids."""
    now = now or timezone.now()
    due = now - timedelta(seconds=settings.SYNC_POLL_INTERVAL_SECONDS)
    stale = (
        ProfileSyncState.objects.filter(
            profile__status=Profile.Status.CONNECTED, profile__provider__in=list(PROVIDERS)
        )
        .filter(Q(calendars_refreshed_at__isnull=True) | Q(calendars_refreshed_at__lt=due))
        .exclude(profile__calendars__is_deleted=False)
    )
    claimed = []
    for pk, profile_id in stale.values_list("pk", "profile_id")[:limit]:
        if (
            ProfileSyncState.objects.filter(pk=pk)
            .filter(Q(calendars_refreshed_at__isnull=True) | Q(calendars_refreshed_at__lt=due))
            .update(calendars_refreshed_at=now)
        ):
            claimed.append(profile_id)
            # Claimed first: a broker that refuses it costs this profile one interval, and
            # the others are still queued.
            enqueue_now(lambda p=profile_id: enqueue_calendar_discovery(p), what="discovery")
    return claimed


def request_sync(*, calendar_ids: Sequence[int], full: bool = False) -> int:
    """Make calendars due now and enqueue their sync (the console's "Sync now"), or with
    `full` their full resync ("Full resync"). Returns how many calendars were made due."""
    enqueue = enqueue_full_sync if full else enqueue_sync
    with transaction.atomic():
        count = CalendarSyncState.objects.filter(calendar_id__in=calendar_ids).update(
            next_poll_at=timezone.now()
        )
        for calendar_id in calendar_ids:
            enqueue_after_commit(lambda pk=calendar_id: enqueue(pk), what="calendar sync")
    return count
