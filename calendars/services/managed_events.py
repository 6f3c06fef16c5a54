"""Integrator writes to events (docs/api.md, Writing events): recorded now, applied in background.

Each service runs one transaction that (1) locks the account row (calendars.services.locks: the
lock order every event writer keeps), so that concurrent writes of one account serialize and
the get-or-create of a managed event is race-free, (2) updates the
cached Event at once (GET /v1/events shows the desired state right after the 202, as Cronofy
does), (3) writes the change-log entry and (4) inserts one ManagedEventWrite row: the outbox the
sync app's reconciler claims. After commit, settings.MANAGED_EVENT_WRITE_TRIGGER is called with
the new write ids (calendars never imports sync). A transaction the database aborts for a
deadlock or a serialization failure is run again (retry_on_transaction_conflict).

Recurring events: a managed event with a `recurrence` is a series. Its row (original_start
None, is_recurring, the application's event_id) is the series master: the writes name it, reads
never show it (calendars.reads), and the provider's instances, cached by the reconciler and by
syncs, carry its application and event_id (calendars.services.cache). Writes to external
events of a recurring series (upsert, delete, participation) address one instance, and only
where the provider writes single instances (calendars.options.INSTANCE_WRITE_PROVIDERS;
CalDAV: a RECURRENCE-ID override, an EXDATE; Google: the instance's own event id; Graph: the
occurrence's id); elsewhere they are refused with 422 `errors.recurring_event_not_supported`.
"""

from collections.abc import Sequence
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.ids import format_utc, make_public_id
from accounts.models import Account
from calendars.models import Calendar, ChangeLogEntry, Event, ManagedEventWrite
from calendars.options import (
    calendar_is_writable,
    instances_writable,
    is_attendee_not_organizer,
    person_email,
)
from calendars.services.cache import record_changes
from calendars.services.locks import lock_for_event_changes, retry_on_transaction_conflict
from calendars.services.writes import trigger_reconciler_on_commit
from calendars.types import Conferencing, EventData, ManagedEventContent

Kind = ChangeLogEntry.Kind
Operation = ManagedEventWrite.Operation


class EventWriteError(Exception):
    """A write the API refuses. `status` is the HTTP status; for a 422, `field`, `key` and
    `description` form Cronofy's error entry."""

    status = 422

    def __init__(self, field: str, key: str, description: str):
        super().__init__(description)
        self.field, self.key, self.description = field, key, description


class EventNotFound(EventWriteError):
    """No such (live) event in this calendar: 404."""

    status = 404


class ProfileNotConnected(EventWriteError):
    """The calendar's profile is disconnected: nothing can be written to it (423)."""

    status = 423


def new_managed_event_uid() -> str:
    """`evt_` + 24 hex: an event created through the API (external ones are `evt_external_…`)."""
    return make_public_id("evt_")


# What each provider's write path can express beyond one-off events; anything else is refused
# with a 422 naming the field before anything is recorded (never accepted and then dropped).
SERIES_PROVIDERS = frozenset({"caldav", "google", "microsoft"})
EXPLICIT_CONFERENCING_PROVIDERS = frozenset({"caldav", "google"})
# `default`: the calendar's provider creates the meeting (Google Meet, Microsoft Teams).
# Graph has no writable join URL, so an explicit one cannot be written there.
CREATED_CONFERENCING_PROVIDERS = frozenset({"google", "microsoft"})


def _check_supported(calendar: Calendar, content: ManagedEventContent) -> None:
    provider = calendar.profile.provider
    if content.recurrence is not None and provider not in SERIES_PROVIDERS:
        raise EventWriteError(
            "recurrence", "errors.not_supported", f"{provider} calendars take no recurring events"
        )
    conferencing = content.conferencing
    if conferencing is None or conferencing.profile_id == "none":
        return
    explicit = conferencing.profile_id == "explicit"
    allowed = EXPLICIT_CONFERENCING_PROVIDERS if explicit else CREATED_CONFERENCING_PROVIDERS
    if provider not in allowed:
        raise EventWriteError(
            "conferencing",
            "errors.not_supported",
            f"{provider} calendars take no explicit conferencing"
            if explicit
            else f"no meeting is created on {provider} calendars: give an explicit join_url",
        )


