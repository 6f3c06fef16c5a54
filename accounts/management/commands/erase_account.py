"""Erase an end-user's account for a GDPR request (docs/operations.md, "Erasing an account").

python manage.py erase_account acc_…            # or the account's e-mail address
python manage.py erase_account acc_… --now      # do not wait for gdpr_requested deliveries
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.erasure import ErasureBusy, ErasureRefused, erase_by_reference


class Command(BaseCommand):
    help = (
        "Erase an account end to end: integrators get gdpr_requested first, then provider "
        "grants are revoked and every row of the account is deleted. Safe to run again: an "
        "interrupted erasure resumes."
    )

    def add_arguments(self, parser):
        parser.add_argument("account", help="the account's id (acc_…) or e-mail address")
        parser.add_argument(
            "--now",
            action="store_true",
            help="erase without waiting for the gdpr_requested notifications to be delivered",
        )

    def handle(self, *args, account: str, now: bool, **options):
        try:
            erasure = erase_by_reference(reference=account, wait=not now)
        except (ErasureRefused, ErasureBusy) as exc:
            raise CommandError(str(exc)) from None
        if not erasure.is_done:
            self.stdout.write(
                f"{erasure.account_public_id}: gdpr_requested sent; waiting for its delivery. "
                "The scheduled sweep (accounts.resume_erasures) finishes the erasure, or run "
                "this again with --now."
            )
            return
        erased_at = f"{erasure.completed_at:%Y-%m-%d %H:%M:%S} UTC"
        self.stdout.write(f"{erasure.account_public_id}: erased at {erased_at}")
        for entry in erasure.revocations:
            self.stdout.write(f"  {entry['profile']} ({entry['provider']}): {entry['outcome']}")
