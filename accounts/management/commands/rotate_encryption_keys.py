from django.core.management.base import BaseCommand

from accounts.services import ReencryptionReport, reencrypt_secrets


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret at rest under the first key of ENCRYPTION_KEYS. "
        "Batched and resumable: run it again after an interruption."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options):
        reports = reencrypt_secrets(batch_size=batch_size, on_batch=self.progress)
        for report in reports:
            self.stdout.write(
                f"{describe(report)}: {report.reencrypted} re-encrypted of {report.scanned} rows"
            )
        reencrypted = sum(r.reencrypted for r in reports)
        scanned = sum(r.scanned for r in reports)
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: {reencrypted} row(s) re-encrypted of {scanned} scanned "
                f"in {len(reports)} model(s)."
            )
        )

    def progress(self, report: ReencryptionReport) -> None:
        self.stdout.write(
            f"{describe(report)}: {report.scanned}/{report.total} rows done, "
            f"{report.reencrypted} re-encrypted"
        )
        self.stdout.flush()


def describe(report: ReencryptionReport) -> str:
    return f"{report.model}.{'/'.join(report.fields)}"