def _conferencing_state(conferencing: Conferencing | None) -> dict | None:
    if conferencing is None:
        return None
    return {
        "profile_id": conferencing.profile_id,
        "join_url": conferencing.join_url,
        "provider_description": conferencing.provider_description,
    }


def desired_state(content: ManagedEventContent, *, managed: bool = False) -> dict:
    """The `desired` JSON of an upsert write (see ManagedEventWrite's docstring). A managed
    event's upsert is its whole content, recurrence included (none: a single event); an
    external event's recurrence is the provider's and left out."""
    state = _content_state(content)
    if managed:
        state["recurrence"] = content.recurrence
    return state


def _content_state(content: ManagedEventContent) -> dict:
    return {
        "summary": content.summary,
        "description": content.description,
        "location_description": content.location_description,
        "location_lat": content.location_lat,
        "location_long": content.location_long,
        "url": content.url,
        "start": format_utc(content.start),
        "end": format_utc(content.end),
        "is_all_day": content.is_all_day,
        "start_date": content.start_date.isoformat() if content.start_date else None,
        "end_date": content.end_date.isoformat() if content.end_date else None,
        "tzid": content.tzid,
        "transparency": content.transparency,
        "is_private": content.is_private,
        "status": Event.Status.CONFIRMED.value,
        "reminders": list(content.reminders) if content.reminders is not None else None,
        "reminders_create_only": content.reminders_create_only,
        "color": content.color,
        "attendees_invite": [
            {"email": email, "display_name": name} for email, name in content.attendees_invite
        ],
        "attendees_remove": [
            {"email": email, "display_name": name} for email, name in content.attendees_remove
        ],
        "conferencing": _conferencing_state(content.conferencing),
    }


def event_fingerprint(event: Event) -> str:
    """The fingerprint the sync engine computes for the same content (EventData)."""
    data = EventData(**{name: getattr(event, name) for name in EventData.__dataclass_fields__})
    return data.fingerprint()


def _merge_attendees(current, invite, remove) -> list:
    removed = {email.strip().lower() for email, _ in remove}
    attendees = [a for a in current or [] if isinstance(a, dict) and person_email(a) not in removed]
    present = {person_email(a) for a in attendees}
    for email, name in invite:
        key = email.strip().lower()
        if key not in present and key not in removed:
            attendees.append({"email": email, "display_name": name, "status": "needs_action"})
            present.add(key)
    return attendees


def _apply_content(event: Event, content: ManagedEventContent, *, managed: bool = False) -> None:
    for name in (
        "summary",
        "description",
        "location_description",
        "location_lat",
        "location_long",
        "url",
        "start",
        "end",
        "is_all_day",
        "start_date",
        "end_date",
        "tzid",
        "is_private",
    ):
        setattr(event, name, getattr(content, name))
    if content.transparency is not None:
        event.transparency = content.transparency
    elif event.pk is None:
        event.transparency = Event.Transparency.OPAQUE
    event.status = Event.Status.CONFIRMED
    if managed:
        event.is_recurring = content.recurrence is not None
    if content.conferencing is not None and content.conferencing.profile_id != "default":
        # explicit sets the link, none clears it; a provider-made meeting (default) keeps
        # the link already cached until a sync reads the one the provider made.
        event.meeting_url = content.conferencing.join_url
    event.attendees = _merge_attendees(
        event.attendees, content.attendees_invite, content.attendees_remove
    )
    event.is_deleted, event.deleted_at = False, None
    event.fingerprint = event_fingerprint(event)


def _check_writable(calendar: Calendar, *, external: bool = False) -> None:
    """422 for a deleted or readonly calendar, 423 for a disconnected profile; external events
    also need an unrestricted (not sandbox) calendar."""
    if calendar.is_deleted:
        raise EventWriteError(
            "calendar_id", "errors.calendar_deleted", "the calendar has been deleted"
        )
    if calendar.is_readonly:
        raise EventWriteError("calendar_id", "errors.calendar_readonly", "the calendar is readonly")
    if not calendar_is_writable(calendar):
        raise ProfileNotConnected(
            "calendar_id", "errors.profile_disconnected", "the calendar's profile is disconnected"
        )
    if external and calendar.permission_level != Calendar.PermissionLevel.UNRESTRICTED:
        raise EventWriteError(
            "event_uid",
            "errors.insufficient_permission_level",
            "external events need an unrestricted calendar",
        )


