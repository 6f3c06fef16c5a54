"""Writes to the cached events. Every change writes change-log rows in the same transaction."""

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.batches import update_rows
from accounts.models import Account, Profile
from calendars.models import Calendar, ChangeLogEntry, Event, ManagedEventWrite
from calendars.services.history import history_horizon
from calendars.services.locks import lock_for_event_changes
from calendars.types import ApplyResult, EventData, EventIdentity
from calendars.wakeups import announce_changes

_LOOKUP_CHUNK = 500


def record_changes(
    *,
    account: Account,
    changes: Sequence[tuple[str, Calendar | None, Event | None]],
    application=None,
    at: datetime | None = None,
) -> list[ChangeLogEntry]:
    """Append (kind, calendar, event) entries to the account's change log.

    Must run inside the transaction that made the changes (raises TransactionManagementError
    otherwise): the sequence allocation locks the account row until commit, which orders
    concurrent writers of one account.
    """
    return _append_entries(
        account=account,
        rows=[{"kind": kind, "calendar": cal, "event": event} for kind, cal, event in changes],
        application=application,
        at=at,
    )


def record_profile_change(
    *, profile: Profile, kind: str, at: datetime | None = None
) -> list[ChangeLogEntry]:
    """Append profile_connected / profile_disconnected for `profile` (same contract as
    record_changes: inside the transaction that changed the profile's status)."""
    return _append_entries(
        account=profile.account, rows=[{"kind": kind, "profile": profile}], at=at
    )


def record_profile_disconnected(profile: Profile) -> None:
    """settings.PROFILE_DISCONNECTED_HOOKS entry: the disconnect is a change-log entry."""
    record_profile_change(profile=profile, kind=ChangeLogEntry.Kind.PROFILE_DISCONNECTED)


def _append_entries(
    *, account: Account, rows: list[dict], application=None, at: datetime | None = None
) -> list[ChangeLogEntry]:
    if not rows:
        return []
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError("record_changes needs a transaction")
    at = at or timezone.now()
    sequences = account.allocate_change_sequences(len(rows))
    entries = [
        ChangeLogEntry(
            account=account, sequence=sequence, application=application, changed_at=at, **row
        )
        for sequence, row in zip(sequences, rows, strict=True)
    ]
    created = ChangeLogEntry.objects.bulk_create(entries)
    announce_changes(account.pk)
    return created


def _existing_events(calendar: Calendar, keys: Iterable[str]) -> dict[EventIdentity, Event]:
    keys = sorted(set(keys))
    found: dict[EventIdentity, Event] = {}
    for i in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[i : i + _LOOKUP_CHUNK]
        for event in Event.objects.filter(calendar=calendar, provider_key__in=chunk):
            found[EventIdentity(event.provider_key, event.original_start)] = event
    return found


def _events_with_pending_writes(calendar: Calendar, done_since: datetime | None) -> set[int]:
    """Ids of the calendar's events with a pending write, or with a write applied at the
    provider after `done_since` (newer than the provider snapshot being applied). One query
    per batch, served by the partial index on pending rows and the (calendar, completed_at)
    index."""
    wanted = Q(status=ManagedEventWrite.Status.PENDING)
    if done_since is not None:
        wanted |= Q(status=ManagedEventWrite.Status.DONE, completed_at__gte=done_since)
    return set(
        ManagedEventWrite.objects.filter(wanted, calendar=calendar).values_list(
            "event_id", flat=True
        )
    )


def _copy_content(event: Event, data: EventData, fingerprint: str) -> None:
    # Every field, also those content() leaves out while empty (LATER_FIELDS): a value that
    # went back to empty must be stored empty.
    for name in _CONTENT_FIELDS:
        setattr(event, name, getattr(data, name))
    event.fingerprint = fingerprint


def _inherit_series_owner(instance: Event, master: Event | None) -> None:
    """An instance of a managed series belongs to the series' application, under its event_id
    (the integrator's writes name the series; its reads show the instances as theirs)."""
    if instance.original_start is None or master is None or master.event_id is None:
        return
    instance.application_id, instance.event_id = master.application_id, master.event_id


_CONTENT_FIELDS = [*EventData.__dataclass_fields__]
_UPDATE_FIELDS = [
    *[f for f in _CONTENT_FIELDS if f not in ("provider_key", "original_start")],
    "fingerprint",
    "is_deleted",
    "deleted_at",
    "updated_at",
]


