"""Polling: the tick that claims due calendars, and the poll task that syncs them a profile at
a time (docs/operations.md, Polling).

The tick claims due sync states through the next_poll_at index (no join until the claimed rows
are known), one batch after another until nothing is due, the broker's queue is full or the
run's time is up. It groups the claimed calendars by profile and queues one poll task per
profile (at most POLL_CHUNK calendars), so a profile's calendars cost one task and, where the
provider has one, one account-wide "what is unchanged" request. A claim is a token on the
state: the task polls only calendars that still carry it, so a task queued twice, or one that
a sync overtook, does nothing. Each poll task ends by claiming what became due meanwhile once
the queue is down to half its depth, so that polling keeps pace with the workers while they
are busy. When they catch up the chain stops: the delivery process (sync/services/delivery.py)
then claims each poll as it falls due (`hand_out_polls`), and without it the minute tick does,
a minute late at worst. The tick also recovers claims whose task was lost once CLAIM_SECONDS
have passed, and those of a task that started and died (its worker killed) once the longest a
task may run has passed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Min, Q
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.tasks import async_task

import metrics
from accounts.models import Profile
from accounts.queueing import enqueue_after_commit
from calendars.models import Calendar
from sync.models import CalendarSyncState
from sync.providers import base
from sync.providers.registry import PROVIDERS
from sync.services import engine
from sync.services.credentials import call_with_fresh_credentials
from sync.services.governor import ProfileBusy, lease_seconds
from sync.services.resources import current_window

log = logging.getLogger(__name__)

# A claimed calendar whose task never ran becomes due again after this.
CLAIM_SECONDS = 10 * 60
TICK_BATCH = 500  # calendars claimed per transaction
TICK_SECONDS = 20  # a tick claims batch after batch for at most this long
POLL_CHUNK = 50  # calendars per poll task at most (a profile with more gets several)
# A profile's calendars due within this part of the poll interval of a claimed one are polled
# with it: jitter spreads them apart (JITTER each way), and together they cost one request.
COALESCE_FRACTION = 2 * engine.JITTER

Enqueue = Callable[[list[int], str], None]


def enqueue_poll(calendar_ids: list[int], claim: str) -> None:
    """Queue the poll of one profile's claimed calendars (a seam: tests replace it)."""
    async_task(
        "sync.tasks.poll_calendars",
        calendar_ids,
        claim,
        save=False,  # accounts/queueing.py: only failures are stored
        task_name=f"poll_calendars:{calendar_ids[0]}+{len(calendar_ids) - 1}",
    )


def queued_tasks() -> int:
    """Tasks waiting in the broker (not yet taken by a worker)."""
    return get_broker().queue_size()


@dataclass
class Claimed:
    """One claim: its token and the calendars it covers, grouped into poll tasks."""

    claim: str
    groups: list[list[int]] = field(default_factory=list)
    parked: int = 0

    @property
    def calendar_ids(self) -> list[int]:
        return [calendar_id for group in self.groups for calendar_id in group]


def enqueue_due_syncs(
    *,
    now: datetime | None = None,
    limit: int | None = None,
    enqueue: Enqueue | None = None,
    seconds: float = TICK_SECONDS,
) -> list[int]:
    """The tick: claim due calendars and queue their poll tasks, batch after batch, until
    nothing is due, the broker holds SYNC_POLL_QUEUE_DEPTH tasks, `limit` calendars are
    claimed or `seconds` have passed; then queue the discovery of profiles left without a
    calendar. Returns the claimed calendar ids."""
    claimed = claim_and_enqueue(now=now, limit=limit, enqueue=enqueue, seconds=seconds)
    engine.enqueue_due_discoveries(now=now)
    return claimed


def claim_and_enqueue(
    *,
    now: datetime | None = None,
    limit: int | None = None,
    enqueue: Enqueue | None = None,
    seconds: float = TICK_SECONDS,
    min_room: int = 1,
) -> list[int]:
    """The tick's claiming loop (see enqueue_due_syncs), also run at the end of each poll; it
    claims only while the queue has room for `min_room` tasks."""
    enqueue = enqueue or enqueue_poll
    deadline = time.monotonic() + seconds
    claimed: list[int] = []
    while limit is None or len(claimed) < limit:
        room = settings.SYNC_POLL_QUEUE_DEPTH - queued_tasks()
        if room < max(1, min_room):
            break  # the workers are busy: what is due waits here, not in the queue
        batch = TICK_BATCH if limit is None else min(TICK_BATCH, limit - len(claimed))
        result = claim_due(now=now or timezone.now(), tasks=room, calendars=batch)
        for group in result.groups:
            enqueue_after_commit(
                lambda ids=group, claim=result.claim: enqueue(ids, claim), what="calendar poll"
            )
        claimed += result.calendar_ids
        if (not result.groups and not result.parked) or time.monotonic() > deadline:
            break
    return claimed


