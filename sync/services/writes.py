"""The write reconciler: applies ManagedEventWrite rows (the API's outbox) to the provider.

Flow per write: claim (short transaction, SKIP LOCKED, lease) -> per-event check under the
account's and the event's row locks (the newest write of an event is the truth; older ones are
superseded; one write per event at a provider at a time) -> provider calls outside any
transaction -> record the outcome (short transaction, same locks: the provider's
identity/version on the Event and the SyncedResource map, the cache brought in line with what
the provider now holds, the write DONE). Locks follow the one order of calendars.services.locks;
a transaction the database still aborts for a deadlock is run again. Retry state lives on the
row; the queue is only the trigger (a sweep every minute picks up retries and lost triggers).

The reconciler speaks desired state; each adapter maps it to its provider: `render_event` merges
the desired state into the payload the provider holds (CalDAV: the iCalendar text), and
`create_event` takes an idempotency key (the event's UID) that the adapter turns into its
provider's mechanism (CalDAV: the deterministic <uid>.ics with If-None-Match).

Idempotency: the provider is called only when the rendered payload differs from what it holds
(a re-run of an applied write makes no call); creates carry the idempotency key, updates and
deletes the version precondition, so a crash between a provider call and our commit, or two
workers racing, can neither duplicate an event nor apply an older state over a newer one (the
loser gets a Conflict and refetches).

Errors (sync/providers/base.py): RateLimited / TemporaryError (and unexpected exceptions) back
off exponentially with jitter (BASE_DELAY_SECONDS doubling, capped at MAX_DELAY_SECONDS,
Retry-After honoured) and give up as FAILED after MAX_ATTEMPTS attempts (about a day);
AuthExpired disconnects the profile (integrators are told) and keeps the write pending until it
is relinked; PermanentError (read-only or deleted calendar, invalid data) is FAILED at once.
FAILED writes are kept and can be retried from the admin (calendars.services.retry_event_write).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Profile
from accounts.queueing import enqueue_after_commit
from calendars.models import Calendar, Event, ManagedEventWrite
from calendars.services import lock_for_event_changes, retry_on_transaction_conflict
from calendars.services.writes import trigger_reconciler_on_commit
from sync.models import SyncedResource
from sync.providers import base
from sync.providers.registry import provider_class
from sync.services import engine, resources
from sync.services.backoff import backoff_delay
from sync.services.credentials import call_with_fresh_credentials
from sync.services.engine import _disconnect_profile
from sync.services.governor import ProfileBusy

log = logging.getLogger(__name__)

BATCH = 100
# One sweep keeps claiming batches for at most this long (the schedule runs every minute and
# django-q's task timeout is Q_TIMEOUT, 120 s by default).
SWEEP_BUDGET_SECONDS = 50
BASE_DELAY_SECONDS = 60
MAX_DELAY_SECONDS = 6 * 3600
JITTER = 0.2
# A delete of an unrecorded create looks this far around the event's last known time.
LOOKUP_PADDING = timedelta(days=1)
# 60 s doubling to the 6 h cap: the 12th failed attempt comes about 26 h after the first.
MAX_ATTEMPTS = 12
# Precondition failures (someone else wrote in between) re-merged within one attempt.
CONFLICT_RETRIES = 3

Status = ManagedEventWrite.Status
Operation = ManagedEventWrite.Operation


@dataclass
class ReconcileResult:
    """What one reconcile run did, by outcome: lists of write ids."""

    done: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)  # backoff, deferred, or profile disconnected
    lost: list[int] = field(default_factory=list)  # the lease was taken over / row changed

    _OUTCOMES = ("done", "superseded", "failed", "retrying", "lost")

    @property
    def claimed(self) -> int:
        return sum(len(getattr(self, name)) for name in self._OUTCOMES)

    def add(self, other: ReconcileResult) -> None:
        for name in self._OUTCOMES:
            getattr(self, name).extend(getattr(other, name))

    def __str__(self) -> str:
        return (
            f"{len(self.done)} done, {len(self.superseded)} superseded, {len(self.failed)} failed, "
            f"{len(self.retrying)} to retry"
        )


@dataclass(frozen=True)
class _Outcome:
    status: str  # done | superseded | failed | retrying | lost


@dataclass(frozen=True)
class _Written:
    """What the provider holds after a successful write (None payload: nothing there)."""

    resource_id: str
    version: str
    payload: str | None
    called: bool


# --- claiming ---
def reconcile_event_writes(
    *, write_ids: Sequence[int] | None = None, limit: int = BATCH, now: datetime | None = None
) -> ReconcileResult:
    """Claim due writes (those of `write_ids` only, if given) and apply them to the provider.

    Only pending writes whose attempt is due, that no live lease holds, of calendars of
    connected profiles are claimed (SELECT ... FOR UPDATE SKIP LOCKED, then a lease of
    EVENT_WRITE_LEASE_SECONDS), oldest first, at most `limit`. Never raises for a provider
    error: each write ends DONE, SUPERSEDED, FAILED or stays PENDING with its retry state recorded.
    Idempotent: a write already applied makes no provider call.
    """
    now = now or timezone.now()
    token = uuid.uuid4().hex
    with transaction.atomic():
        due = ManagedEventWrite.objects.due(now).filter(
            calendar__profile__status=Profile.Status.CONNECTED
        )
        if write_ids is not None:
            due = due.filter(pk__in=list(write_ids))
        claimed = list(
            due.select_for_update(skip_locked=True, of=("self",))
            .order_by("next_attempt_at", "id")
            .values_list("pk", flat=True)[:limit]
        )
        ManagedEventWrite.objects.filter(pk__in=claimed).update(
            locked_until=now + timedelta(seconds=settings.EVENT_WRITE_LEASE_SECONDS),
            lock_token=token,
        )
    result = ReconcileResult()
    for pk in claimed:
        try:
            outcome = _process(pk, token)
        except Exception:  # noqa: BLE001 - e.g. the database went away while recording
            # The write stays pending under its lease, which lapses: it is retried then.
            log.exception("event write %s could not be recorded", pk)
            outcome = _Outcome("retrying")
        getattr(result, outcome.status).append(pk)
    if claimed:
        log.info("reconciled %d event write(s): %s", len(claimed), result)
    return result


def reconcile_due_event_writes(
    *, budget_seconds: float = SWEEP_BUDGET_SECONDS, limit: int = BATCH
) -> ReconcileResult:
    """The sweep: reconcile batches of due writes until none is left or the time budget is
    spent (a backlog after an outage drains at provider speed, not one batch a minute).
    Overlapping sweeps are safe: claims skip what another reconciler holds."""
    deadline = time.monotonic() + budget_seconds
    total = ReconcileResult()
    while True:
        batch = reconcile_event_writes(limit=limit)
        total.add(batch)
        if batch.claimed < limit or time.monotonic() >= deadline:
            return total


# --- one write ---
def _process(pk: int, token: str) -> _Outcome:
    write = (
        ManagedEventWrite.objects.select_related("calendar__profile__account", "application")
        .filter(pk=pk, lock_token=token, status=Status.PENDING)
        .first()
    )
    if write is None:
        # Superseded (or finished) since the claim: give the lease back, so that the newer
        # write of the event does not wait for it to lapse.
        ManagedEventWrite.objects.filter(pk=pk, lock_token=token).update(
            locked_until=None, lock_token=""
        )
        return _Outcome("lost")
    paused_until = _profile_writes_paused_until(write)
    if paused_until is not None:
        return _defer(write, token, seconds=(paused_until - timezone.now()).total_seconds())
    gate = _enter(write, token)
    if gate is not None:
        return gate
    # Read after the gate, not with the write: one of its writes that just finished moved the
    # etag (or the gate folded older writes into this one).
    write.event = Event.objects.get(pk=write.event_id)
    event, calendar = write.event, write.calendar
    try:
        if calendar.is_deleted or calendar.is_readonly:
            raise base.PermanentError("the calendar is deleted or read-only")
        if write.operation == Operation.DELETE and _deletes_a_resource(calendar, event):
            written = call_with_fresh_credentials(
                calendar.profile, lambda provider: _delete(provider, write, event)
            )
        else:
            written = call_with_fresh_credentials(
                calendar.profile, lambda provider: _put(provider, write, event, calendar)
            )
    except ProfileBusy as exc:
        return _defer(write, token, seconds=exc.retry_after or 15)
    except base.AuthExpired as exc:
        return _auth_expired(write, token, exc)
    except base.PermanentError as exc:
        return _fail(write, token, exc)
    except (KeyError, ValueError) as exc:
        # A desired state the adapter cannot express (adapters raise InvalidData, a
        # PermanentError, for content they cannot read): retrying the same input cannot help.
        return _fail(write, token, base.PermanentError(f"{type(exc).__name__}: {exc}"[:500]))
    except base.ProviderError as exc:  # RateLimited, TemporaryError, Conflict (exhausted)
        return _retry_later(write, token, exc)
    except Exception as exc:  # noqa: BLE001 - a bug must not drop the write: retry, logged
        log.exception("event write %s failed unexpectedly", write.pk)
        return _retry_later(write, token, exc)
    return _record_success(write, token, written)


def _deletes_a_resource(calendar: Calendar, event: Event) -> bool:
    """Whether deleting `event` deletes its provider resource: a single event or a whole
    series, or one instance where each occurrence is a resource of its own (Graph). Elsewhere
    one instance is removed by an update of its series' resource (see _render)."""
    if event.original_start is None:
        return True
    return provider_class(calendar.profile.provider).instance_resources


