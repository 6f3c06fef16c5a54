from django.core.management.base import BaseCommand

from sync.services.identity import rehash_secret_identities


class Command(BaseCommand):
    help = (
        "Re-hash the stored identities that are secrets (ICS feed URLs) under the first key of "
        "IDENTITY_HASH_KEYS, after which the other keys can be removed. Batched and resumable."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options):
        report = rehash_secret_identities(batch_size=batch_size)
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: {report.rehashed} profile(s) re-hashed of {report.scanned} scanned; "
                f"{report.unreadable} without usable credentials (left as they are)."
            )
        )
