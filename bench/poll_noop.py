"""Benchmark: the cost of a poll that finds nothing, in one process (one JSON line).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/calsync python bench/poll_noop.py
        [--calendars 300] [--per-profile 3]

Seeds synced CalDAV calendars (tests/poll_world.py) in a fresh PostgreSQL database next to
DATABASE_URL (dropped afterwards), pointing at the CalDAV stand-in (tests/caldav_standin.py),
run in a child process so that its CPU is not ours. Polls every calendar once through
`sync_calendar` (the first tenth as a warm-up: imports, connections), and
reports per poll: CPU and wall milliseconds of this process, queries and UPDATEs, HTTP
requests. Their polls' calendar lists are as a steady state leaves them: read between 400 and
700 seconds ago.
"""

import argparse
import json
import multiprocessing
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.caldav_standin import StandIn  # noqa: E402
from tests.live_service import drop_postgres_database, throwaway_postgres_url  # noqa: E402


def serve(addresses, counts, profiles: int, per_profile: int) -> None:
    """The stand-in's process: its URL, then its request count whenever asked."""
    standin = StandIn(profiles=profiles, per_profile=per_profile).start()
    addresses.put(standin.base_url)
    while True:
        counts.get()
        addresses.put(standin.total_requests())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calendars", type=int, default=300)
    parser.add_argument("--per-profile", type=int, default=3)
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database")

    addresses, counts = multiprocessing.Queue(), multiprocessing.Queue()
    profiles = -(-args.calendars // args.per_profile)
    server = multiprocessing.Process(
        target=serve, args=(addresses, counts, profiles, args.per_profile), daemon=True
    )
    server.start()
    standin_url = addresses.get(timeout=30)

    def requests_so_far() -> int:
        counts.put(None)
        return addresses.get(timeout=30)

    database_url = throwaway_postgres_url(base_url)
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="config.settings",
        CONNECT_ALLOWED_ORIGINS=standin_url,
    )
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from sync import services
    from sync.models import CalendarSyncState
    from tests.poll_world import seed_synced_calendars

    try:
        call_command("migrate", verbosity=0)
        seed_synced_calendars(
            standin_url,
            calendars=args.calendars,
            per_profile=args.per_profile,
            interval=300,
            start=timezone.now() - timedelta(seconds=400),
        )
        ids = list(CalendarSyncState.objects.order_by("calendar_id").values_list("calendar_id"))
        warm_up = max(1, len(ids) // 10)
        for (calendar_id,) in ids[:warm_up]:
            services.sync_calendar(calendar_id=calendar_id)
        measured = ids[warm_up:]
        requests = requests_so_far()
        with CaptureQueriesContext(connection) as queries:
            cpu, wall = time.process_time(), time.perf_counter()
            statuses = [services.sync_calendar(calendar_id=c).status for (c,) in measured]
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        requests = requests_so_far() - requests
        polls = len(measured)
        sql = [q["sql"] for q in queries.captured_queries]
        print(
            json.dumps(
                {
                    "bench": "poll_noop",
                    "polls": polls,
                    "unchanged": statuses.count("unchanged"),
                    "cpu_ms_per_poll": round(cpu * 1000 / polls, 2),
                    "wall_ms_per_poll": round(wall * 1000 / polls, 2),
                    "queries_per_poll": round(len(sql) / polls, 2),
                    "updates_per_poll": round(sum(s.startswith("UPDATE") for s in sql) / polls, 2),
                    "http_requests_per_poll": round(requests / polls, 2),
                }
            )
        )
    finally:
        connection.close()
        drop_postgres_database(database_url)
        server.terminate()


if __name__ == "__main__":
    main()