@retry_on_transaction_conflict
def _enter(write: ManagedEventWrite, token: str) -> _Outcome | None:
    """Per-event gate, under the account's and the event's row locks. None: go ahead.

    - Another write of this event at the provider right now (a live lease): wait for it; a
      write in flight always runs to its end, so what it did is recorded.
    - A newer write exists: this one is folded into the newest pending write and superseded
      (never applied after it).
    - Otherwise this is the newest write: the older pending ones are folded into it. A desired
      state is not always complete (attendee invites/removals are changes, null reminders or
      transparency mean "leave as is", a participation change carries only the status), so
      superseding without folding would drop what they asked for.
    """
    now = timezone.now()
    with transaction.atomic():
        lock_for_event_changes(account_id=write.account_id, event_ids=[write.event_id])
        siblings = _live_siblings(write, now)
        if any(s.lock_token and s.locked_until and s.locked_until > now for s in siblings):
            return _defer(write, token, seconds=5)
        newer = [s for s in siblings if s.pk > write.pk]
        newest = next((s for s in reversed(newer) if s.status == Status.PENDING), None)
        if newest is not None:
            _absorb(newest, [write])
            return _finish(write, token, Status.SUPERSEDED)
        if newer:
            return _finish(write, token, Status.SUPERSEDED)  # a newer write already ran
        older = [s for s in siblings if s.pk < write.pk and s.status == Status.PENDING]
        if older:
            _absorb(write, older)
            ManagedEventWrite.objects.filter(pk__in=[w.pk for w in older]).update(
                status=Status.SUPERSEDED, completed_at=now, locked_until=None, lock_token=""
            )
    return None