def _is_repeat(event: Event, operation: str, desired: dict, application) -> bool:
    """The newest write of the event asked for exactly this, and it still stands: pending, or
    done with nothing changed since by anyone else (an edit at the provider, synced in, makes
    the same request a real change again)."""
    newest = (
        ManagedEventWrite.objects.filter(event=event)
        .order_by("-id")
        .values("operation", "desired", "status", "created_at")
        .first()
    )
    if newest is None or newest["operation"] != operation or newest["desired"] != desired:
        return False
    if newest["status"] == ManagedEventWrite.Status.PENDING:
        return True
    if newest["status"] != ManagedEventWrite.Status.DONE:
        return False
    changed_by_others = (
        ChangeLogEntry.objects.filter(event=event, changed_at__gte=newest["created_at"])
        .exclude(application=application)
        .exists()
    )
    return not changed_by_others


def _record(
    *,
    account: Account,
    calendar: Calendar,
    event: Event,
    application,
    operation: str,
    desired: dict,
    kind: str,
    now: datetime,
) -> ManagedEventWrite:
    write = ManagedEventWrite.objects.create(
        account=account,
        calendar=calendar,
        event=event,
        application=application,
        operation=operation,
        desired=desired,
        next_attempt_at=now,
    )
    record_changes(
        account=account, changes=[(kind, calendar, event)], application=application, at=now
    )
    trigger_reconciler_on_commit([write.pk])
    return write


def _event_by_uid(calendar: Calendar, event_uid: str, *, allow_deleted=False) -> Event:
    """The calendar's event `event_uid`, if the API may write it at all: not part of a
    recurring series, or one instance of one where the provider writes single instances
    (calendars.options.INSTANCE_WRITE_PROVIDERS; the write then changes that instance alone).
    Raises EventNotFound, EventWriteError."""
    event = Event.objects.filter(calendar=calendar, event_uid=event_uid).first()
    if event is None or (event.is_deleted and not allow_deleted):
        raise EventNotFound("event_uid", "errors.not_found", "no such event in this calendar")
    if (event.is_recurring or event.original_start is not None) and not (
        event.original_start is not None and instances_writable(calendar)
    ):
        raise EventWriteError(
            "event_uid",
            "errors.recurring_event_not_supported",
            "events of a recurring series cannot be changed through the API yet",
        )
    return event


def _external_event(calendar: Calendar, event_uid: str, *, allow_deleted=False) -> Event:
    event = _event_by_uid(calendar, event_uid, allow_deleted=allow_deleted)
    if event.event_id is not None:
        raise EventWriteError(
            "event_uid",
            "errors.must_be_external_event_uid",
            "event_uid names a managed event: use its event_id",
        )
    return event


@retry_on_transaction_conflict
def upsert_managed_event(
    *, application, calendar: Calendar, event_id: str, content: ManagedEventContent
) -> ManagedEventWrite | None:
    """Create or update the application's event `event_id` in `calendar` (POST …/events).

    Returns the new write, or None when the request repeats the newest write of a live event
    (nothing recorded). Re-upserting a deleted managed event brings it back. A new event's
    event_uid is also its provider key and iCalendar UID, so the next sync matches the
    provider's copy instead of importing a duplicate. Raises EventWriteError (readonly or
    deleted calendar) and ProfileNotConnected.
    """
    _check_writable(calendar)
    _check_supported(calendar, content)
    desired = desired_state(content, managed=True)
    now = timezone.now()
    with transaction.atomic():
        account = lock_for_event_changes(account_id=calendar.profile.account_id)
        event = _managed_event(application, calendar, event_id)
        if event is None:
            uid = new_managed_event_uid()
            event = Event(
                account=account,
                calendar=calendar,
                application=application,
                event_id=event_id,
                event_uid=uid,
                provider_key=uid,
                ical_uid=uid,
            )
            kind = Kind.EVENT_CREATED
        elif not event.is_deleted and _is_repeat(event, Operation.UPSERT, desired, application):
            return None
        else:
            kind = Kind.EVENT_UPDATED
        _apply_content(event, content, managed=True)
        event.save()
        return _record(
            account=account,
            calendar=calendar,
            event=event,
            application=application,
            operation=Operation.UPSERT,
            desired=desired,
            kind=kind,
            now=now,
        )