def claim_due(*, now: datetime, tasks: int, calendars: int) -> Claimed:
    """Claim up to `calendars` due calendars, in at most `tasks` poll tasks (the `tasks` oldest
    due, and their profiles' calendars due soon), in one transaction: SELECT ... FOR UPDATE
    SKIP LOCKED over the next_poll_at index, so concurrent ticks never claim the same
    calendar; each claimed poll moves CLAIM_SECONDS ahead and carries the claim's token. A due
    calendar that is deleted, or whose profile is not connected, is parked (next_poll_at
    empty) instead."""
    result = Claimed(claim=uuid.uuid4().hex)
    with transaction.atomic():
        # One due calendar per task to start from: its profile's other due ones join it as
        # siblings. Locking more (500) while the queue had room for a few tasks made each
        # concurrent claimer skip the others' rows, and split profiles into one-calendar tasks.
        rows = _lock_due(now, min(calendars, tasks))
        parked = [pk for pk, _, _, pollable in rows if not pollable]
        if parked:
            CalendarSyncState.objects.filter(pk__in=parked).update(next_poll_at=None, poll_claim="")
        result.parked = len(parked)
        by_profile: dict[int, list[tuple[int, int]]] = {}
        for pk, calendar_id, profile_id, pollable in rows:
            if pollable and (profile_id in by_profile or len(by_profile) < tasks):
                by_profile.setdefault(profile_id, []).append((pk, calendar_id))
        _add_soon_due_siblings(by_profile, now, room=calendars - len(rows))
        CalendarSyncState.objects.filter(
            pk__in=[pk for group in by_profile.values() for pk, _ in group]
        ).update(next_poll_at=now + timedelta(seconds=CLAIM_SECONDS), poll_claim=result.claim)
    for group in by_profile.values():
        ids = [calendar_id for _, calendar_id in group]
        result.groups += [ids[i : i + POLL_CHUNK] for i in range(0, len(ids), POLL_CHUNK)]
    return result


def _lock_due(now: datetime, calendars: int) -> list[tuple[int, int, int, bool]]:
    """Lock up to `calendars` due states, oldest due first: (state pk, calendar id, profile id,
    whether it can be polled). The lock reads the sync state alone, so that its plan is a
    range scan of the index (joined to the calendars, PostgreSQL hashed every calendar and
    profile: 10 ms at 10,000); the claimed calendars' owners are read next, by primary key."""
    due = dict(
        CalendarSyncState.objects.due(now)
        .select_for_update(skip_locked=True)
        .values_list("calendar_id", "pk")[:calendars]
    )
    owners = Calendar.objects.filter(pk__in=list(due)).values_list(
        "pk", "profile_id", "is_deleted", "profile__status"
    )
    pollable = {
        calendar_id: (profile_id, not is_deleted and status == Profile.Status.CONNECTED)
        for calendar_id, profile_id, is_deleted, status in owners
    }
    return [(due[c], c, *pollable[c]) for c in due if c in pollable]


def _add_soon_due_siblings(
    by_profile: dict[int, list[tuple[int, int]]], now: datetime, *, room: int
) -> None:
    """Add to each claimed profile up to `room` of its other calendars due within
    COALESCE_FRACTION of the poll interval (skipping those another claim holds), so that they
    are polled together."""
    if not by_profile or room <= 0:
        return
    horizon = now + timedelta(seconds=settings.SYNC_POLL_INTERVAL_SECONDS * COALESCE_FRACTION)
    taken = {calendar_id for group in by_profile.values() for _, calendar_id in group}
    owner = {
        calendar_id: profile_id
        for calendar_id, profile_id in Calendar.objects.filter(
            profile_id__in=list(by_profile), is_deleted=False
        ).values_list("pk", "profile_id")
        if calendar_id not in taken
    }
    if not owner:
        return
    siblings = (
        CalendarSyncState.objects.due(horizon)
        .filter(calendar_id__in=list(owner))
        .select_for_update(skip_locked=True)
        .values_list("pk", "calendar_id")[:room]
    )
    for pk, calendar_id in siblings:
        by_profile[owner[calendar_id]].append((pk, calendar_id))


