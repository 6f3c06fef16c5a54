from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import FloatField, Func, Q
from django.db.models.lookups import GreaterThan
from django.utils import timezone

from accounts.ids import new_calendar_id, new_external_event_uid
from accounts.models import Account, Profile


class CalendarQuerySet(models.QuerySet):
    def for_account(self, account: Account) -> "CalendarQuerySet":
        return self.filter(profile__account=account)

    def live(self) -> "CalendarQuerySet":
        return self.filter(is_deleted=False)


class Calendar(models.Model):
    """A calendar of a connected profile (`cal_…`)."""

    class PermissionLevel(models.TextChoices):
        UNRESTRICTED = "unrestricted"
        SANDBOX = "sandbox"

    public_id = models.CharField(
        max_length=64, unique=True, default=new_calendar_id, editable=False
    )
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="calendars")
    # The provider's id (Google calendar id, Graph id, CalDAV collection URL, ICS feed URL).
    provider_calendar_id = models.CharField(max_length=1024)
    name = models.CharField(max_length=255)
    is_readonly = models.BooleanField(default=False)
    is_deleted = models.BooleanField(default=False)
    is_primary = models.BooleanField(default=False)
    color = models.CharField(max_length=16, blank=True)
    permission_level = models.CharField(
        max_length=16, choices=PermissionLevel.choices, default=PermissionLevel.UNRESTRICTED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CalendarQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "provider_calendar_id"], name="calendar_unique_provider_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.name}"


# The row of a managed recurring series itself (Event.is_series_master): reads, free/busy and
# availability show its instances, rows of their own, never the series row.
SERIES_MASTER = Q(is_recurring=True, original_start__isnull=True, event_id__isnull=False)


class SpanSeconds(Func):
    """An event's `end - start` in seconds, written with the database's own immutable functions
    so that it may appear in an index predicate (event_long_end_idx)."""

    output_field = FloatField()

    def __init__(self):
        super().__init__(models.F("end"), models.F("start"))

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, template="EXTRACT(EPOCH FROM (%(expressions)s))", arg_joiner=" - "
        )

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
        )


# Window reads bound their scan on start from both sides by assuming an event lasts at most
# this long; the few longer ones (multi-day events) are read apart, by event_long_end_idx
# (EventQuerySet.split_by_reach; docs/api.md, Reading events).
LONG_EVENT_SPAN = timedelta(days=1)
LONG_EVENT = Q(GreaterThan(SpanSeconds(), int(LONG_EVENT_SPAN.total_seconds())))
# SQLite measures the span in floating-point days: this margin keeps an event of exactly
# LONG_EVENT_SPAN, rounded either way, on the right side of the split.
_SPAN_MARGIN = timedelta(minutes=1)


class EventQuerySet(models.QuerySet):
    def for_account(self, account: Account) -> "EventQuerySet":
        return self.filter(account=account)

    def overlapping(self, start, end) -> "EventQuerySet":
        """Events that end after `start` and begin before `end` (half-open window)."""
        return self.filter(end__gt=start, start__lt=end)

    def live(self) -> "EventQuerySet":
        return self.filter(is_deleted=False)

    def split_by_reach(self, ends_after: datetime) -> tuple["EventQuerySet", "EventQuerySet"]:
        """(long, short): two disjoint parts holding every event of this queryset that ends
        after `ends_after`, each bounded on start so that an index serves it.

        `short` starts at most LONG_EVENT_SPAN (and a margin) before `ends_after`: an event
        that starts earlier and still ends after it is longer than that, so it is in `long`,
        whose events are few and found by event_long_end_idx. Every event of `long` starts
        before every event of `short`, so in (start, id) order the parts follow each other.
        The caller still filters on the end (the parts may hold events ending earlier)."""
        bound = ends_after - LONG_EVENT_SPAN - _SPAN_MARGIN
        long = self.filter(LONG_EVENT, start__lt=bound, end__gt=ends_after)
        return long, self.filter(start__gte=bound)

    def busy(self) -> "EventQuerySet":
        """Events that make the end-user busy: not cancelled, not declined by them, not free
        (transparent), and not a managed series' own row (its instances are busy). The one
        rule of GET /v1/free_busy and of availability."""
        return (
            self.exclude(status=Event.Status.CANCELLED)
            .exclude(participation_status=Event.ParticipationStatus.DECLINED)
            .exclude(transparency=Event.Transparency.TRANSPARENT)
            .filter(~SERIES_MASTER)
        )


