"""Benchmark: GET /v1/changes through the full stack, and the long-poll's wake-up latency.

Seeds a throwaway database (test_<your database>, created and dropped here) with one account,
one calendar and a change log of 20,000 entries written by syncs (apply_provider_events, 500
events a batch), then times:
  - throughput: reading the whole log from its start through Django's in-process test client
    (middleware, token authentication, rate limiting, the queries, the events' current state,
    rendering), at page sizes 100 and 1,000, repeated; entries per second;
  - wake-up: a reader waits at the head (wait=10) in a thread; the main thread commits one
    change once the reader sleeps; the time from the commit returning to the reader's answer,
    repeated; p50/p95/max in milliseconds.
Prints one JSON line of figures. Run it on PostgreSQL (the wake-up is its LISTEN/NOTIFY; on
SQLite it is a re-read every 0.25 s in another process, a direct wake-up in this one):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/calsync python bench/change_feed.py
"""

import argparse
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from calendars.changes import encode_cursor  # noqa: E402
from calendars.services import apply_provider_events  # noqa: E402
from calendars.wakeups import wakeups  # noqa: E402
from tests.factories import (  # noqa: E402
    make_access_token,
    make_account,
    make_application,
    make_calendar,
    make_event_data,
    make_profile,
)

ENTRIES = 20_000
BATCH = 500
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def seed():
    account = make_account()
    application = make_application()
    calendar = make_calendar(profile=make_profile(account=account))
    token = make_access_token(account=account, application=application, expires_in=86400)
    for batch in range(ENTRIES // BATCH):
        apply_provider_events(
            calendar=calendar,
            upserts=[
                make_event_data(
                    key=f"b{batch}-{i}@bench.example.com",
                    start=T0 + timedelta(minutes=15 * i),
                    summary=f"Meeting {batch}/{i}",
                )
                for i in range(BATCH)
            ],
        )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
    return account, application, calendar, token


def read_all(client, headers, cursor: str, limit: int) -> int:
    seen = 0
    while True:
        response = client.get("/v1/changes", {"cursor": cursor, "limit": str(limit)}, **headers)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += len(body["changes"])
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return seen


def throughput(client, headers, start: str, limit: int, repeat: int) -> dict:
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        seen = read_all(client, headers, start, limit)
        rates.append(seen / (time.perf_counter() - t0))
        assert seen == ENTRIES, seen
    return {
        "limit": limit,
        "entries_per_s_median": round(statistics.median(rates)),
        "entries_per_s_min": round(min(rates)),
    }


def wake_up_latency(headers, calendar, repeat: int) -> dict:
    samples = []
    for n in range(repeat):
        client = Client()
        head = client.get("/v1/changes", {"cursor": "now"}, **headers).json()["next_cursor"]
        result = {}

        def poll(client=client, head=head, result=result):
            body = client.get("/v1/changes", {"cursor": head, "wait": "10"}, **headers).json()
            result["at"] = time.perf_counter()
            result["count"] = len(body["changes"])
            connections.close_all()

        reader = threading.Thread(target=poll)
        reader.start()
        while wakeups.waiting == 0:
            time.sleep(0.005)
        time.sleep(0.05)  # asleep in the wait, not between reads
        apply_provider_events(calendar=calendar, upserts=[make_event_data(key=f"late-{n}@x")])
        committed = time.perf_counter()
        reader.join(15)
        assert result.get("count") == 1, result
        samples.append((result["at"] - committed) * 1000)
    ordered = sorted(samples)
    return {
        "repeat": repeat,
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[max(int(len(ordered) * 0.95) - 1, 0)], 2),
        "max_ms": round(ordered[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="full reads per page size")
    parser.add_argument("--wakeups", type=int, default=30, help="long-poll wake-ups timed")
    args = parser.parse_args()

    setup_test_environment()
    settings.API_RATE_LIMIT_PER_SECOND = settings.API_RATE_LIMIT_PER_MINUTE = 0
    settings.DEBUG = False
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        t0 = time.perf_counter()
        account, application, calendar, token = seed()
        seed_s = time.perf_counter() - t0
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        start = encode_cursor(account_id=account.pk, application_id=application.pk, sequence=0)
        client = Client()
        read_all(client, headers, start, 1000)  # warm caches and the connection
        pages = [throughput(client, headers, start, limit, args.repeat) for limit in (100, 1000)]
        latency = wake_up_latency(headers, calendar, args.wakeups)
        print(
            orjson.dumps(
                {
                    "benchmark": "change_feed",
                    "database": connection.vendor,
                    "entries": ENTRIES,
                    "seed_s": round(seed_s, 1),
                    "throughput": pages,
                    "long_poll_wake_up": latency,
                }
            ).decode()
        )
    finally:
        wakeups.stop()
        connections.close_all()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