# --- the claim loop of the delivery process ---
# It looks again at least this often, and at most this often (a full queue is looked at again
# this soon); each look claims for at most HAND_OUT_SECONDS, so that a stop is not held up.
HAND_OUT_LONGEST_SLEEP = 2.0
HAND_OUT_SHORTEST_SLEEP = 0.25
HAND_OUT_SECONDS = 2.0


def hand_out_polls() -> float:
    """Claim and queue what is due, as the tick does; returns how long to sleep before the next
    look: until the next poll falls due, within the bounds above. Nothing claimable (due and
    not leased), nothing claimed: on SQLite a claim takes the database's write lock."""
    if CalendarSyncState.objects.due(timezone.now()).exists():
        claim_and_enqueue(seconds=HAND_OUT_SECONDS)
        if CalendarSyncState.objects.due(timezone.now()).exists():
            return HAND_OUT_SHORTEST_SLEEP  # the queue is full: the workers are behind
    now = timezone.now()
    upcoming = CalendarSyncState.objects.filter(next_poll_at__gt=now).aggregate(
        at=Min("next_poll_at")
    )["at"]
    if upcoming is None:
        return HAND_OUT_LONGEST_SLEEP
    wait = (upcoming - now).total_seconds()
    return min(HAND_OUT_LONGEST_SLEEP, max(HAND_OUT_SHORTEST_SLEEP, wait))


# --- the poll task ---
def poll_calendars(*, calendar_ids: Sequence[int], claim: str) -> list[engine.SyncOutcome]:
    """Poll claimed calendars of one profile: those still carrying `claim` (the others were
    polled already or claimed again: skipped). Where several are to be polled, the adapter is
    asked once which of them are certainly unchanged (`Provider.unchanged_calendars`, one
    request for a CalDAV home); those are recorded as unchanged polls without a fetch, each by
    a conditional UPDATE that fails if another sync holds the calendar; the rest go through
    `sync_calendar`, which alone decides failures and backoff. Then the profile's calendar list
    is refreshed if its time has come, and what became due meanwhile is claimed as far as the
    queue has room. Returns one outcome per calendar polled."""
    claim = _take_claim(calendar_ids, claim)
    states = list(
        CalendarSyncState.objects.filter(
            calendar_id__in=list(calendar_ids), poll_claim=claim
        ).select_related("calendar__profile")
    )
    outcomes = []
    for profile, group in _by_profile(states).items():
        polled = _poll_profile(profile, group, claim)
        if any(o.status in ("synced", "unchanged") for o in polled):
            engine.maybe_refresh_calendars(profile.pk)
        outcomes += polled
    _claim_next()
    return outcomes


def _take_claim(calendar_ids: Sequence[int], claim: str) -> str:
    """Swap the tick's claim for this run's own token, in one conditional UPDATE: a copy of the
    task (queued twice, or redelivered by the broker) then finds nothing, and does not even
    ask the provider. The claim then lasts only as long as a task may run (the worker stops it
    at Q_TIMEOUT), not CLAIM_SECONDS, which also covers the wait in the queue: a run that
    dies gives its calendars back within about 2.5 minutes, inside the 5-minute promise (the
    one it was syncing when its worker was killed outright waits for the sync's own lease)."""
    run = uuid.uuid4().hex
    CalendarSyncState.objects.filter(calendar_id__in=list(calendar_ids), poll_claim=claim).update(
        poll_claim=run, next_poll_at=timezone.now() + timedelta(seconds=lease_seconds())
    )
    return run


def _poll_profile(
    profile: Profile, states: list[CalendarSyncState], claim: str
) -> list[engine.SyncOutcome]:
    """Each calendar in turn, within half the task timeout: a task the worker kills leaves the
    calendars it had not reached claimed until its claim lapses (_take_claim), so past the
    budget the rest are handed back, due now, for the next claim."""
    deadline = time.monotonic() + settings.Q_CLUSTER["timeout"] / 2
    unchanged = _unchanged_at_provider(profile, states)
    outcomes = []
    for index, state in enumerate(states):
        if time.monotonic() > deadline:
            _hand_back(states[index:], claim)
            break
        if state.pk in unchanged:
            outcomes.append(_record_unchanged_or_sync(state, claim, profile))
        else:
            outcomes.append(_sync(state, claim))
    return outcomes


