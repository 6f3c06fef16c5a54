"""The console's additions to the apps' admin pages, where they need figures or services of
an app to the right: a calendar's sync health and its sync actions, a profile's relink URL
and its sync and disconnect actions. Every action calls a service and writes an audit entry."""

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from oauth2_provider.models import AccessToken

from accounts import services as account_services
from accounts.admin import AccountAdmin, ProfileAdmin
from accounts.audit import record_for_each
from accounts.links import profile_relink_url
from accounts.models import Account, Profile
from calendars import freshness
from calendars.admin import CalendarAdmin
from calendars.models import Calendar
from console.timeline import account_timeline, parse_page
from notifications.models import Channel
from sync import services as sync_services
from sync.freshness import calendars_in_state

DISCONNECTED_BY_SUPPORT = "disconnected by support staff"


class CalendarHealthFilter(admin.SimpleListFilter):
    """Failing or lagging calendars: the rule of calendars.freshness, as the dashboard counts."""

    title = "sync health"
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [(freshness.FAILING, "failing"), (freshness.LAGGING, "lagging")]

    def queryset(self, request, queryset):
        if self.value() not in (freshness.FAILING, freshness.LAGGING):
            return queryset
        matching = calendars_in_state(self.value(), timezone.now())
        return queryset.filter(pk__in=matching.values("pk"))


class CalendarHealthChangeList(ChangeList):
    """Reads the freshness of the calendars on the page in one query (freshness_of)."""

    def get_results(self, request):
        super().get_results(request)
        found = freshness.freshness_of([calendar.pk for calendar in self.result_list])
        for calendar in self.result_list:
            calendar.freshness = found[calendar.pk]


def queue_syncs(model_admin, request, calendar_ids: list[int], *, full: bool) -> None:
    # Callers pass the selection as a list, read before the sync is queued: a sync may run
    # (and move a calendar out of a filtered list) before the audit entries are written.
    count = sync_services.request_sync(calendar_ids=calendar_ids, full=full)
    kind = "full resync(s)" if full else "sync(s)"
    model_admin.message_user(request, f"{count} calendar {kind} queued.", messages.SUCCESS)


admin.site.unregister(Calendar)


@admin.register(Calendar)
class ConsoleCalendarAdmin(CalendarAdmin):
    list_display = (
        "public_id",
        "name",
        "provider",
        "health",
        "last_synced",
        "last_error",
    )
    list_filter = (CalendarHealthFilter, *CalendarAdmin.list_filter)
    list_select_related = ("profile", "sync_state")
    actions = ["sync_now", "full_resync"]

    def get_changelist(self, request, **kwargs):
        return CalendarHealthChangeList

    @admin.display(description="provider", ordering="profile__provider")
    def provider(self, obj: Calendar) -> str:
        return obj.profile.provider

    @admin.display(description="health")
    def health(self, obj: Calendar) -> str:
        fresh = getattr(obj, "freshness", None)
        return f"{fresh.state} ({fresh.source})" if fresh else "-"

    @admin.display(description="last success")
    def last_synced(self, obj: Calendar) -> str:
        fresh = getattr(obj, "freshness", None)
        if fresh is None:
            return "-"
        return fresh.to_payload()["last_synced_at"] or "never"

    @admin.display(description="last error")
    def last_error(self, obj: Calendar) -> str:
        state = getattr(obj, "sync_state", None)
        if state is None or not state.consecutive_failures:
            return ""
        return f"{state.last_error_class} ×{state.consecutive_failures}: {state.last_error[:60]}"

    @admin.action(description="Sync now")
    def sync_now(self, request, queryset):
        calendars = list(queryset)
        queue_syncs(self, request, [c.pk for c in calendars], full=False)
        record_for_each(request, action="sync now", targets=calendars)

    @admin.action(description="Full resync")
    def full_resync(self, request, queryset):
        calendars = list(queryset)
        queue_syncs(self, request, [c.pk for c in calendars], full=True)
        record_for_each(request, action="full resync", targets=calendars)


admin.site.unregister(Profile)


@admin.register(Profile)
class ConsoleProfileAdmin(ProfileAdmin):
    change_form_template = "console/profile_change_form.html"
    actions = ["sync_now", "disconnect"]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        profile = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if profile is not None:
            context["relink_url"] = profile_relink_url(request, profile.public_id)
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.action(description="Sync now (every live calendar of the profile)")
    def sync_now(self, request, queryset):
        profiles = list(queryset)
        calendar_ids = list(
            Calendar.objects.filter(profile__in=profiles, is_deleted=False).values_list(
                "pk", flat=True
            )
        )
        queue_syncs(self, request, calendar_ids, full=False)
        record_for_each(request, action="sync now", targets=profiles)

    @admin.action(description="Disconnect (stops syncing; the end-user must relink)")
    def disconnect(self, request, queryset):
        profiles = list(queryset)
        for profile in profiles:
            account_services.disconnect_profile(profile=profile, reason=DISCONNECTED_BY_SUPPORT)
        count = record_for_each(request, action="disconnect", targets=profiles)
        self.message_user(request, f"{count} profile(s) disconnected.", messages.SUCCESS)


admin.site.unregister(Account)


@admin.register(Account)
class ConsoleAccountAdmin(AccountAdmin):
    """Adds the account page: everything about one end-user on one page, with its timeline."""

    list_display = ("public_id", "email", "name", "overview_link", "created_at")

    def get_urls(self):
        overview = self.admin_site.admin_view(self.overview_view)
        return [
            path("<int:object_id>/overview/", overview, name="accounts_account_overview"),
            *super().get_urls(),
        ]

    @admin.display(description="account page")
    def overview_link(self, obj: Account) -> str:
        url = reverse("admin:accounts_account_overview", args=[obj.pk])
        return format_html('<a href="{}">overview and timeline</a>', url)

    def overview_view(self, request, object_id: int):
        account = get_object_or_404(Account.objects.select_related("user"), pk=object_id)
        if not self.has_view_permission(request, account):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": account,
            "title": f"Account {account.public_id}",
            **account_overview(request, account),
            "timeline": account_timeline(account, page=parse_page(request.GET.get("page"))),
        }
        return TemplateResponse(request, "console/account_overview.html", context)


def account_overview(request, account: Account) -> dict:
    """The account page's sections but the timeline: a few queries, none per row."""
    profiles = list(account.profiles.order_by("created_at"))
    calendars = list(
        Calendar.objects.filter(profile__account=account, is_deleted=False)
        .select_related("profile", "sync_state")
        .order_by("profile_id", "name")
    )
    found = freshness.freshness_of([calendar.pk for calendar in calendars])
    return {
        "profiles": [(p, profile_relink_url(request, p.public_id)) for p in profiles],
        "calendars": [(c, found[c.pk]) for c in calendars],
        "authorizations": list(
            AccessToken.objects.filter(user=account.user)
            .values("application__name", "application__client_id", "scope")
            .annotate(tokens=Count("id"), latest_expiry=Max("expires"))
            .order_by("application__name", "scope")
        ),
        "channels": list(
            Channel.objects.filter(account=account)
            .select_related("application")
            .order_by("-created_at")
        ),
    }