class Event(models.Model):
    """One cached event, or one instance of a recurring series, inside the sync window.

    Timed events: `start`/`end` are aware UTC instants and `tzid` the provider's zone.
    All-day events: `start_date`/`end_date` (end exclusive) are the truth; `start`/`end` hold
    those dates at 00:00 UTC so that window queries can use one index, and readers refine the
    boundaries in the caller's zone.
    """

    class Status(models.TextChoices):
        CONFIRMED = "confirmed"
        TENTATIVE = "tentative"
        CANCELLED = "cancelled"
        UNKNOWN = "unknown"

    class Transparency(models.TextChoices):
        OPAQUE = "opaque"
        TRANSPARENT = "transparent"
        UNKNOWN = "unknown"

    class ParticipationStatus(models.TextChoices):
        NEEDS_ACTION = "needs_action"
        ACCEPTED = "accepted"
        DECLINED = "declined"
        TENTATIVE = "tentative"
        UNKNOWN = "unknown"

    event_uid = models.CharField(
        max_length=64, unique=True, default=new_external_event_uid, editable=False
    )
    # Denormalized from calendar.profile.account: the read API filters every query by it.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="events")
    calendar = models.ForeignKey(Calendar, on_delete=models.CASCADE, related_name="events")

    # Provider identity. `provider_key` names the event or series at the provider (Google/Graph
    # event id of the series, iCalendar UID for CalDAV/ICS); `original_start` is set for an
    # instance of a recurring series (its RECURRENCE-ID / originalStartTime).
    provider_key = models.CharField(max_length=1024)
    original_start = models.DateTimeField(null=True, blank=True)
    ical_uid = models.CharField(max_length=1024, blank=True)
    # Where the provider stores it (CalDAV resource href, Graph/Google id) and its version.
    provider_resource = models.CharField(max_length=1024, blank=True)
    provider_etag = models.CharField(max_length=255, blank=True)

    summary = models.TextField(blank=True)
    description = models.TextField(blank=True)
    location_description = models.TextField(blank=True)
    location_lat = models.CharField(max_length=32, blank=True)
    location_long = models.CharField(max_length=32, blank=True)
    url = models.URLField(max_length=2048, blank=True)
    meeting_url = models.URLField(max_length=2048, blank=True)

    start = models.DateTimeField()
    end = models.DateTimeField()
    is_all_day = models.BooleanField(default=False)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    tzid = models.CharField(max_length=64, default="Etc/UTC")

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CONFIRMED)
    transparency = models.CharField(
        max_length=16, choices=Transparency.choices, default=Transparency.OPAQUE
    )
    # Cronofy's extended_transparency where the provider says more than busy/free
    # (out_of_office, working_elsewhere); empty: the same as `transparency`.
    extended_transparency = models.CharField(max_length=20, blank=True)
    participation_status = models.CharField(
        max_length=16, choices=ParticipationStatus.choices, default=ParticipationStatus.UNKNOWN
    )
    attendees = models.JSONField(default=list, blank=True)  # [{email, display_name, status}]
    organizer = models.JSONField(default=dict, blank=True)  # {email, display_name}
    categories = models.JSONField(default=list, blank=True)
    is_recurring = models.BooleanField(default=False)
    is_private = models.BooleanField(default=False)

    provider_created_at = models.DateTimeField(null=True, blank=True)
    provider_updated_at = models.DateTimeField(null=True, blank=True)
    is_deleted = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    # Managed events: the integrator application that owns it and its own event_id.
    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="managed_events",
    )
    event_id = models.CharField(max_length=255, null=True, blank=True)

    # Hash of the normalized content: an unchanged event is detected without comparing fields.
    fingerprint = models.CharField(max_length=64, blank=True)
    raw = models.TextField(blank=True)  # the provider's payload (iCalendar text, JSON)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        constraints = [
            # One row per provider identity: a single event or series master...
            models.UniqueConstraint(
                fields=["calendar", "provider_key"],
                condition=Q(original_start__isnull=True),
                name="event_unique_provider_identity",
            ),
            # ...and one per instance of a series (partial indexes keep NULL out of the key).
            models.UniqueConstraint(
                fields=["calendar", "provider_key", "original_start"],
                condition=Q(original_start__isnull=False),
                name="event_unique_provider_instance",
            ),
            # One managed event (or series master) per event_id; the instances of a managed
            # series carry their master's event_id too.
            models.UniqueConstraint(
                fields=["application", "calendar", "event_id"],
                condition=Q(event_id__isnull=False, original_start__isnull=True),
                name="event_unique_managed_id",
            ),
            models.CheckConstraint(
                condition=Q(end__gte=models.F("start")), name="event_end_after_start"
            ),
        ]
        indexes = [
            # GET /v1/events and /v1/free_busy: an account's events overlapping a window, ordered
            # by start (keyset paging on start, id).
            models.Index(fields=["account", "start", "id"], name="event_account_start_idx"),
            # The same reads' events longer than LONG_EVENT_SPAN (EventQuerySet.split_by_reach):
            # those still running at the window's start, by their end.
            models.Index(
                fields=["account", "end"],
                condition=LONG_EVENT,
                name="event_long_end_idx",
            ),
            # Same with calendar_ids[] filters, and the sync engine's per-calendar windows.
            models.Index(fields=["calendar", "start"], name="event_calendar_start_idx"),
            # last_modified reads: events of an account changed since a time.
            models.Index(fields=["account", "updated_at"], name="event_account_updated_idx"),
            # Sync: a calendar's events of some provider keys (UIDs), instances included. The
            # partial unique indexes above cannot serve it (the query does not imply their
            # conditions), so without this it scans the whole calendar (bench/sync_caldav.py).
            models.Index(fields=["calendar", "provider_key"], name="event_calendar_key_idx"),
            # Availability: every member's busy rows in a window, in one query. Partial on the
            # free/busy rule (EventQuerySet.busy) and covering what the engine reads, so that
            # PostgreSQL answers from the index alone (bench/availability.py).
            models.Index(
                fields=["account", "start"],
                include=["end", "calendar", "is_all_day", "start_date", "end_date"],
                condition=Q(is_deleted=False)
                & ~Q(status="cancelled")
                & ~Q(participation_status="declined")
                & ~Q(transparency="transparent")
                & ~SERIES_MASTER,
                name="event_busy_start_idx",
            ),
        ]

    def __str__(self) -> str:
        # The id only: the summary is the end-user's content, and this string ends up in
        # admin titles, related-object columns, logs and audit entries.
        return self.event_uid

    @property
    def is_series_master(self) -> bool:
        """The row of a managed recurring series itself: the integrator's writes name it, the
        reads show its instances instead (rows of their own, under the same event_id)."""
        return self.is_recurring and self.original_start is None and self.event_id is not None


