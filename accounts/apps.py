from django.apps import AppConfig
from django.core.signals import got_request_exception
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        # Connecting a signal touches no database; the handler runs after `migrate`.
        from accounts.errors import remember_exception
        from accounts.support import grant_role_permissions

        post_migrate.connect(grant_role_permissions, dispatch_uid="support_group_perms")
        got_request_exception.connect(remember_exception, dispatch_uid="api_error_exception")
