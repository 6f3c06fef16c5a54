"""Push channels (`chn_…`), the notification outbox and the log of every delivery attempt."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.ids import make_public_id, new_channel_id
from accounts.models import Account


def new_delivery_id() -> str:
    """Stable id of one notification, sent with every attempt so receivers can deduplicate."""
    return make_public_id("ntf_", 16)


class ChannelQuerySet(models.QuerySet):
    def for_caller(self, account: Account, application) -> "ChannelQuerySet":
        """The channels of the (account, application) pair an access token stands for."""
        return self.filter(account=account, application=application)

    def open(self) -> "ChannelQuerySet":
        return self.filter(status=Channel.Status.OPEN)

    def closed_since(self, moment) -> "ChannelQuerySet":
        """Channels closed (by the integrator, support or after 24 h of failures) since then."""
        return self.filter(status=Channel.Status.CLOSED, closed_at__gte=moment)

    def failing(self, since) -> "ChannelQuerySet":
        """Open channels whose receiver is not answering: a notification being retried, or
        one given up on since `since` (the support dashboard and the admin filter)."""
        troubled = Notification.objects.filter(channel=models.OuterRef("pk")).filter(
            models.Q(status=Notification.Status.PENDING, attempts__gt=0)
            | models.Q(status=Notification.Status.FAILED, finished_at__gte=since)
        )
        return self.open().filter(models.Exists(troubled))


class Channel(models.Model):
    """Where an integrator application wants to hear about one account's changes."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    public_id = models.CharField(max_length=40, unique=True, default=new_channel_id, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="channels")
    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="push_channels",
    )
    callback_url = models.CharField(max_length=1024)
    # The filters as the integrator gave them (only non-default ones), echoed in every body.
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.CharField(max_length=255, blank=True)
    # Relay cursor: the last change-log sequence of the account this channel has been matched
    # against. Not advanced while closed, so a reopened channel hears about what it missed.
    last_relayed_sequence = models.BigIntegerField(default=0)
    # The last sequence a `change` notification of this channel has covered: the next one
    # covers (this, its own through], so consecutive bodies chain and a receiver sees a gap.
    last_notified_sequence = models.BigIntegerField(default=0)
    # Per-channel concurrency guard: set while one of its notifications is being sent (equal to
    # that claim's lease). A dispatcher claims only channels whose guard is empty or lapsed.
    busy_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        indexes = [
            # Relay and notify_*: the open channels of an account; quota count per account.
            models.Index(fields=["account", "status"], name="channel_account_status_idx"),
            # GET /v1/channels: the open channels of (account, application).
            models.Index(
                fields=["application", "account", "status"], name="channel_app_account_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} → {self.callback_url}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    @property
    def calendar_ids(self) -> list[str]:
        return list(self.filters.get("calendar_ids") or [])

    @property
    def only_managed(self) -> bool:
        return bool(self.filters.get("only_managed"))

    def wire(self) -> dict:
        """The channel as the API and notification bodies show it (docs/api.md, Channels)."""
        return {
            "channel_id": self.public_id,
            "callback_url": self.callback_url,
            "filters": dict(self.filters),
        }


class Notification(models.Model):
    """One notification to one channel: the outbox row, carrying its own retry state.

    Written in the transaction of the change that causes it (or derived from the committed
    change log by the relay). Ends in exactly one terminal state: delivered, failed (24 hours of
    failures) or cancelled (its channel was closed by the integrator). Never deleted silently.
    """

    class Type(models.TextChoices):
        VERIFICATION = "verification"
        CHANGE = "change"
        PROFILE_DISCONNECTED = "profile_disconnected"
        PROFILE_INITIAL_SYNC_COMPLETED = "profile_initial_sync_completed"
        GDPR_REQUESTED = "gdpr_requested"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    delivery_id = models.CharField(
        max_length=40, unique=True, default=new_delivery_id, editable=False
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    type = models.CharField(max_length=40, choices=Type.choices)
    # `change` only: the earliest unsent change it covers (whole seconds, UTC).
    changes_since = models.DateTimeField(null=True, blank=True)
    # `change` only: the change-log range it covers, (after, through] (docs/api.md, Push
    # notifications); null on rows made before ranges were kept.
    changes_after_sequence = models.BigIntegerField(null=True, blank=True)
    changes_through_sequence = models.BigIntegerField(null=True, blank=True)
    # `change` only: made by POST /v1/channels/{id}/replay rather than by the relay.
    is_replay = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Number of attempts claimed so far; the claim increments it, so it names the attempt.
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # Dispatcher claim: due pending rows, and sending rows whose lease lapsed.
            models.Index(fields=["status", "next_attempt_at"], name="notification_due_idx"),
            # Relay coalescing (a channel's pending `change`) and closing a channel.
            models.Index(fields=["channel", "status"], name="notification_channel_idx"),
            # Retention purge: finished notifications older than the cut-off.
            models.Index(
                fields=["finished_at"],
                condition=Q(finished_at__isnull=False),
                name="notification_finished_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id} {self.type} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in (self.Status.DELIVERED, self.Status.FAILED, self.Status.CANCELLED)


class DeliveryAttempt(models.Model):
    """One POST (or refusal to POST) of a notification, for support staff and integrators."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    # The address that was checked and connected to (empty when refused before connecting).
    remote_ip = models.CharField(max_length=64, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    is_success = models.BooleanField(default=False)
    error = models.CharField(max_length=500, blank=True)
    response_body = models.TextField(blank=True)  # truncated to PUSH_RESPONSE_BODY_LIMIT

    class Meta:
        constraints = [
            # A claim names its attempt number; a stale worker can log but never overwrite.
            models.UniqueConstraint(
                fields=["notification", "number"], name="attempt_unique_number"
            ),
        ]
        indexes = [
            # Admin's attempt log, newest first; a retention purge by age.
            models.Index(fields=["started_at"], name="attempt_started_idx"),
        ]

    def __str__(self) -> str:
        outcome = self.status_code or self.error or "?"
        return f"attempt {self.number} of {self.notification_id}: {outcome}"


class ProcessHeartbeat(models.Model):
    """When a long-running process (the delivery process, `manage.py deliver`) last showed it
    was alive: one row per process name, written at most every HEARTBEAT_SECONDS, so that a
    readiness check on any host can tell whether deliveries are being made."""

    name = models.CharField(max_length=200, unique=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