def apply_provider_events(
    *,
    calendar: Calendar,
    upserts: Sequence[EventData] = (),
    deletions: Sequence[EventIdentity] = (),
    protect_pending_writes: bool = True,
    application=None,
    writes_done_since: datetime | None = None,
) -> ApplyResult:
    """Apply a provider's view of some events to the cache, touching only what changed.

    Upserts are matched by provider identity (key + original start); an event whose content
    fingerprint is unchanged bumps nothing (storage details such as the etag are refreshed
    silently). Deletions become tombstones (`is_deleted`), kept for include_deleted and
    last_modified reads. One change-log entry is written per created, updated or deleted event.

    An event with a pending ManagedEventWrite is left alone (counted unchanged): its desired
    state wins over the provider's until the write is reconciled, so a sync that runs before
    the write reached the provider neither tombstones nor reverts it. The reconciler passes
    `protect_pending_writes=False` to record a provider-side edit it found on a conflict.
    `writes_done_since` (a sync passes the time it asked the provider): events whose write
    reached the provider after that are protected too, since the snapshot predates them.

    `application`: the integrator whose write this provider state is the result of (the
    reconciler's confirmation); the change-log entries carry it, so that application's own
    channels are not told about its own write a second time.

    Inside a caller's transaction it runs without a savepoint: an error in it aborts the
    caller's whole transaction, which must not catch it and go on.

    An event the cache does not hold and that ended by history_horizon() is not created
    (counted unchanged): it is history the daily purge removes, and creating it again on every
    re-read of its resource would announce it as new each time.
    """
    result = ApplyResult()
    now = timezone.now()
    horizon = history_horizon(now)
    # savepoint=False (see the docstring): a savepoint cost two round trips per confirmation.
    with transaction.atomic(savepoint=False):
        account = lock_for_event_changes(account_id=calendar.profile.account_id)
        keys = [d.provider_key for d in upserts] + [i.provider_key for i in deletions]
        existing = _existing_events(calendar, keys)
        protected = (
            _events_with_pending_writes(calendar, writes_done_since)
            if protect_pending_writes
            else set()
        )
        to_create: list[Event] = []
        to_update: list[Event] = []
        storage_only: list[Event] = []
        changes: list[tuple[str, Event]] = []

        for data in upserts:
            fingerprint = data.fingerprint()
            event = existing.get(data.identity)
            if event is not None and event.pk in protected:
                result.unchanged += 1
                continue
            if event is None and data.end <= horizon:
                result.unchanged += 1
                continue
            if event is None:
                event = Event(account=account, calendar=calendar, created_at=now, updated_at=now)
                _copy_content(event, data, fingerprint)
                _inherit_series_owner(event, existing.get(EventIdentity(data.provider_key)))
                to_create.append(event)
                existing[data.identity] = event
                result.created += 1
            elif event.fingerprint == fingerprint and not event.is_deleted:
                if any(getattr(event, n) != getattr(data, n) for n in EventData.STORAGE_FIELDS):
                    for name in EventData.STORAGE_FIELDS:
                        setattr(event, name, getattr(data, name))
                    storage_only.append(event)
                result.unchanged += 1
            else:
                _copy_content(event, data, fingerprint)
                event.is_deleted, event.deleted_at, event.updated_at = False, None, now
                to_update.append(event)
                changes.append((ChangeLogEntry.Kind.EVENT_UPDATED, event))
                result.updated += 1

        for identity in deletions:
            event = existing.get(identity)
            if event is None or event.is_deleted or event.pk is None or event.pk in protected:
                continue
            event.is_deleted, event.deleted_at, event.updated_at = True, now, now
            to_update.append(event)
            changes.append((ChangeLogEntry.Kind.EVENT_DELETED, event))
            result.deleted += 1

        Event.objects.bulk_create(to_create, batch_size=500)
        changes.extend((ChangeLogEntry.Kind.EVENT_CREATED, event) for event in to_create)
        update_rows(Event, to_update, _UPDATE_FIELDS)
        update_rows(Event, storage_only, list(EventData.STORAGE_FIELDS))
        record_changes(
            account=account,
            changes=[(kind, calendar, event) for kind, event in changes],
            application=application,
            at=now,
        )
    return result
