"""Benchmark: POST /v1/availability through the full stack against a raw-SQL floor.

Seeds a throwaway database (test_<your database>, created and dropped here) with 10 accounts
that authorized one application, each with 2 calendars and 5,000 cached events spread over
the sync window (5% all-day, some cancelled, declined or free), then times, interleaved so
that both see the same machine:
  - api:    POST /v1/availability for all 10 members (one group, required all, 60 minutes,
            a 4-week query period) through Django's in-process test client: middleware, token
            authentication, rate limiting, parsing, the queries (accounts, calendars, busy
            rows, freshness), the engine, rendering and orjson;
  - api_required_one: the same with `required: 1` (any one member), whose answer holds
            hundreds of periods with their participants (with every member required, this
            many events leave no common hour: `available_periods` is 0);
  - floor:  the members' busy rows read with one raw SQL query (the same filter and columns,
            times as epoch seconds as the API reads them) into tuples;
  - before: what an integrator did without the endpoint: every member's GET /v1/free_busy
            for the window, all pages (fewer repeats: it is slow).
Prints one JSON line of figures (milliseconds). Run it on PostgreSQL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/calsync python bench/availability.py
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
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

MEMBERS = 10
CALENDARS_EACH = 2
EVENTS_EACH = 5_000
SYNC_PAST_DAYS, SYNC_FUTURE_DAYS = 42, 201
QUERY_DAYS = 28


def seed(now: datetime):
    from calendars.models import Event
    from sync.models import CalendarSyncState
    from tests.factories import (
        make_access_token,
        make_account,
        make_application,
        make_calendar,
        make_profile,
    )

    rng = random.Random(42)
    application = make_application()
    accounts, tokens = [], []
    window_start = now - timedelta(days=SYNC_PAST_DAYS)
    span_minutes = (SYNC_PAST_DAYS + SYNC_FUTURE_DAYS) * 24 * 60
    for m in range(MEMBERS):
        account = make_account(default_tzid=rng.choice(["Europe/London", "America/New_York"]))
        profile = make_profile(account=account)
        calendars = [make_calendar(profile=profile) for _ in range(CALENDARS_EACH)]
        CalendarSyncState.objects.bulk_create(
            CalendarSyncState(calendar=c, last_synced_at=now) for c in calendars
        )
        tokens.append(make_access_token(account=account, application=application, expires_in=86400))
        accounts.append(account)
        batch = []
        for i in range(EVENTS_EACH):
            start = window_start + timedelta(minutes=rng.randrange(span_minutes // 15) * 15)
            fields = {}
            if rng.random() < 0.05:
                day = start.date()
                start = datetime.combine(day, dtime.min, tzinfo=UTC)
                end = start + timedelta(days=1)
                fields = {"is_all_day": True, "start_date": day, "end_date": day + timedelta(1)}
            else:
                end = start + timedelta(minutes=rng.choice((15, 30, 30, 45, 60, 60, 90, 120)))
            roll = rng.random()
            if roll < 0.03:
                fields["status"] = "cancelled"
            elif roll < 0.06:
                fields["participation_status"] = "declined"
            elif roll < 0.09:
                fields["transparency"] = "transparent"
            batch.append(
                Event(
                    account=account,
                    calendar=calendars[i % CALENDARS_EACH],
                    provider_key=f"uid-{m}-{i}@bench.example.com",
                    summary=f"Meeting {i}",
                    start=start,
                    end=end,
                    tzid="Europe/London",
                    fingerprint="x",
                    **fields,
                )
            )
        Event.objects.bulk_create(batch, batch_size=2000)
    with connection.cursor() as cursor:
        # As autovacuum would: the visibility map lets the busy read be an index-only scan.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return accounts, tokens


FLOOR_SQL = """
SELECT e.calendar_id, EXTRACT(EPOCH FROM e.start)::float8, EXTRACT(EPOCH FROM e."end")::float8,
       e.is_all_day, e.start_date, e.end_date
FROM calendars_event e
WHERE e.account_id = ANY(%s) AND NOT e.is_deleted
  AND e.status <> 'cancelled' AND e.participation_status <> 'declined'
  AND e.transparency <> 'transparent'
  AND e."end" > %s AND e.start < %s