def _live_siblings(write: ManagedEventWrite, now: datetime) -> list[ManagedEventWrite]:
    """The other writes of the event that the gate looks at, in id order, in one query: the
    newer ones, the pending ones and any under a lease (an event's finished history, which
    grows with every edit, is left out)."""
    return list(
        ManagedEventWrite.objects.filter(event_id=write.event_id)
        .exclude(pk=write.pk)
        .filter(Q(pk__gt=write.pk) | Q(status=Status.PENDING) | Q(locked_until__gt=now))
        .order_by("pk")
    )


def _defer(write: ManagedEventWrite, token: str, *, seconds: float) -> _Outcome:
    """Try again in `seconds` (another write of the event, or every request slot of the
    profile, is busy); not an attempt: nothing failed."""
    ManagedEventWrite.objects.filter(pk=write.pk, lock_token=token).update(
        locked_until=None,
        lock_token="",
        next_attempt_at=timezone.now() + timedelta(seconds=seconds),
    )
    return _Outcome("retrying")


def _absorb(newest: ManagedEventWrite, older: list[ManagedEventWrite]) -> None:
    """Fold `older` (oldest first) into `newest` and save its operation and desired state."""
    operation, desired = older[0].operation, older[0].desired
    for write in [*older[1:], newest]:
        operation, desired = fold_writes(operation, desired, write.operation, write.desired)
    newest.operation, newest.desired = operation, desired
    ManagedEventWrite.objects.filter(pk=newest.pk).update(operation=operation, desired=desired)