@retry_on_transaction_conflict
def upsert_external_event(
    *, application, calendar: Calendar, event_uid: str, content: ManagedEventContent
) -> ManagedEventWrite | None:
    """Update an event synced from the provider, named by its event_uid (POST …/events).

    The event stays external (no application owns it). Raises EventNotFound (unknown or
    deleted uid), EventWriteError (`must_be_external_event_uid` for a managed event,
    `recurring_event_not_supported`, readonly/deleted/sandbox calendar), ProfileNotConnected.
    """
    _check_writable(calendar, external=True)
    _check_supported(calendar, content)
    desired = desired_state(content)
    now = timezone.now()
    with transaction.atomic():
        account = lock_for_event_changes(account_id=calendar.profile.account_id)
        event = _external_event(calendar, event_uid)
        if _is_repeat(event, Operation.UPSERT, desired, application):
            return None
        _apply_content(event, content)
        event.save()
        return _record(
            account=account,
            calendar=calendar,
            event=event,
            application=application,
            operation=Operation.UPSERT,
            desired=desired,
            kind=Kind.EVENT_UPDATED,
            now=now,
        )


def _managed_event(application, calendar: Calendar, event_id: str) -> Event | None:
    """The application's event `event_id`: a single event or a series master, never one of
    the series' instances (they carry the same event_id)."""
    return Event.objects.filter(
        application=application, calendar=calendar, event_id=event_id, original_start__isnull=True
    ).first()


def _tombstone(event: Event, now: datetime) -> None:
    event.is_deleted, event.deleted_at = True, now


def _tombstone_instances(account, masters: Sequence[Event], application, now) -> None:
    """The cached instances of deleted series go with them at once, as the reads of a deleted
    single event do (the reconciler's delete then finds nothing left to change). Instances
    carry their series' event_id (their provider key may be the provider's series id)."""
    series = [m for m in masters if m.is_series_master]
    if not series:
        return
    wanted = {(m.calendar_id, m.event_id) for m in series}
    instances = [
        instance
        for instance in Event.objects.filter(
            application=application,
            calendar__in={m.calendar_id for m in series},
            event_id__in={m.event_id for m in series},
            original_start__isnull=False,
            is_deleted=False,
        ).select_related("calendar")
        if (instance.calendar_id, instance.event_id) in wanted
    ]
    for instance in instances:
        _tombstone(instance, now)
        instance.updated_at = now
    Event.objects.bulk_update(instances, ["is_deleted", "deleted_at", "updated_at"])
    record_changes(
        account=account,
        changes=[(Kind.EVENT_DELETED, i.calendar, i) for i in instances],
        application=application,
        at=now,
    )


def _record_deletion(account, calendar, event, application, now) -> ManagedEventWrite:
    """Tombstone one event (a series with its instances) and record its delete write (caller's
    transaction). Deleting one instance of a series is a delete of that instance's row: the
    reconciler excludes it from the series at the provider."""
    _tombstone(event, now)
    event.save(update_fields=["is_deleted", "deleted_at", "updated_at"])
    _tombstone_instances(account, [event], application, now)
    return _record(
        account=account,
        calendar=calendar,
        event=event,
        application=application,
        operation=Operation.DELETE,
        desired={},
        kind=Kind.EVENT_DELETED,
        now=now,
    )


@retry_on_transaction_conflict
def delete_managed_event(
    *, application, calendar: Calendar, event_id: str
) -> ManagedEventWrite | None:
    """Delete the application's event `event_id` (DELETE …/events {event_id}).

    Idempotent: an unknown or already deleted event_id records nothing and returns None (the
    API still answers 202, as Cronofy does). Raises EventWriteError, ProfileNotConnected.
    """
    _check_writable(calendar)
    now = timezone.now()
    with transaction.atomic():
        account = lock_for_event_changes(account_id=calendar.profile.account_id)
        event = _managed_event(application, calendar, event_id)
        if event is None or event.is_deleted:
            return None
        return _record_deletion(account, calendar, event, application, now)


