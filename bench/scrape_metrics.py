"""Benchmark: the cost of one GET /metrics scrape with 10,000 calendars.

Seeds a throwaway database (test_<your database>, created and dropped here) with 1,000
connected profiles of 10 calendars each, their sync states (a tenth due, half of those more
than a poll interval ago), and outboxes of 10,000 notifications and 10,000 event writes
(mostly finished, some pending and failed). Then times, repeated:
  - gauges: the scrape-time database gauges alone (console.gauges.DatabaseGauges);
  - scrape: GET /metrics through the whole stack (in-process test client, from loopback).
Prints one JSON line of figures (milliseconds). Run it on PostgreSQL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/calsync python bench/scrape_metrics.py
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

PROFILES, CALENDARS_PER_PROFILE = 1_000, 10
OUTBOX_ROWS = 10_000


def seed() -> None:
    from calendars.models import Calendar, Event, ManagedEventWrite
    from calendars.services import apply_provider_events
    from notifications.models import Channel, Notification
    from sync.models import CalendarSyncState
    from tests.factories import make_account, make_application, make_event_data, make_profile

    now = timezone.now()
    interval = timedelta(seconds=settings.SYNC_POLL_INTERVAL_SECONDS)
    profiles = [make_profile(account=make_account()) for _ in range(PROFILES)]
    calendars = Calendar.objects.bulk_create(
        Calendar(profile=profile, provider_calendar_id=f"/cal/{profile.pk}/{n}/", name=f"C{n}")
        for profile in profiles
        for n in range(CALENDARS_PER_PROFILE)
    )
    CalendarSyncState.objects.bulk_create(
        CalendarSyncState(
            calendar=calendar,
            next_poll_at=now - 2 * interval
            if i % 20 == 0
            else now - interval / 2
            if i % 20 == 1
            else now + interval,
        )
        for i, calendar in enumerate(calendars)
    )
    calendar = calendars[0]
    account = calendar.profile.account
    channel = Channel.objects.create(
        account=account, application=make_application(), callback_url="https://r.example.com/"
    )
    statuses = ["delivered"] * 90 + ["pending"] * 5 + ["failed"] * 5
    Notification.objects.bulk_create(
        Notification(
            channel=channel,
            type=Notification.Type.CHANGE,
            status=statuses[i % 100],
            next_attempt_at=now,
        )
        for i in range(OUTBOX_ROWS)
    )
    apply_provider_events(calendar=calendar, upserts=[make_event_data()])
    event = Event.objects.get(calendar=calendar)
    write_statuses = ["done"] * 90 + ["pending"] * 5 + ["failed"] * 5
    ManagedEventWrite.objects.bulk_create(
        ManagedEventWrite(
            account=account,
            calendar=calendar,
            event=event,
            operation="upsert",
            desired={},
            status=write_statuses[i % 100],
            next_attempt_at=now,
        )
        for i in range(OUTBOX_ROWS)
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")


def timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
        "max_ms": round(ordered[-1], 2),
    }


def main() -> None:
    from console.gauges import DatabaseGauges

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    setup_test_environment()
    settings.DEBUG = False
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        seed()
        client = Client()

        def gauges():
            list(DatabaseGauges().collect())

        def scrape():
            assert client.get("/metrics").status_code == 200

        for fn in (gauges, scrape):
            timed(fn, 20)  # warm caches and the connection
        print(
            orjson.dumps(
                {
                    "benchmark": "scrape_metrics",
                    "database": connection.vendor,
                    "calendars": PROFILES * CALENDARS_PER_PROFILE,
                    "outbox_rows": 2 * OUTBOX_ROWS,
                    "repeat": args.repeat,
                    "gauges": summary(timed(gauges, args.repeat)),
                    "scrape": summary(timed(scrape, args.repeat)),
                }
            ).decode()
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