def fold_writes(old_op: str, old: dict, new_op: str, new: dict) -> tuple[str, dict]:
    """One write equivalent to applying (old_op, old) and then (new_op, new)."""
    if new_op == Operation.DELETE or old_op == Operation.DELETE:
        return new_op, new  # a delete wins; an upsert after a delete is complete content
    if new_op == Operation.PARTICIPATION:
        if old_op == Operation.PARTICIPATION:
            return new_op, new
        return Operation.UPSERT, {**old, "participation_status": new["participation_status"]}
    if old_op == Operation.PARTICIPATION:
        return new_op, {"participation_status": old["participation_status"], **new}
    return Operation.UPSERT, _fold_upserts(old, new)


def _emails(people) -> set[str]:
    return {(person.get("email") or "").lower() for person in people or []}


def _fold_upserts(old: dict, new: dict) -> dict:
    merged = dict(new)
    for key in ("reminders", "transparency", "participation_status", "conferencing"):
        if merged.get(key) is None and old.get(key) is not None:
            merged[key] = old[key]
    if not merged.get("color") and old.get("color"):
        merged["color"] = old["color"]
    invited, removed = _emails(new.get("attendees_invite")), _emails(new.get("attendees_remove"))
    decided = invited | removed
    merged["attendees_invite"] = [
        p
        for p in old.get("attendees_invite") or []
        if (p.get("email") or "").lower() not in decided
    ] + list(new.get("attendees_invite") or [])
    merged["attendees_remove"] = [
        p
        for p in old.get("attendees_remove") or []
        if (p.get("email") or "").lower() not in decided
    ] + list(new.get("attendees_remove") or [])
    return merged


def _identity_of(event: Event) -> tuple[str, str, str]:
    """(iCalendar UID, resource id, version) the provider knows the event by ('' resource id:
    not created yet)."""
    uid = event.ical_uid or event.provider_key
    return uid, event.provider_resource, event.provider_etag


def _idempotency_key(event: Event) -> str:
    """What a create is keyed by: our own id of the event, which never changes (its UID and
    provider key may: Google's confirmation brings Google's iCalUID), so a retried or repeated
    create of one event always lands on the same resource. For an event we created it is also
    its UID (calendars.services gives a new managed event uid = event_uid)."""
    return event.event_uid


def _write_context(write: ManagedEventWrite, uid: str) -> base.WriteContext:
    return base.WriteContext(
        uid=uid,
        organizer_email=_organizer_email(write.calendar),
        self_emails=write.calendar.profile.account.email_addresses(),
        instance_start=write.event.original_start,
    )


def _render(
    provider: base.Provider, write: ManagedEventWrite, context: base.WriteContext, current: str
) -> base.Rendered:
    """The payload that makes the provider hold the write's desired state (the adapter merges
    it into `current`, what the provider holds)."""
    status = write.desired.get("participation_status", "")
    if write.operation == Operation.DELETE:
        # One instance of a series: the series resource without it (the whole resource is
        # deleted only for a single event or a whole series, see _delete).
        return provider.render_event(
            desired={"delete_instance": True}, current=current, context=context
        )
    if write.operation == Operation.PARTICIPATION:
        return provider.render_participation(status=status, current=current, context=context)
    merged = provider.render_event(desired=write.desired, current=current, context=context)
    if not status:
        return merged
    # A participation change folded into this upsert (see fold_writes).
    answered = provider.render_participation(status=status, current=merged.payload, context=context)
    return base.Rendered(payload=answered.payload, changed=merged.changed or answered.changed)


