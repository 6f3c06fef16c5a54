from django.contrib import admin

from calendars.models import Calendar, ChangeLogEntry, Event


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
    list_display = ("account", "sequence", "kind", "calendar", "event", "changed_at")
    list_filter = ("kind",)
    search_fields = ("account__public_id", "account__email", "event__event_uid")
    list_select_related = ("account", "calendar", "event")
    raw_id_fields = ("account", "calendar", "event", "application")
    show_full_result_count = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the log is append-only history