class ChangeLogEntry(models.Model):
    """One change to an account's cached data, in commit order (monotonic `sequence`).

    Written in the same transaction as the change it records: `last_modified` reads,
    `change` notifications and GET /v1/changes derive from it, so a committed change cannot be
    missed. Event and calendar kinds name their calendar (and event); profile kinds their
    profile.
    """

    class Kind(models.TextChoices):
        EVENT_CREATED = "event_created"
        EVENT_UPDATED = "event_updated"
        EVENT_DELETED = "event_deleted"
        CALENDAR_CREATED = "calendar_created"
        CALENDAR_UPDATED = "calendar_updated"
        CALENDAR_DELETED = "calendar_deleted"
        PROFILE_CONNECTED = "profile_connected"
        PROFILE_DISCONNECTED = "profile_disconnected"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="changes")
    sequence = models.BigIntegerField()
    kind = models.CharField(max_length=24, choices=Kind.choices)
    calendar = models.ForeignKey(
        Calendar, on_delete=models.CASCADE, null=True, blank=True, related_name="changes"
    )
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, null=True, blank=True, related_name="changes"
    )
    # Set on profile_connected / profile_disconnected (other kinds reach it via the calendar).
    profile = models.ForeignKey(
        Profile, on_delete=models.CASCADE, null=True, blank=True, related_name="changes"
    )
    # The integrator application whose API write caused the change (None: the provider).
    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    changed_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "change log entries"
        constraints = [
            models.UniqueConstraint(fields=["account", "sequence"], name="changelog_unique_seq")
        ]
        # The unique (account, sequence) index also serves the relay and GET /v1/changes:
        # entries after a cursor, and the "is the entry after this cursor still kept" probe.
        indexes = [
            # last_modified reads and changes_since: an account's changes after a time.
            models.Index(fields=["account", "changed_at"], name="changelog_account_time_idx"),
            # The retention purge: entries of every account older than the cut-off.
            models.Index(fields=["changed_at"], name="changelog_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}#{self.sequence} {self.kind}"


class ManagedEventWriteQuerySet(models.QuerySet):
    def due(self, now) -> "ManagedEventWriteQuerySet":
        """Pending writes whose (next) attempt is due and that no reconciler holds."""
        return self.filter(
            status=ManagedEventWrite.Status.PENDING, next_attempt_at__lte=now
        ).filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))

    def pending(self) -> "ManagedEventWriteQuerySet":
        return self.filter(status=ManagedEventWrite.Status.PENDING)