def _organizer_email(calendar: Calendar) -> str:
    """Who organizes an event we create: the account's address, else the address of the
    calendar's own profile (never another profile's)."""
    account_email = (calendar.profile.account.email or "").strip().lower()
    profile_name = calendar.profile.profile_name.strip().lower()
    return account_email or (profile_name if "@" in profile_name else "")


def _put(
    provider: base.Provider, write: ManagedEventWrite, event: Event, calendar: Calendar
) -> _Written:
    """Create or update the event so that the provider holds `write.desired` (or the new
    participation status; for one instance of a series, also its deletion: an update of the
    series' resource). Conflicts refetch, record the server's version in the cache, and
    re-merge (CONFLICT_RETRIES times, then TemporaryError: retry later)."""
    uid, resource_id, version = _identity_of(event)
    context = _write_context(write, uid)
    calendar_id = calendar.provider_calendar_id
    current = event.raw if resource_id else ""
    if resource_id and event.original_start is not None:
        version, current = _series_as_recorded(calendar, resource_id, version, current)
    if resource_id and not current:
        fresh = provider.get_event(resource_id, calendar_id=calendar_id)  # keep what is there
        resource_id, version, current = fresh.resource_id, fresh.version, fresh.payload
    for _round in range(CONFLICT_RETRIES):
        if not resource_id:
            if write.operation != Operation.UPSERT or event.original_start is not None:
                raise base.PermanentError("the event does not exist at the provider")
            rendered = _render(provider, write, context, "")
            key = _idempotency_key(event)
            _take_provider_key(event, provider.provider_key_for(key))
            try:
                created = provider.create_event(calendar_id, rendered.payload, idempotency_key=key)
            except base.AlreadyExists as exc:
                # An earlier attempt created it and crashed before recording it (or a sync
                # client did): update what is there instead of duplicating it.
                fresh = provider.get_event(exc.resource_id, calendar_id=calendar_id)
                resource_id, version, current = fresh.resource_id, fresh.version, fresh.payload
                continue
            return _confirm(provider, created, rendered.payload, calendar)
        rendered = _render(provider, write, context, current)
        if not rendered.changed:
            return _Written(resource_id, version, current, called=False)
        try:
            updated = provider.update_event(
                resource_id, rendered.payload, version=version, calendar_id=calendar_id
            )
        except base.Conflict:
            try:
                fresh = provider.get_event(resource_id, calendar_id=calendar_id)
            except base.NotFound:
                # Deleted at the server meanwhile: an upsert means "it exists": create it again.
                resource_id, version, current = "", "", ""
                continue
            _record_server_version(calendar, fresh)
            resource_id, version, current = fresh.resource_id, fresh.version, fresh.payload
            continue
        return _confirm(provider, updated, rendered.payload, calendar)
    raise base.TemporaryError("the event kept changing at the provider; will retry")


def _series_as_recorded(
    calendar: Calendar, resource_id: str, version: str, payload: str
) -> tuple[str, str]:
    """(version, payload) of the series resource one instance belongs to, as last recorded.
    Its sibling instances share the resource, and a write of one of them updates the resource
    map but not the cached copy of an instance it left unchanged: the map's is the fresher
    (writing over an older copy would undo the sibling's write)."""
    row = (
        SyncedResource.objects.filter(calendar=calendar, href=resource_id)
        .exclude(series_payload="")
        .values_list("etag", "series_payload")
        .first()
    )
    return row if row is not None else (version, payload)


def _take_provider_key(event: Event, key: str) -> None:
    """Before a create: the cached event takes the key the provider's event will have (Google:
    the id we choose), so that a sync that sees the new event before we record the write finds
    this event (protected by the pending write) instead of caching a second one."""
    if event.provider_key == key:
        return  # CalDAV: the UID is the key
    with transaction.atomic():
        Event.objects.filter(pk=event.pk).update(provider_key=key)
    event.provider_key = key


