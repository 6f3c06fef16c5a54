from django.core.management.base import BaseCommand

from accounts.services import reencrypt_secrets


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret at rest under the first key of ENCRYPTION_KEYS. "
        "Batched and resumable: run it again after an interruption."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options):
        reports = reencrypt_secrets(batch_size=batch_size)
        for report in reports:
            self.stdout.write(
                f"{report.model}: {report.reencrypted} re-encrypted of {report.scanned} rows"
            )