"""


def floor(account_pks: list[int], start: datetime, end: datetime) -> int:
    with connection.cursor() as cursor:
        cursor.execute(FLOOR_SQL, [account_pks, start, end])
        return len(cursor.fetchall())


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--before-repeat", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="print the floor's query plan")
    args = parser.parse_args()

    setup_test_environment()
    settings.API_RATE_LIMIT_PER_SECOND = settings.API_RATE_LIMIT_PER_MINUTE = 0
    settings.DEBUG = False
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        now = datetime.now(UTC)
        accounts, tokens = seed(now)
        start = datetime.combine(now.date() + timedelta(days=1), dtime(8), tzinfo=UTC)
        end = start + timedelta(days=QUERY_DAYS)
        body = {
            "participants": [
                {"members": [{"sub": a.public_id} for a in accounts], "required": "all"}
            ],
            "required_duration": {"minutes": 60},
            "query_periods": [
                {"start": f"{start:%Y-%m-%dT%H:%M:%SZ}", "end": f"{end:%Y-%m-%dT%H:%M:%SZ}"}
            ],
        }
        client = Client()
        headers = {"HTTP_AUTHORIZATION": f"Bearer {tokens[0]}"}
        account_pks = [a.pk for a in accounts]

        def api():
            response = client.post(
                "/v1/availability", body, content_type="application/json", **headers
            )
            assert response.status_code == 200, response.content
            return response

        any_one = {
            **body,
            "participants": [{**body["participants"][0], "required": 1}],
            "max_results": 512,
        }

        def api_any_one():
            response = client.post(
                "/v1/availability", any_one, content_type="application/json", **headers
            )
            assert response.status_code == 200, response.content
            return response

        def before():
            for token in tokens:
                path = "/v1/free_busy"
                params = {
                    "tzid": "Etc/UTC",
                    "from": body["query_periods"][0]["start"],
                    "to": body["query_periods"][0]["end"],
                }
                while path:
                    page = client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {token}").json()
                    path = page["pages"].get("next_page", "").removeprefix("http://testserver")
                    params = {}

        periods = len(api().json()["available_periods"])
        periods_any_one = len(api_any_one().json()["available_periods"])
        if args.explain:
            with connection.cursor() as cursor:
                pad = timedelta(hours=14)
                cursor.execute(
                    "EXPLAIN ANALYZE " + FLOOR_SQL, [account_pks, start - pad, end + pad]
                )
                print("\n".join(row[0] for row in cursor.fetchall()), file=sys.stderr)
        rows = floor(account_pks, start - timedelta(hours=14), end + timedelta(hours=14))
        for _ in range(20):  # warm caches and the connection
            api()
            floor(account_pks, start, end)
        api_samples, floor_samples = [], []
        for _ in range(args.repeat):  # interleaved: the same machine for both
            api_samples.append(timed(api))
            floor_samples.append(
                timed(
                    lambda: floor(
                        account_pks, start - timedelta(hours=14), end + timedelta(hours=14)
                    )
                )
            )
        any_one_samples = [timed(api_any_one) for _ in range(args.repeat)]
        before_samples = [timed(before) for _ in range(args.before_repeat)]
        api_figures, floor_figures = summary(api_samples), summary(floor_samples)
        print(
            orjson.dumps(
                {
                    "benchmark": "availability",
                    "database": connection.vendor,
                    "members": MEMBERS,
                    "events_per_member": EVENTS_EACH,
                    "query_days": QUERY_DAYS,
                    "busy_rows_read": rows,
                    "available_periods": periods,
                    "repeat": args.repeat,
                    "api": api_figures,
                    "floor_raw_sql_busy_rows": floor_figures,
                    "ratio_p50": round(api_figures["p50_ms"] / floor_figures["p50_ms"], 2),
                    "ratio_p95": round(api_figures["p95_ms"] / floor_figures["p95_ms"], 2),
                    "api_required_one": summary(any_one_samples),
                    "available_periods_required_one": periods_any_one,
                    "before_free_busy_every_member": summary(before_samples),
                    "target_api_p50_ms": 50,
                }
            ).decode()
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