def _confirm(
    provider: base.Provider, written: base.WrittenEvent, payload: str, calendar: Calendar
) -> _Written:
    """What the provider holds now: its own answer where it sent one (Google returns the whole
    event), else what we wrote; a provider that answers without the new version is read."""
    if written.version:
        return _Written(
            written.resource_id, written.version, written.payload or payload, called=True
        )
    fresh = provider.get_event(written.resource_id, calendar_id=calendar.provider_calendar_id)
    return _Written(fresh.resource_id, fresh.version, fresh.payload, called=True)


def _delete(provider: base.Provider, write: ManagedEventWrite, event: Event) -> _Written:
    """Delete the event at the provider; a delete wins over a concurrent edit (a Conflict
    refetches the current version and deletes again); already gone is success."""
    _uid, resource_id, version = _identity_of(event)
    calendar_id = write.calendar.provider_calendar_id
    if not resource_id:
        # Never recorded as created: a crashed create may still have left it where the
        # adapter puts a create with this key.
        key = _idempotency_key(event)
        around = None
        if event.start and event.end:
            around = (event.start - LOOKUP_PADDING, event.end + LOOKUP_PADDING)
        resource_id, version = provider.resource_for_key(calendar_id, key, around=around), ""
        if not resource_id:
            return _Written("", "", None, called=False)
    for _round in range(CONFLICT_RETRIES):
        try:
            provider.delete_event(resource_id, version=version, calendar_id=calendar_id)
            return _Written(resource_id, "", None, called=True)
        except base.Conflict:
            try:
                version = provider.get_event(resource_id, calendar_id=calendar_id).version
            except base.NotFound:
                return _Written(resource_id, "", None, called=True)
    raise base.TemporaryError("the event kept changing at the provider; will retry")


# --- recording outcomes ---
def _record_server_version(calendar: Calendar, fresh: base.ProviderResource) -> None:
    """A conflict showed an edit made at the provider: record it in the cache (change log,
    notifications) before our write is merged over it, so it is not silently lost."""
    try:
        with transaction.atomic():
            resources.apply_resource(calendar, fresh, protect_pending_writes=False)
    except base.InvalidData as exc:
        log.warning("server version of %s not cached: %s", fresh.resource_id, exc)


@retry_on_transaction_conflict
def _record_success(write: ManagedEventWrite, token: str, written: _Written) -> _Outcome:
    now = timezone.now()
    calendar = write.calendar
    with transaction.atomic():
        lock_for_event_changes(account_id=write.account_id, event_ids=[write.event_id])
        mine = ManagedEventWrite.objects.filter(
            pk=write.pk, lock_token=token, status=Status.PENDING
        ).update(
            status=Status.DONE,
            completed_at=now,
            locked_until=None,
            lock_token="",
            last_error="",
            last_error_class="",
        )
        if not mine:
            # The lease lapsed and another worker took the write while we were at the
            # provider. What we wrote is there all the same: keep its identity and version,
            # so that the next writer's If-Match names it.
            if written.payload is not None:
                Event.objects.filter(pk=write.event_id).update(
                    provider_resource=written.resource_id,
                    provider_etag=written.version,
                    raw=written.payload,
                )
            outcome = _Outcome("superseded" if _is(write, Status.SUPERSEDED) else "lost")
            _clear_lease(write, token)
            return outcome
        if written.payload is None:
            _record_deleted(write, written.resource_id)
        else:
            resource = base.ProviderResource(written.resource_id, written.version, written.payload)
            if write.event.is_series_master:
                _key_series_by_provider(write, calendar, resource)
            # The write is DONE, so only a newer pending write still protects the event.
            resources.apply_resource(calendar, resource, application=write.application)
            # Our identity and version, even if a newer pending write kept the content.
            Event.objects.filter(pk=write.event_id).update(
                provider_resource=written.resource_id,
                provider_etag=written.version,
                raw=written.payload,
            )
        _kick_pending(write.event_id)
    log.info(
        "event write %s (%s) done%s",
        write.pk,
        write.operation,
        "" if written.called else " (provider already up to date)",
    )
    return _Outcome("done")


