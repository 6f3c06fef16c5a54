from django.conf import settings
from django.contrib import admin, messages
from django.utils import timezone

from accounts.admin_base import ReadOnlyAdmin
from accounts.audit import record_for_each
from sync import services
from sync.models import CalendarSyncState, ProfileSyncState, ProviderSubscription, SyncActivity


@admin.register(CalendarSyncState)
class CalendarSyncStateAdmin(ReadOnlyAdmin):
    """Where each calendar's sync stands: support staff look here first."""

    list_display = (
        "calendar",
        "profile_status",
        "last_synced_at",
        "next_poll_at",
        "consecutive_failures",
        "last_error_class",
        "last_error_at",
    )
    list_filter = ("last_error_class", "calendar__profile__provider", "calendar__profile__status")
    search_fields = (
        "calendar__public_id",
        "calendar__profile__public_id",
        "calendar__profile__account__email",
    )
    list_select_related = ("calendar__profile",)
    raw_id_fields = ("calendar",)
    # The cursor may embed provider details; support sees whether there is one, not its value.
    exclude = ("cursor", "lock_token")
    readonly_fields = (
        "has_cursor",
        "window_start",
        "last_synced_at",
        "last_attempt_at",
        "last_error",
        "last_error_class",
        "last_error_at",
        "consecutive_failures",
        "locked_until",
        "created_at",
        "updated_at",
    )
    actions = ["sync_now", "full_resync"]
    show_full_result_count = False

    @admin.display(description="profile")
    def profile_status(self, obj: CalendarSyncState) -> str:
        return obj.calendar.profile.status

    @admin.display(boolean=True, description="cursor stored")
    def has_cursor(self, obj: CalendarSyncState) -> bool:
        return bool(obj.cursor)

    @admin.action(description="Sync now")
    def sync_now(self, request, queryset):
        calendars = [state.calendar for state in queryset]  # the selection, before it syncs
        count = services.request_sync(calendar_ids=[c.pk for c in calendars])
        record_for_each(request, action="sync now", targets=calendars)
        self.message_user(request, f"{count} calendar sync(s) queued.", messages.SUCCESS)

    @admin.action(description="Full resync")
    def full_resync(self, request, queryset):
        calendars = [state.calendar for state in queryset]  # the selection, before it syncs
        count = services.request_sync(calendar_ids=[c.pk for c in calendars], full=True)
        record_for_each(request, action="full resync", targets=calendars)
        self.message_user(request, f"{count} calendar full resync(s) queued.", messages.SUCCESS)


@admin.register(ProfileSyncState)
class ProfileSyncStateAdmin(ReadOnlyAdmin):
    """When each profile's calendar list was last refreshed."""

    list_display = ("profile", "profile_status", "calendars_refreshed_at")
    list_filter = ("profile__provider", "profile__status")
    search_fields = ("profile__public_id", "profile__account__email")
    list_select_related = ("profile",)
    show_full_result_count = False

    @admin.display(description="status")
    def profile_status(self, obj: ProfileSyncState) -> str:
        return obj.profile.status


class PushHealthFilter(admin.SimpleListFilter):
    """The support dashboard's push figures, with the same querysets."""

    title = "push health"
    parameter_name = "push"

    def lookups(self, request, model_admin):
        return [("expired", "expired"), ("expiring", "due for renewal")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "expired":
            return queryset.expired(now)
        if self.value() == "expiring":
            return queryset.expiring(now, settings.SYNC_PUSH_RENEW_BEFORE_SECONDS)
        return queryset


@admin.register(ProviderSubscription)
class ProviderSubscriptionAdmin(ReadOnlyAdmin):
    """Push subscriptions at the providers; the secret is never shown."""

    list_display = ("calendar", "expires_at", "last_notification_at", "created_at")
    list_filter = (PushHealthFilter,)
    search_fields = ("calendar__public_id", "channel_id")
    list_select_related = ("calendar",)
    exclude = ("secret",)
    readonly_fields = (
        "calendar",
        "channel_id",
        "resource_id",
        "expires_at",
        "last_notification_at",
        "created_at",
        "updated_at",
    )


@admin.register(SyncActivity)
class SyncActivityAdmin(ReadOnlyAdmin):
    """The history behind the account page's timeline: syncs that changed something or
    failed, token refreshes, provider notifications received."""

    list_display = ("at", "kind", "outcome", "profile", "calendar", "created", "deleted", "detail")
    list_filter = ("kind", "outcome")
    search_fields = ("profile__public_id", "calendar__public_id", "profile__account__email")
    list_select_related = ("profile", "calendar")
    date_hierarchy = "at"
    ordering = ("-at",)
    show_full_result_count = False