@retry_on_transaction_conflict
def delete_external_event(
    *, application, calendar: Calendar, event_uid: str
) -> ManagedEventWrite | None:
    """Delete an event synced from the provider (DELETE …/events {event_uid}).

    An already deleted event records nothing (None). Raises EventNotFound (unknown uid),
    EventWriteError (`must_be_external_event_uid` when the uid names a managed event,
    `recurring_event_not_supported`, readonly/deleted/sandbox calendar), ProfileNotConnected.
    """
    _check_writable(calendar, external=True)
    now = timezone.now()
    with transaction.atomic():
        account = lock_for_event_changes(account_id=calendar.profile.account_id)
        event = _external_event(calendar, event_uid, allow_deleted=True)
        if event.is_deleted:
            return None
        return _record_deletion(account, calendar, event, application, now)


@retry_on_transaction_conflict
def delete_managed_events(
    *, application, account: Account, calendars: Sequence[Calendar] | None = None
) -> list[ManagedEventWrite]:
    """Delete every live managed event of `application` in `account` (DELETE /v1/events),
    or only those in `calendars`. Other applications' and external events are never touched.

    One transaction; returns the writes (one per deleted event, none if nothing matched).
    Calendars the caller passes must belong to the account (the view checks).
    """
    now = timezone.now()
    with transaction.atomic():
        account = lock_for_event_changes(account_id=account.pk)
        events = Event.objects.filter(
            account=account,
            application=application,
            event_id__isnull=False,
            original_start__isnull=True,
            is_deleted=False,
        ).select_related("calendar")
        if calendars is not None:
            events = events.filter(calendar__in=list(calendars))
        events = list(events.order_by("id"))
        if not events:
            return []
        for event in events:
            _tombstone(event, now)
            event.updated_at = now
        Event.objects.bulk_update(events, ["is_deleted", "deleted_at", "updated_at"])
        _tombstone_instances(account, events, application, now)
        writes = ManagedEventWrite.objects.bulk_create(
            [
                ManagedEventWrite(
                    account=account,
                    calendar=event.calendar,
                    event=event,
                    application=application,
                    operation=Operation.DELETE,
                    desired={},
                    next_attempt_at=now,
                )
                for event in events
            ]
        )
        record_changes(
            account=account,
            changes=[(Kind.EVENT_DELETED, event.calendar, event) for event in events],
            application=application,
            at=now,
        )
        trigger_reconciler_on_commit([write.pk for write in writes])
    return writes


@retry_on_transaction_conflict
def change_participation_status(
    *, application, calendar: Calendar, event_uid: str, status: str
) -> ManagedEventWrite | None:
    """Answer an invitation for the end-user (POST …/participation_status).

    `status` is accepted, tentative or declined. Allowed only where the event's
    options.change_participation_status would be true (calendars.options): an external,
    non-recurring event on a writable calendar whose attendees include the end-user, who is not
    its organizer. Returns None when it repeats the newest write. Raises EventNotFound (unknown
    or deleted), EventWriteError (`errors.participation_status_not_changeable`,
    `errors.recurring_event_not_supported` and the calendar errors), ProfileNotConnected.
    """
    _check_writable(calendar)
    desired = {"participation_status": status}
    now = timezone.now()
    with transaction.atomic():
        account = lock_for_event_changes(account_id=calendar.profile.account_id)
        event = _event_by_uid(calendar, event_uid)
        emails = account.email_addresses()
        if event.event_id is not None or not is_attendee_not_organizer(
            event.attendees, event.organizer, emails
        ):
            raise EventWriteError(
                "event_uid",
                "errors.participation_status_not_changeable",
                "the end-user is not an invited attendee of this event",
            )
        if _is_repeat(event, Operation.PARTICIPATION, desired, application):
            return None
        event.participation_status = status
        event.attendees = [
            {**a, "status": status} if person_email(a) in emails else a for a in event.attendees
        ]
        event.fingerprint = event_fingerprint(event)
        event.save()
        return _record(
            account=account,
            calendar=calendar,
            event=event,
            application=application,
            operation=Operation.PARTICIPATION,
            desired=desired,
            kind=Kind.EVENT_UPDATED,
            now=now,
        )