class ManagedEventWrite(models.Model):
    """An integrator's write to one event: the desired provider state, recorded before any task.

    Written in the transaction that answers 202 (together with the cached event and the change
    log); the sync app's reconciler claims due rows, compares `desired` with what the provider
    holds and makes only the calls needed. Retry state lives here; the queue is only the
    trigger. For one event, the newest row (highest id) is the truth: older pending rows are
    superseded by it, never applied after it.

    `desired` (JSON) for an upsert: the Event content fields (`summary`, `description`,
    `location_*`, `url`, `start`/`end` as ISO 8601 UTC, `is_all_day`, `start_date`/`end_date`
    as ISO dates, `tzid`, `transparency`, `is_private`, `status`) plus what only the provider
    keeps: `reminders` (minutes, priority order), `reminders_create_only`, `color`,
    `attendees_invite` / `attendees_remove` ([{email, display_name}]), `conferencing`
    ({profile_id: explicit | default | none, join_url, provider_description}; null:
    leave as is) and, for managed events only, `recurrence` (calendars.recurrence's rule; null:
    a single event; absent for external events, whose series is the provider's). For a
    participation change: {"participation_status": "accepted" | "tentative" | "declined"}.
    Empty for a delete.
    """

    class Operation(models.TextChoices):
        UPSERT = "upsert"
        DELETE = "delete"
        PARTICIPATION = "participation"

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"  # permanent failure: support staff may retry from the admin
        SUPERSEDED = "superseded"  # a newer write of the same event replaced it

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="event_writes")
    calendar = models.ForeignKey(Calendar, on_delete=models.CASCADE, related_name="event_writes")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="writes")
    # Who asked (None: a support-staff or internal write).
    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    operation = models.CharField(max_length=16, choices=Operation.choices)
    desired = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)

    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Lease of the reconciler working on it (claimed by conditional UPDATE / SKIP LOCKED).
    locked_until = models.DateTimeField(null=True, blank=True)
    lock_token = models.CharField(max_length=32, blank=True)
    last_error = models.TextField(blank=True)
    last_error_class = models.CharField(max_length=64, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ManagedEventWriteQuerySet.as_manager()

    class Meta:
        indexes = [
            # The reconciler tick: pending writes due now, oldest first (partial: done rows,
            # the vast majority, stay out of it).
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status="pending"),
                name="eventwrite_due_idx",
            ),
            # The support dashboard's failed-writes count and the admin's status filter (the
            # few failed rows, which the retention purge keeps).
            models.Index(fields=["id"], condition=Q(status="failed"), name="eventwrite_failed_idx"),
            # Supersede / newest-write checks and the admin's per-event history.
            models.Index(fields=["event", "id"], name="eventwrite_event_idx"),
            # A sync leaves alone events whose write reached the provider after its snapshot.
            models.Index(fields=["calendar", "completed_at"], name="eventwrite_calendar_done_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.event_id} ({self.status})"


class AvailabilityRule(models.Model):
    """An account's weekly working hours, named by the integrator (`availability_rule_id`),
    used when an availability query asks for the member's managed availability."""

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="availability_rules"
    )
    rule_id = models.CharField(max_length=255)
    tzid = models.CharField(max_length=64)
    # Public calendar ids whose events count as busy under this rule; empty: every calendar.
    calendar_ids = models.JSONField(default=list, blank=True)
    # [{"day": "monday", "start_time": "09:30", "end_time": "12:30"}], wall-clock in tzid.
    weekly_periods = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Also the index of an availability query's one read of its members' rules.
            models.UniqueConstraint(
                fields=["account", "rule_id"], name="availability_rule_unique_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} ({self.tzid})"


class AvailablePeriod(models.Model):
    """A one-off stretch in which an account may be booked (`available_period_id`), used with
    its availability rules for managed availability."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="available_periods")
    period_id = models.CharField(max_length=255)
    start = models.DateTimeField()
    end = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "period_id"], name="available_period_unique_id"
            ),
            models.CheckConstraint(
                condition=Q(end__gt=models.F("start")), name="available_period_end_after_start"
            ),
        ]
        indexes = [
            # Availability queries and GET /v1/available_periods: an account's periods that
            # overlap a window.
            models.Index(fields=["account", "start"], name="available_period_start_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.period_id} {self.start:%Y-%m-%d %H:%M}"
