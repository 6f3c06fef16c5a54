"""Sync state: where each calendar's sync stands, and what we know of its provider resources."""

from datetime import timedelta

from django.db import models
from django.db.models import Q

from accounts.fields import EncryptedTextField
from accounts.models import Profile
from calendars.models import Calendar


class CalendarSyncStateQuerySet(models.QuerySet):
    def due(self, now) -> "CalendarSyncStateQuerySet":
        """States whose poll is due and not leased, oldest first: a range scan of the
        next_poll_at index, with no join. A state whose calendar was deleted or whose profile
        was disconnected is still due once; the tick then parks it (next_poll_at empty) rather
        than polling it (sync.services.polling)."""
        return (
            self.filter(next_poll_at__lte=now)
            .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
            .order_by("next_poll_at")
        )


class CalendarSyncState(models.Model):
    """Per-calendar sync bookkeeping. Retry state lives here; the queue is only the trigger."""

    calendar = models.OneToOneField(Calendar, on_delete=models.CASCADE, related_name="sync_state")
    # The adapter's opaque cursor (CalDAV sync-token and ctag, ICS validators, Google sync
    # token...): the engine never reads it. Saved only in the transaction that stores the data
    # it covers; empty = the next sync is a full one.
    cursor = models.TextField(blank=True)
    # First day of the recurrence window the cached instances were expanded for; a new day
    # re-expands the stored series locally (the window rolls forward daily).
    window_start = models.DateField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)  # last success
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_class = models.CharField(max_length=64, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # When the next poll is due; empty = not polled at all (the calendar was deleted or its
    # profile disconnected: a relink or the calendar's return sets it again).
    next_poll_at = models.DateTimeField(null=True, blank=True)
    # The tick's claim on a due poll, checked when the poll task starts: a task queued twice
    # (its calendar claimed again after CLAIM_SECONDS) or one a sync overtook finds another
    # claim, or none, and does nothing. Cleared by every sync that takes the lease.
    poll_claim = models.CharField(max_length=32, blank=True)
    # The last sync that changed the cache: a calendar that changed recently is polled
    # sooner (sync.services.polling, poll_interval).
    last_changed_at = models.DateTimeField(null=True, blank=True)
    # A provider push notification asked for a sync (cleared when a sync takes the lease): a
    # burst of notifications queues one sync, and one arriving during a sync queues the next.
    push_requested_at = models.DateTimeField(null=True, blank=True)
    # Creating the calendar's provider push subscription failed this many times in a row (a
    # shared calendar may refuse it for good): the next try waits until push_retry_at, so
    # calendars that keep refusing neither cost calls every run nor starve the others.
    push_failures = models.PositiveIntegerField(default=0)
    push_retry_at = models.DateTimeField(null=True, blank=True)
    # Single-flight lease: a sync holds the calendar until this time (conditional UPDATE).
    locked_until = models.DateTimeField(null=True, blank=True)
    lock_token = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CalendarSyncStateQuerySet.as_manager()

    class Meta:
        indexes = [
            # The tick: states with next_poll_at <= now, oldest first.
            models.Index(fields=["next_poll_at"], name="syncstate_next_poll_idx"),
        ]

    def __str__(self) -> str:
        return f"sync state of {self.calendar_id}"


class ProfileSyncState(models.Model):
    """Per-profile bookkeeping: when the calendar list was last refreshed, and the lease of
    an OAuth token refresh."""

    profile = models.OneToOneField(Profile, on_delete=models.CASCADE, related_name="sync_state")
    calendars_refreshed_at = models.DateTimeField(null=True, blank=True)
    # One OAuth token refresh at a time per profile (sync.services.credentials): a lease
    # claimed by conditional UPDATE, so that no database lock is held during the HTTP call.
    credentials_locked_until = models.DateTimeField(null=True, blank=True)
    credentials_lock_token = models.CharField(max_length=32, blank=True)

    def __str__(self) -> str:
        return f"sync state of {self.profile_id}"


class SyncedResource(models.Model):
    """One resource at the provider (a CalDAV href, one UID of an ICS feed, a Google or Graph
    event id): `href` is its resource id, `etag` its version.

    Maps the resource to the iCalendar UIDs it held at our last sync, so that a deleted or
    changed resource tombstones exactly the events it produced, and keeps its version for the
    etag-diff fallback and for skipping unchanged feed entries.
    """

    calendar = models.ForeignKey(Calendar, on_delete=models.CASCADE, related_name="+")
    href = models.CharField(max_length=1024)  # the resource id
    etag = models.CharField(max_length=255, blank=True)  # its version
    uids = models.JSONField(default=list)
    # The resource's payload when it holds a recurring series (empty otherwise): the
    # daily window roll re-expands the series from it, without asking the provider.
    series_payload = models.TextField(blank=True)

    class Meta:
        constraints = [
            # Also serves the lookups "resources of a calendar at these hrefs" and the full map.
            models.UniqueConstraint(fields=["calendar", "href"], name="syncedresource_unique_href")
        ]

    def __str__(self) -> str:
        return self.href


class ProviderSubscriptionQuerySet(models.QuerySet):
    def expired(self, now) -> "ProviderSubscriptionQuerySet":
        """No longer delivering: push for these calendars is down until maintenance replaces
        them (they are polled at the normal interval meanwhile)."""
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__lte=now))

    def expiring(self, now, within_seconds: int) -> "ProviderSubscriptionQuerySet":
        """Still live but due for renewal within `within_seconds` (maintenance renews them)."""
        return self.filter(
            expires_at__gt=now, expires_at__lte=now + timedelta(seconds=within_seconds)
        )


