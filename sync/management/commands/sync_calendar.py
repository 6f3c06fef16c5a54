"""Sync calendars now, in the foreground, and print what changed (support and debugging).

python manage.py sync_calendar cal_… pro_… [--full]
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Profile
from calendars.models import Calendar
from sync import services
from sync.providers.base import ProviderError


class Command(BaseCommand):
    help = "Sync the given calendars (cal_…) or every calendar of the given profiles (pro_…)."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="+", metavar="ID", help="cal_… or pro_… public ids")
        parser.add_argument("--full", action="store_true", help="full resync (mark-and-sweep)")

    def handle(self, *args, ids: list[str], full: bool, **options):
        failed = False
        for public_id in ids:
            if public_id.startswith("pro_"):
                profile = Profile.objects.filter(public_id=public_id).first()
                if profile is None:
                    raise CommandError(f"no profile {public_id}")
                try:
                    services.refresh_profile_calendars(profile=profile)
                except ProviderError as exc:
                    self.stderr.write(f"{public_id}: calendar list not refreshed: {exc}")
                calendars = list(profile.calendars.live())
            else:
                calendars = list(Calendar.objects.filter(public_id=public_id))
                if not calendars:
                    raise CommandError(f"no calendar {public_id}")
            for calendar in calendars:
                self.stdout.write(f"{calendar.public_id} {calendar.name}: syncing…")
                outcome = services.sync_calendar(
                    calendar_id=calendar.pk, full=full, progress=self._progress(calendar)
                )
                failed = failed or outcome.status == "failed"
                self.stdout.write(f"{calendar.public_id} {calendar.name}: {outcome}")
        if failed:
            raise CommandError("some calendars failed to sync")

    def _progress(self, calendar: Calendar):
        """Prints how far a long sync has got (every batch of events it applies)."""

        def report(done: int, total: int) -> None:
            if total > services.APPLY_BATCH_EVENTS:
                self.stdout.write(f"{calendar.public_id}: applied {done}/{total} changes")

        return report
