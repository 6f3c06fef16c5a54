from django.contrib import admin
from django.contrib.admin.actions import delete_selected
from django.utils import timezone

from accounts.audit import record_for_each
from console.dashboard import dashboard


@admin.action(permissions=["delete"], description=delete_selected.short_description)
def audited_delete_selected(modeladmin, request, queryset):
    """The admin's bulk delete, audited. Django logs the deletion of several objects with
    bulk_create, which sends no post_save, so accounts.audit.record_admin_edit never sees it;
    the deletion of one object is saved one by one and reaches it (hence "more than one")."""
    doomed = list(queryset) if request.POST.get("post") else []
    response = delete_selected(modeladmin, request, queryset)
    if response is None and len(doomed) > 1:  # deleted; a response is the confirmation page
        record_for_each(request, action="delete", targets=doomed)
    return response


class ConsoleAdminSite(admin.AdminSite):
    """The admin site, with the support dashboard as its home page."""

    site_header = "calsync support"
    site_title = "calsync support"
    index_title = "Health at a glance"
    index_template = "console/dashboard.html"
    # The sidebar takes a quarter of a 1280 px screen, and the health columns need it.
    enable_nav_sidebar = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_action(audited_delete_selected, "delete_selected")

    def index(self, request, extra_context=None):
        context = {**dashboard(timezone.now()), **(extra_context or {})}
        return super().index(request, extra_context=context)
