"""Support staff: channels, the outbox and every delivery attempt; retry and reopen actions."""

from datetime import timedelta

from django.contrib import admin, messages
from django.utils import timezone

from accounts.admin_base import ReadOnlyAdmin
from accounts.audit import record_for_each, record_staff_action
from notifications import services
from notifications.models import Channel, DeliveryAttempt, Notification


class NotificationInline(admin.TabularInline):
    model = Notification
    fields = ("delivery_id", "type", "status", "attempts", "next_attempt_at", "last_error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-created_at",)
    max_num = 0

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-created_at")


# What the support dashboard calls recent trouble of a channel.
RECENT = timedelta(hours=24)


class ChannelTroubleFilter(admin.SimpleListFilter):
    """The dashboard's channel figures, with the same querysets."""

    title = "trouble"
    parameter_name = "trouble"

    def lookups(self, request, model_admin):
        return [("failing", "failing"), ("closed", "closed in the last 24 h")]

    def queryset(self, request, queryset):
        since = timezone.now() - RECENT
        if self.value() == "failing":
            return queryset.failing(since)
        if self.value() == "closed":
            return queryset.closed_since(since)
        return queryset


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("public_id", "account", "application", "callback_url", "status", "created_at")
    list_filter = (ChannelTroubleFilter, "status")
    search_fields = ("public_id", "callback_url", "account__public_id", "account__email")
    list_select_related = ("account", "application")
    raw_id_fields = ("account", "application")
    readonly_fields = (
        "public_id",
        "account",
        "application",
        "callback_url",
        "filters",
        "status",
        "last_relayed_sequence",
        "busy_until",
        "closed_at",
        "closed_reason",
        "created_at",
        "updated_at",
    )
    show_full_result_count = False
    actions = ["reopen_channels", "close_channels"]
    inlines = [NotificationInline]

    @admin.action(description="Reopen selected channels (changes missed while closed are sent)")
    def reopen_channels(self, request, queryset):
        channels = list(queryset)  # the selection: reopening moves rows out of a filtered list
        done = sum(services.reopen_channel(channel=channel) for channel in channels)
        record_for_each(request, action="reopen channel", targets=channels)
        self.message_user(request, f"Reopened {done} channel(s).", messages.SUCCESS)

    @admin.action(description="Close selected channels")
    def close_channels(self, request, queryset):
        channels = list(queryset)
        done = sum(
            services.close_channel(channel=channel, reason="closed by support staff")
            for channel in channels
        )
        record_for_each(request, action="close channel", targets=channels)
        self.message_user(request, f"Closed {done} channel(s).", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False  # integrators create channels through the API

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # close it instead: its notifications are the delivery history


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = (
        "number",
        "started_at",
        "duration_ms",
        "remote_ip",
        "status_code",
        "is_success",
        "error",
        "response_body",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    ordering = ("number",)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = (
        "delivery_id",
        "type",
        "channel",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
    )
    list_filter = ("status", "type")
    search_fields = ("delivery_id", "channel__public_id", "channel__callback_url")
    list_select_related = ("channel",)
    raw_id_fields = ("channel",)
    readonly_fields = [f.name for f in Notification._meta.fields]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["retry_now", "replay"]
    inlines = [DeliveryAttemptInline]

    @admin.action(description="Retry selected notifications now (same delivery id)")
    def retry_now(self, request, queryset):
        done = 0
        selected = list(queryset)  # retrying moves rows out of a list filtered by status
        for notification in selected:
            queued = services.retry_notification(notification=notification)
            done += queued
            record_staff_action(
                user=request.user,
                action="redeliver notification",
                target=notification,
                detail="queued" if queued else "not retryable",
            )
        skipped = len(selected) - done
        self.message_user(request, f"Queued {done} notification(s) for delivery.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"Skipped {skipped}: already delivered, cancelled, being sent, or their channel "
                "is closed (reopen it first).",
                messages.WARNING,
            )

    @admin.action(description="Replay selected notifications (a new delivery, a new delivery id)")
    def replay(self, request, queryset):
        replayed = 0
        selected = list(queryset)  # read once: the replays are new rows of this list
        for notification in selected:
            replay = services.replay_notification(notification=notification)
            replayed += replay is not None
            record_staff_action(
                user=request.user,
                action="replay notification",
                target=notification,
                detail=f"replayed as {replay.delivery_id}" if replay else "not replayable",
            )
        self.message_user(request, f"Replayed {replayed} notification(s).", messages.SUCCESS)
        if skipped := len(selected) - replayed:
            self.message_user(
                request,
                f"Skipped {skipped}: still on their way, or their channel is closed.",
                messages.WARNING,
            )

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the retention purge removes finished ones


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdmin):
    # The attempt log is history.
    list_display = (
        "notification",
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "is_success",
        "error",
    )
    list_filter = ("is_success",)
    search_fields = ("notification__delivery_id", "notification__channel__public_id")
    list_select_related = ("notification",)
    raw_id_fields = ("notification",)
    readonly_fields = [f.name for f in DeliveryAttempt._meta.fields]
    show_full_result_count = False