class ProviderSubscription(models.Model):
    """A push subscription at the provider for one calendar (Google channel, Graph
    subscription): the provider POSTs to our receiver when the calendar changes. A hint to
    sync now; polling continues at a longer interval while the subscription is healthy."""

    calendar = models.OneToOneField(
        Calendar, on_delete=models.CASCADE, related_name="provider_subscription"
    )
    channel_id = models.CharField(max_length=64, unique=True)  # ours; the receiver looks it up
    resource_id = models.CharField(max_length=255, blank=True)  # the provider's, to stop it
    # Sent back with every notification: proves it comes from the provider we subscribed.
    secret = EncryptedTextField(bind_to="channel_id")
    expires_at = models.DateTimeField(null=True, blank=True)
    last_notification_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProviderSubscriptionQuerySet.as_manager()

    class Meta:
        indexes = [
            # The renewal job: subscriptions expiring soonest first.
            models.Index(fields=["expires_at"], name="providersub_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"push subscription of {self.calendar_id}"

    def is_healthy(self, now) -> bool:
        return self.expires_at is not None and self.expires_at > now


class ProviderRequestSlot(models.Model):
    """One of the concurrent provider-call slots of a profile, for providers that cap them
    (sync.services.governor): free when `held_until` is empty or past."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveSmallIntegerField()
    holder = models.CharField(max_length=32, blank=True)
    held_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # The claim: UPDATE ... WHERE profile = ? AND number = ? AND (free).
            models.UniqueConstraint(fields=["profile", "number"], name="requestslot_unique")
        ]

    def __str__(self) -> str:
        return f"request slot {self.number} of profile {self.profile_id}"


class SyncActivity(models.Model):
    """What the sync app did for a profile, for the support console's account timeline: each
    calendar sync with its counts or error, each OAuth token refresh and its outcome, each
    provider push notification accepted. History only (the state is on the sync states);
    written best effort by the services that did the work, purged after
    SYNC_ACTIVITY_RETENTION_DAYS (sync.services.activity)."""

    class Kind(models.TextChoices):
        SYNC = "sync", "Sync"
        TOKEN_REFRESH = "token_refresh", "Token refresh"
        PUSH_RECEIVED = "push_received", "Provider notification"

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    calendar = models.ForeignKey(
        Calendar, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # sync: synced | unchanged | failed; token_refresh: refreshed | refused | failed;
    # push_received: change, or the provider's lifecycle event (missed, subscriptionRemoved...)
    outcome = models.CharField(max_length=32)
    is_full = models.BooleanField(default=False)
    created = models.PositiveIntegerField(null=True, blank=True)
    updated = models.PositiveIntegerField(null=True, blank=True)
    unchanged = models.PositiveIntegerField(null=True, blank=True)
    deleted = models.PositiveIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)  # the error, when there was one
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "sync activities"
        indexes = [
            # The account timeline: a profile's activity, newest first.
            models.Index(fields=["profile", "-at"], name="syncactivity_profile_idx"),
            # The retention purge: rows older than the cut-off.
            models.Index(fields=["at"], name="syncactivity_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.outcome} of profile {self.profile_id}"
