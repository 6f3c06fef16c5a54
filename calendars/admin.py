from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path
from django.views.decorators.http import require_POST

from accounts.admin_base import ReadOnlyAdmin
from accounts.audit import record_staff_action
from calendars.models import Calendar, ChangeLogEntry, Event, ManagedEventWrite
from calendars.services import retry_event_write


@admin.register(Calendar)
class CalendarAdmin(ReadOnlyAdmin):
    # The calendar list is the provider's (synced) or the API's: support never edits or
    # deletes one here (that would fork the cache from the provider).
    list_display = ("public_id", "name", "profile", "is_primary", "is_readonly", "is_deleted")
    list_filter = ("profile__provider", "is_deleted", "is_readonly", "permission_level")
    search_fields = ("public_id", "name", "profile__public_id", "profile__account__email")
    list_select_related = ("profile",)
    raw_id_fields = ("profile",)
    readonly_fields = ("public_id", "created_at", "updated_at")
    show_full_result_count = False


# What an event says, as opposed to when it is: hidden from support staff unless they reveal
# it, which the audit log records (docs/operations.md, The support console).
EVENT_CONTENT_FIELDS = (
    "summary",
    "description",
    "location_description",
    "location_lat",
    "location_long",
    "url",
    "meeting_url",
    "attendees",
    "organizer",
    "categories",
    "raw",
)
REVEAL_ACTION = "reveal event content"


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    # The cache holds what the provider says: never edited or deleted here.
    list_display = ("event_uid", "calendar", "start", "end", "status", "is_deleted")
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
    exclude = EVENT_CONTENT_FIELDS
    date_hierarchy = "start"
    show_full_result_count = False
    change_form_template = "console/event_change_form.html"

    def get_urls(self):
        reveal = self.admin_site.admin_view(require_POST(self.reveal_view))
        return [
            path("<int:object_id>/reveal/", reveal, name="calendars_event_reveal"),
            *super().get_urls(),
        ]

    def reveal_view(self, request, object_id: int):
        """Show one event's content to a staff member who asked for it; recorded first."""
        event = get_object_or_404(Event, pk=object_id)
        if not self.has_view_permission(request, event):
            raise PermissionDenied
        record_staff_action(user=request.user, action=REVEAL_ACTION, target=event)
        content = [(name, getattr(event, name)) for name in EVENT_CONTENT_FIELDS]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": event,
            "title": f"Content of {event.event_uid}",
            "content": content,
        }
        return TemplateResponse(request, "console/event_content.html", context)


@admin.register(ChangeLogEntry)
class ChangeLogEntryAdmin(ReadOnlyAdmin):
    # Append-only history, numbered without gaps: a deleted entry would be a hole that a
    # /v1/changes cursor reads past (or a spurious 410).
    list_display = ("account", "sequence", "kind", "profile", "calendar", "event", "changed_at")
    list_filter = ("kind",)
    search_fields = ("account__public_id", "account__email", "event__event_uid")
    list_select_related = ("account", "profile", "calendar", "event")
    raw_id_fields = ("account", "profile", "calendar", "event", "application")
    show_full_result_count = False


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
    # `desired` carries the event's content: only which fields the write sets is shown.
    exclude = ("lock_token", "desired")
    readonly_fields = (
        "account",
        "calendar",
        "event",
        "application",
        "operation",
        "desired_fields",
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

    @admin.display(description="fields written")
    def desired_fields(self, obj: ManagedEventWrite) -> str:
        return ", ".join(sorted(obj.desired)) or "-"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the outbox is the record of what the integrator asked for

    @admin.action(description="Retry now")
    def retry_now(self, request, queryset):
        retried = 0
        selected = list(queryset)  # retrying moves rows out of a list filtered by status
        for write in selected:
            done = retry_event_write(write=write)
            retried += done
            record_staff_action(
                user=request.user,
                action="retry write",
                target=write,
                detail="queued again" if done else "not failed: left as it was",
            )
        skipped = len(selected) - retried
        self.message_user(
            request,
            f"{retried} write(s) queued again"
            + (f"; {skipped} not failed, left as they were." if skipped else "."),
            messages.SUCCESS,
        )
