from django.contrib import admin, messages

from calendars.models import Calendar, ChangeLogEntry, Event, ManagedEventWrite
from calendars.services import retry_event_write


@admin.register(Calendar)
class CalendarAdmin(admin.ModelAdmin):
    list_display = ("public_id", "name", "profile", "is_primary", "is_readonly", "is_deleted")
    list_filter = ("profile__provider", "is_deleted", "is_readonly", "permission_level")
    search_fields = ("public_id", "name", "profile__public_id", "profile__account__email")
    list_select_related = ("profile",)
    raw_id_fields = ("profile",)
    readonly_fields = ("public_id", "created_at", "updated_at")
    show_full_result_count = False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("event_uid", "summary", "calendar", "start", "end", "status", "is_deleted")
    list_filter = (
        "is_deleted",
        "status",
        "is_all_day",
        "is_recurring",
        "calendar__profile__provider",
    )
    search_fields = ("event_uid", "event_id", "calendar__public_id", "account__email", "ical_uid")
    list_select_related = ("calendar",)
    raw_id_fields = ("account", "calendar", "application")
    readonly_fields = ("event_uid", "fingerprint", "created_at", "updated_at")
    date_hierarchy = "start"
    show_full_result_count = False


@admin.register(ChangeLogEntry)
class ChangeLogEntryAdmin(admin.ModelAdmin):
    list_display = ("account", "sequence", "kind", "profile", "calendar", "event", "changed_at")
    list_filter = ("kind",)
    search_fields = ("account__public_id", "account__email", "event__event_uid")
    list_select_related = ("account", "profile", "calendar", "event")
    raw_id_fields = ("account", "profile", "calendar", "event", "application")
    show_full_result_count = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the log is append-only history


@admin.register(ManagedEventWrite)
class ManagedEventWriteAdmin(admin.ModelAdmin):
    """The write outbox: what reached the provider, what is waiting, what failed and why."""

    list_display = (
        "id",
        "event",
        "calendar",
        "operation",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
    )
    list_filter = ("status", "operation", "calendar__profile__provider")
    search_fields = ("event__event_uid", "event__event_id", "calendar__public_id", "account__email")
    list_select_related = ("event", "calendar")
    raw_id_fields = ("account", "calendar", "event", "application")
    exclude = ("lock_token",)
    readonly_fields = (
        "account",
        "calendar",
        "event",
        "application",
        "operation",
        "desired",
        "status",
        "attempts",
        "next_attempt_at",
        "locked_until",
        "last_error",
        "last_error_class",
        "completed_at",
        "created_at",
        "updated_at",
    )
    actions = ["retry_now"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False  # writes come from the API only

    @admin.action(description="Retry now")
    def retry_now(self, request, queryset):
        retried = sum(retry_event_write(write=write) for write in queryset)
        skipped = queryset.count() - retried
        self.message_user(
            request,
            f"{retried} write(s) queued again"
            + (f"; {skipped} not failed, left as they were." if skipped else "."),
            messages.SUCCESS,
        )
