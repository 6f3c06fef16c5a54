from django.apps import AppConfig
from django.core.signals import got_request_exception
from django.db.models.signals import post_migrate, post_save


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        # Connecting a signal touches no database; the handler runs after `migrate`.
        from django.contrib.admin.models import LogEntry

        from accounts.audit import record_admin_edit
        from accounts.errors import remember_exception
        from accounts.support import grant_role_permissions

        post_save.connect(record_admin_edit, sender=LogEntry, dispatch_uid="audit_admin_edits")

        post_migrate.connect(grant_role_permissions, dispatch_uid="support_group_perms")
        got_request_exception.connect(remember_exception, dispatch_uid="api_error_exception")