def _key_series_by_provider(
    write: ManagedEventWrite, calendar: Calendar, resource: base.ProviderResource
) -> None:
    """A series the provider keys by an id of its own (Graph: occurrences name their master's
    id): the master row takes that key, so that the instances a sync brings find their series
    (and its event_id). Where the instances come only from a listing, sync now rather than at
    the next poll, so that the series shows soon after its write."""
    [key, *_] = resources.resource_keys(calendar, resource) or [write.event.provider_key]
    if key != write.event.provider_key:
        Event.objects.filter(pk=write.event_id).update(provider_key=key)
        write.event.provider_key = key
        # Occurrences a sync cached before this write was recorded join their series.
        Event.objects.filter(
            calendar=calendar, provider_key=key, original_start__isnull=False, event_id=None
        ).update(application_id=write.event.application_id, event_id=write.event.event_id)
    if provider_class(calendar.profile.provider).instance_resources:
        enqueue_after_commit(lambda: engine.enqueue_sync(calendar.pk), what="a series' first sync")


def _record_deleted(write: ManagedEventWrite, resource_id: str) -> None:
    resources.forget_resource(write.calendar, resource_id, uids={write.event.provider_key})
    Event.objects.filter(pk=write.event_id).update(provider_etag="")


def _kick_pending(event_id: int) -> None:
    """Writes of this event deferred while this one was at the provider: trigger them."""
    pending = ManagedEventWrite.objects.pending().filter(event_id=event_id)
    ids = list(pending.values_list("pk", flat=True))
    if not ids:
        return
    # Deferred ones are due now (writes in backoff after a failure keep their schedule).
    pending.filter(attempts=0, next_attempt_at__gt=timezone.now()).update(
        next_attempt_at=timezone.now()
    )
    trigger_reconciler_on_commit(ids)


def _is(write: ManagedEventWrite, status: str) -> bool:
    return ManagedEventWrite.objects.filter(pk=write.pk, status=status).exists()


def _clear_lease(write: ManagedEventWrite, token: str) -> None:
    ManagedEventWrite.objects.filter(pk=write.pk, lock_token=token).update(
        locked_until=None, lock_token=""
    )


@retry_on_transaction_conflict
def _finish(write: ManagedEventWrite, token: str, status: str) -> _Outcome:
    """Mark this write (still ours) terminal without a provider call."""
    with transaction.atomic():
        ManagedEventWrite.objects.filter(pk=write.pk, lock_token=token).update(
            status=status, completed_at=timezone.now(), locked_until=None, lock_token=""
        )
        _kick_pending(write.event_id)
    return _Outcome("superseded" if status == Status.SUPERSEDED else "done")


def _error_fields(exc: Exception) -> dict:
    # Adapter messages never contain credentials (base.ProviderError's contract).
    return {"last_error": str(exc)[:1000], "last_error_class": type(exc).__name__[:64]}


def _fail(write: ManagedEventWrite, token: str, exc: Exception) -> _Outcome:
    with transaction.atomic():
        failed = ManagedEventWrite.objects.filter(pk=write.pk, lock_token=token).update(
            status=Status.FAILED,
            attempts=write.attempts + 1,
            completed_at=timezone.now(),
            locked_until=None,
            lock_token="",
            **_error_fields(exc),
        )
        _kick_pending(write.event_id)
    log.warning("event write %s failed permanently (%s): %s", write.pk, type(exc).__name__, exc)
    if failed:
        _restore_cache(write)
    return _Outcome("failed")


