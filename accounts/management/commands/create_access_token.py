"""Mint a real access and refresh token for an existing account and application.

python manage.py create_access_token --account acc_… --application <client_id> \
    --scope "read_events create_event"
"""

import json

from django.core.management.base import BaseCommand, CommandError
from oauth2_provider.models import get_application_model

from accounts.models import Account
from accounts.oauth_services import issue_tokens


class Command(BaseCommand):
    help = (
        "Issue an access token and a refresh token for an account at an application, as if "
        "the end-user had allowed the scopes; prints them as JSON (like /oauth/token)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, help="the account's id (acc_…)")
        parser.add_argument(
            "--application", required=True, help="the application's client_id or exact name"
        )
        parser.add_argument(
            "--scope", default="read_write", help='space-separated scopes (default "read_write")'
        )

    def handle(self, *args, account: str, application: str, scope: str, **options):
        found_account = Account.objects.select_related("user").filter(public_id=account).first()
        if found_account is None:
            raise CommandError(f"no account {account}")
        Application = get_application_model()
        apps = Application.objects.filter(client_id=application) or Application.objects.filter(
            name=application
        )
        if len(apps) != 1:
            raise CommandError(f"no single application with client_id or name {application!r}")
        try:
            tokens = issue_tokens(account=found_account, application=apps[0], scope=scope)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            json.dumps(
                {
                    "token_type": "bearer",
                    "access_token": tokens.access_token,
                    "refresh_token": tokens.refresh_token,
                    "expires_in": tokens.expires_in,
                    "scope": tokens.scope,
                    "account_id": found_account.public_id,
                },
                indent=2,
            )
        )
