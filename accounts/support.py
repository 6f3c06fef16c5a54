"""The console's roles, as Groups: "Support" sees every product model and runs the console's
actions (which need only the view permission: each calls a service and is audited); "Admin"
may also change what the admin lets anyone change and manages staff users and groups.

Nobody gets add, change or delete on the audit log: it is append-only.
"""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

SUPPORT_GROUP = "Support"
ADMIN_GROUP = "Admin"
SUPPORT_APPS = ("accounts", "calendars", "notifications", "sync", "oauth2_provider", "django_q")
ADMIN_APPS = (*SUPPORT_APPS, "auth")
APPEND_ONLY = Q(content_type__app_label="accounts", content_type__model="auditentry") & ~Q(
    codename__startswith="view_"
)


def role_permissions(group_name: str):
    if group_name == SUPPORT_GROUP:
        chosen = Q(content_type__app_label__in=SUPPORT_APPS, codename__startswith="view_")
    else:
        chosen = Q(content_type__app_label__in=ADMIN_APPS)
    return Permission.objects.filter(chosen).exclude(APPEND_ONLY)


def grant_role_permissions(sender=None, **kwargs) -> None:
    """Give each role group (created by a data migration; again here if a test database was
    flushed) exactly its permissions.

    Runs after each `migrate`, so models added by later migrations are covered too.
    """
    for name in (SUPPORT_GROUP, ADMIN_GROUP):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(role_permissions(name))
