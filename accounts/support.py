"""The "Support" group: support staff see every model of the product in the admin."""

from django.contrib.auth.models import Group, Permission

SUPPORT_GROUP = "Support"
SUPPORT_APPS = ("accounts", "calendars", "notifications", "sync", "oauth2_provider", "django_q")


def grant_support_view_permissions(sender=None, **kwargs) -> None:
    """Give the Support group (created by a data migration) view rights on every product model.

    Runs after each `migrate`, so models added by later migrations are covered too.
    """
    group = Group.objects.filter(name=SUPPORT_GROUP).first()
    if group is None:
        return
    perms = Permission.objects.filter(
        content_type__app_label__in=SUPPORT_APPS, codename__startswith="view_"
    )
    group.permissions.add(*perms)
