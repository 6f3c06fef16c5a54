from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConsoleConfig(AppConfig):
    """The support console: the admin's dashboard and the pages that join every app's figures.

    The rightmost package: it may import any app, and no app imports it
    (docs/architecture.md, Which app may import which)."""

    name = "console"
    default = True  # for the "console" entry of INSTALLED_APPS


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the console's site as `admin.site`."""

    default = False  # named explicitly in INSTALLED_APPS, in place of django.contrib.admin
    default_site = "console.site.ConsoleAdminSite"
