"""Benchmark: the tick's claim query at 10,000 sync states, as it was and as it is (one JSON line).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/calsync python bench/poll_claim.py [--plans]

Seeds 10,000 calendars, 3 a profile, in a fresh PostgreSQL database next to DATABASE_URL
(dropped afterwards): a fifth of the profiles disconnected and one calendar in 31 deleted, due
days ago (the old tick never claimed them, so they stayed at the head of the next_poll_at
index), the others due from a minute ago to four minutes ahead. Times (median of 7 EXPLAIN
ANALYZE runs) the old claim, which joined calendars and profiles to filter them, and the
current one (sync.services.polling), which locks through the index alone, then reads the
claimed calendars' owners by primary key; the dead states are parked first, as the current
tick does the first time it meets them. `--plans` prints the plans too.
"""

import argparse
import json
import os
import random
import statistics
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live_service import drop_postgres_database, throwaway_postgres_url  # noqa: E402

CALENDARS = 10_000


def seed(now) -> None:
    from django.contrib.auth import get_user_model

    from accounts.models import Account, Profile
    from calendars.models import Calendar
    from sync.models import CalendarSyncState

    user = get_user_model().objects.create_user(username="bench")
    account = Account.objects.create(user=user, email="bench@example.com")
    profiles = [
        Profile.objects.create(
            account=account,
            provider="caldav",
            provider_account_id=f"p{i}",
            profile_name="p",
            status=Profile.Status.DISCONNECTED if i % 5 == 0 else Profile.Status.CONNECTED,
        )
        for i in range(CALENDARS // 3 + 1)
    ]
    calendars = Calendar.objects.bulk_create(
        [
            Calendar(
                profile=profiles[i // 3],
                provider_calendar_id=f"c{i}",
                name="c",
                is_deleted=i % 31 == 0,
            )
            for i in range(CALENDARS)
        ]
    )
    live = {p.pk for p in profiles if p.status == Profile.Status.CONNECTED}

    def due(calendar):
        if calendar.is_deleted or calendar.profile_id not in live:
            return now - timedelta(days=random.uniform(1, 30))
        return now + timedelta(seconds=random.uniform(-60, 240))

    CalendarSyncState.objects.bulk_create(
        [CalendarSyncState(calendar=c, next_poll_at=due(c)) for c in calendars]
    )


def explain(sql: str, params, *, plans: bool) -> tuple[float, str]:
    from django.db import connection, transaction

    times = []
    for _ in range(7):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0]
            plan = plan if isinstance(plan, list) else json.loads(plan)
            times.append(plan[0]["Execution Time"])
    text = ""
    if plans:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("EXPLAIN ANALYZE " + sql, params)
            text = "\n".join(row[0] for row in cursor.fetchall())
    return statistics.median(times), text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plans", action="store_true")
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database")
    database_url = throwaway_postgres_url(base_url)
    os.environ.update(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import Q
    from django.utils import timezone

    from accounts.models import Profile
    from calendars.models import Calendar
    from sync.models import CalendarSyncState

    try:
        call_command("migrate", verbosity=0)
        now = timezone.now()
        seed(now)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        old = (
            CalendarSyncState.objects.filter(
                next_poll_at__lte=now,
                calendar__is_deleted=False,
                calendar__profile__status=Profile.Status.CONNECTED,
            )
            .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("next_poll_at")
            .values_list("pk", "calendar_id")[:500]
        )
        with transaction.atomic():
            old_ms, old_plan = explain(*old.query.sql_with_params(), plans=args.plans)
        # What the current tick does the first time it meets them.
        CalendarSyncState.objects.filter(
            Q(calendar__is_deleted=True) | ~Q(calendar__profile__status=Profile.Status.CONNECTED)
        ).update(next_poll_at=None)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE sync_calendarsyncstate")
        lock = (
            CalendarSyncState.objects.due(now)
            .select_for_update(skip_locked=True)
            .values_list("calendar_id", "pk")[:500]
        )
        with transaction.atomic():
            lock_ms, lock_plan = explain(*lock.query.sql_with_params(), plans=args.plans)
            claimed = [calendar_id for calendar_id, _ in lock]
        owners = Calendar.objects.filter(pk__in=claimed).values_list(
            "pk", "profile_id", "is_deleted", "profile__status"
        )
        owners_ms, owners_plan = explain(*owners.query.sql_with_params(), plans=args.plans)
        if args.plans:
            print(f"old claim:\n{old_plan}\n\nlock:\n{lock_plan}\n\nowners:\n{owners_plan}\n")
        print(
            json.dumps(
                {
                    "bench": "poll_claim",
                    "states": CALENDARS,
                    "old_claim_ms": round(old_ms, 2),
                    "lock_ms": round(lock_ms, 2),
                    "owners_ms": round(owners_ms, 2),
                    "new_claim_ms": round(lock_ms + owners_ms, 2),
                }
            )
        )
    finally:
        connection.close()
        drop_postgres_database(database_url)


if __name__ == "__main__":
    main()
