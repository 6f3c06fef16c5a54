from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.oauth_services import create_application


class Command(BaseCommand):
    help = (
        "Register an integrator application (OAuth 2.0 authorization-code client). Prints its "
        "client_id and client_secret; the secret is shown this once and never stored readable."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--redirect-uri",
            dest="redirect_uris",
            action="append",
            required=True,
            help="exact redirect URI (repeatable)",
        )
        parser.add_argument(
            "--public",
            action="store_true",
            help="a public client (native/SPA): no secret authenticates it, PKCE is required",
        )

    def handle(self, *args, name: str, redirect_uris: list[str], public: bool, **options):
        client_type = "public" if public else "confidential"
        try:
            created = create_application(
                name=name, redirect_uris=redirect_uris, client_type=client_type
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"client_id: {created.application.client_id}")
        self.stdout.write(f"client_secret: {created.client_secret}")