def _restore_cache(write: ManagedEventWrite) -> None:
    """The API showed the desired state at once; the write never reached the provider, so put
    the cache back to what the provider holds (integrators are told, through the change log),
    rather than leave a state that exists nowhere. A newer pending write still protects the
    event. If that cannot be done now, the next sync re-reads the resource."""
    event, calendar = write.event, write.calendar
    href = event.provider_resource
    try:
        fresh = None
        if href:
            fresh = call_with_fresh_credentials(
                calendar.profile,
                lambda provider: provider.get_event(
                    href, calendar_id=calendar.provider_calendar_id
                ),
            )
    except base.NotFound:
        fresh = None
    except base.ProviderError as exc:
        _resync_resource_later(write, href, exc)
        return
    try:
        with transaction.atomic():
            if fresh is not None:
                resources.apply_resource(calendar, fresh)
                return
            resources.forget_resource(calendar, href, uids={event.provider_key})
    except base.InvalidData as exc:
        _resync_resource_later(write, href, exc)


def _resync_resource_later(write: ManagedEventWrite, href: str, exc: Exception) -> None:
    """Forget the resource's etag, so that the next sync reads it again instead of skipping
    it as unchanged."""
    SyncedResource.objects.filter(calendar=write.calendar, href=href).update(etag="")
    log.warning("event write %s: cache not restored now (%s)", write.pk, type(exc).__name__)


def retry_delay(attempts: int, exc: Exception | None = None) -> timedelta:
    """Backoff after `attempts` failed attempts: BASE_DELAY_SECONDS doubling, capped at
    MAX_DELAY_SECONDS, +-JITTER; at least the provider's Retry-After."""
    return backoff_delay(
        attempt=attempts,
        base_seconds=BASE_DELAY_SECONDS,
        cap_seconds=MAX_DELAY_SECONDS,
        jitter=JITTER,
        error=exc,
    )


def _retry_later(write: ManagedEventWrite, token: str, exc: Exception) -> _Outcome:
    attempts = write.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        return _fail(write, token, exc)
    next_attempt_at = timezone.now() + retry_delay(attempts, exc)
    ManagedEventWrite.objects.filter(pk=write.pk, lock_token=token).update(
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        locked_until=None,
        lock_token="",
        **_error_fields(exc),
    )
    if isinstance(exc, base.WriteQuotaExceeded):
        _pause_profile_writes(write.calendar.profile_id, until=next_attempt_at)
    log.warning(
        "event write %s attempt %d failed (%s): %s", write.pk, attempts, type(exc).__name__, exc
    )
    return _Outcome("retrying")


def _profile_writes_paused_until(write: ManagedEventWrite) -> datetime | None:
    """When another write of the profile hit the provider's write quota and waits: until then
    (a write queued after the pause would only hit the limit again, and extend it)."""
    return (
        ManagedEventWrite.objects.pending()
        .filter(
            calendar__profile_id=write.calendar.profile_id,
            last_error_class=base.WriteQuotaExceeded.__name__,
            next_attempt_at__gt=timezone.now(),
        )
        .exclude(pk=write.pk)
        .order_by("-next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )


def _pause_profile_writes(profile_id: int, *, until: datetime) -> None:
    """The provider refuses this account's writes for a while: every other pending write of the
    profile waits too (each would only hit the limit again, and extend it). Not an attempt."""
    paused = (
        ManagedEventWrite.objects.pending()
        .filter(calendar__profile_id=profile_id, next_attempt_at__lt=until)
        .update(next_attempt_at=until)
    )
    log.warning("writes of profile %s paused until %s (%s writes)", profile_id, until, paused)


def _auth_expired(write: ManagedEventWrite, token: str, exc: base.AuthExpired) -> _Outcome:
    """Credentials rejected: disconnect the profile (integrators are told) and keep the write
    pending; the claim skips disconnected profiles and a relink makes it due again."""
    with transaction.atomic():
        _disconnect_profile(write.calendar.profile, reason=str(exc)[:255])  # the profile first
        ManagedEventWrite.objects.filter(pk=write.pk, lock_token=token).update(
            locked_until=None, lock_token="", **_error_fields(exc)
        )
    log.warning("event write %s waits for a relink of its profile", write.pk)
    return _Outcome("retrying")
