"""Upsert every app's periodic jobs (django-q2 Schedules) by name.

Collects `SCHEDULES` (a list of dicts of Schedule fields, `name` required) from the
`<app>.schedules` module of every installed app that has one, plus the dotted paths listed in
settings.EXTRA_SCHEDULE_MODULES. Run on deploy; `serve` runs it too. The names a module lists
in `RETIRED_SCHEDULES` (jobs an earlier version declared) are deleted; other schedules of ours
that are no longer declared are left alone unless --prune is given.
"""

import importlib
import importlib.util

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_q.models import Schedule


def schedule_modules() -> list[str]:
    """Dotted paths of the schedule modules that exist (an app without one is skipped)."""
    candidates = [f"{config.name}.schedules" for config in apps.get_app_configs()]
    candidates += list(getattr(settings, "EXTRA_SCHEDULE_MODULES", []))
    found = []
    for dotted in candidates:
        try:
            if importlib.util.find_spec(dotted) is not None:
                found.append(dotted)
        except ModuleNotFoundError:  # the parent package itself is absent
            continue
    return found


def retired_schedules() -> set[str]:
    """Names of the jobs earlier versions declared and that must not run any more."""
    return {
        name
        for dotted in schedule_modules()
        for name in getattr(importlib.import_module(dotted), "RETIRED_SCHEDULES", [])
    }


def declared_schedules() -> list[dict]:
    declared: dict[str, dict] = {}
    for dotted in schedule_modules():
        for entry in getattr(importlib.import_module(dotted), "SCHEDULES", []):
            declared[entry["name"]] = dict(entry)
    return list(declared.values())


class Command(BaseCommand):
    help = "Create or update the periodic jobs declared in code (by name)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--prune",
            action="store_true",
            help="delete schedules of apps that declare schedules but no longer declare these",
        )

    def handle(self, *args, prune: bool, **options):
        schedules = declared_schedules()
        with transaction.atomic():
            for entry in schedules:
                name = entry.pop("name")
                _, created = Schedule.objects.update_or_create(name=name, defaults=entry)
                self.stdout.write(f"{'created' if created else 'updated'} schedule {name}")
            for schedule in Schedule.objects.filter(name__in=retired_schedules()):
                schedule.delete()
                self.stdout.write(f"deleted retired schedule {schedule.name}")
            if prune:
                # Only jobs of apps that declare schedules are ours to delete.
                ours = tuple(f"{m.rpartition('.')[0]}." for m in schedule_modules())
                names = {s["name"] for s in declared_schedules()}
                for schedule in Schedule.objects.exclude(name__in=names):
                    if schedule.func.startswith(ours):
                        schedule.delete()
                        self.stdout.write(f"deleted schedule {schedule.name}")