def _sync(state: CalendarSyncState, claim: str) -> engine.SyncOutcome:
    return engine.sync_calendar(calendar_id=state.calendar_id, claim=claim, refresh_calendars=False)


def _record_unchanged_or_sync(
    state: CalendarSyncState, claim: str, profile: Profile
) -> engine.SyncOutcome:
    """A database error while recording the cheap answer falls back to the calendar's own
    sync, which records whatever goes wrong (it raises nothing)."""
    try:
        return _record_unchanged(state, claim, profile)
    except DatabaseError as exc:
        log.warning("unchanged poll of calendar %s not recorded: %s", state.calendar_id, exc)
        return _sync(state, claim)


def _hand_back(states: list[CalendarSyncState], claim: str) -> None:
    log.info("poll task over its time budget: %d calendars handed back", len(states))
    CalendarSyncState.objects.filter(pk__in=[s.pk for s in states], poll_claim=claim).update(
        next_poll_at=timezone.now(), poll_claim=""
    )


def _by_profile(states: list[CalendarSyncState]) -> dict[Profile, list[CalendarSyncState]]:
    groups: dict[Profile, list[CalendarSyncState]] = {}
    for state in states:
        groups.setdefault(state.calendar.profile, []).append(state)
    return groups


def _unchanged_at_provider(profile: Profile, states: list[CalendarSyncState]) -> set[int]:
    """The states (pks) the provider says are certainly unchanged, asked only for calendars
    whose poll needs nothing else: a stored cursor, today's window, no failure streak to end,
    no notification to serve, and at least two of them (for one, its fetch costs the same).
    A provider error answers nothing: each calendar's own sync then meets it and records it."""
    if not profile.is_connected or profile.is_initial_sync_required:
        return set()
    if PROVIDERS[profile.provider].unchanged_calendars is base.Provider.unchanged_calendars:
        return set()  # no cheap check: asking would only cost a governor slot or a refresh
    today = current_window(timezone.now()).start.date()
    candidates = {
        state.calendar.provider_calendar_id: state
        for state in states
        if state.cursor
        and state.window_start == today
        and not state.consecutive_failures
        and state.push_requested_at is None
        and not state.calendar.is_deleted
    }
    if len(candidates) < 2:
        return set()
    cursors = {calendar_id: state.cursor for calendar_id, state in candidates.items()}
    try:
        unchanged = call_with_fresh_credentials(
            profile, lambda provider: provider.unchanged_calendars(cursors)
        )
    except (base.ProviderError, ProfileBusy) as exc:
        log.info("unchanged check of %s failed, polling each: %s", profile.public_id, exc)
        return set()
    except Exception:  # noqa: BLE001 - a bug or the database here must not abort the group
        log.exception("unchanged check of %s failed, polling each", profile.public_id)
        return set()
    return {candidates[calendar_id].pk for calendar_id in unchanged if calendar_id in candidates}


@metrics.observed_sync  # counted with the syncs, as the poll it replaces would be
def _record_unchanged(state: CalendarSyncState, claim: str, profile: Profile) -> engine.SyncOutcome:
    """An unchanged poll without a fetch, under the same rule as sync_calendar's lease: only
    while no sync holds the calendar and the claim is still ours."""
    now = timezone.now()
    has_push = PROVIDERS[profile.provider].supports_push
    interval = engine.poll_interval(
        calendar_id=state.calendar_id, last_changed_at=state.last_changed_at, has_push=has_push
    )
    free = CalendarSyncState.objects.filter(pk=state.pk, poll_claim=claim).filter(
        Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    )
    if not engine.record_unchanged_poll(free, interval=interval, last_attempt_at=now):
        return engine.SyncOutcome(state.calendar_id, "skipped", error="another sync of it ran")
    return engine.SyncOutcome(
        state.calendar_id, "unchanged", has_push=has_push, profile_id=profile.pk, released=True
    )


def _claim_next() -> None:
    """Keep the queue fed between ticks: once it is down to half its depth, claim what is due
    to fill it again (a claim per task, to add one task, cost as much as the poll itself). A
    failure is logged: the next tick claims it."""
    try:
        claim_and_enqueue(
            limit=TICK_BATCH, seconds=0, min_room=-(-settings.SYNC_POLL_QUEUE_DEPTH // 2)
        )
    except DatabaseError as exc:
        log.warning("next polls not claimed after a poll: %s", exc)
