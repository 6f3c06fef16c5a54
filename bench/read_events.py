"""Benchmark: GET /v1/events through the full stack against the raw-SQL + orjson floor.

Seeds a throwaway database (test_<your database>, created and dropped here) with one account,
5 calendars and 50,000 cached events spread over the sync window, then times:
  - api:   GET /v1/events for a 3-month window (first page, and a later page) through Django's
           in-process test client: middleware, token authentication, rate limiting, parsing,
           the ORM queries, rendering and orjson;
  - floor: the same first page fetched with one raw SQL query (same filter, order and limit),
           turned into dicts and serialized with orjson.
Prints one JSON line of figures (milliseconds). Run it on PostgreSQL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/calsync python bench/read_events.py
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

from accounts.renderers import dumps  # noqa: E402

TOTAL_EVENTS = 50_000
CALENDARS = 5
SYNC_PAST_DAYS, SYNC_FUTURE_DAYS = 42, 201


def seed(now: datetime):
    from calendars.models import Event
    from tests.factories import (
        make_access_token,
        make_account,
        make_application,
        make_calendar,
        make_profile,
    )

    rng = random.Random(42)
    account = make_account()
    application = make_application()
    profile = make_profile(account=account)
    calendars = [make_calendar(profile=profile) for _ in range(CALENDARS)]
    token = make_access_token(account=account, application=application, expires_in=86400)
    window_start = now - timedelta(days=SYNC_PAST_DAYS)
    span_minutes = (SYNC_PAST_DAYS + SYNC_FUTURE_DAYS) * 24 * 60
    batch = []
    for i in range(TOTAL_EVENTS):
        calendar = calendars[i % CALENDARS]
        start = window_start + timedelta(minutes=rng.randrange(span_minutes // 15) * 15)
        fields = {}
        if rng.random() < 0.05:
            day = start.date()
            days = rng.choice((1, 1, 1, 2, 5))
            start = datetime.combine(day, dtime.min, tzinfo=UTC)
            end = start + timedelta(days=days)
            fields = {"is_all_day": True, "start_date": day, "end_date": day + timedelta(days)}
        else:
            end = start + timedelta(minutes=rng.choice((15, 30, 30, 45, 60, 60, 90, 120)))
        batch.append(
            Event(
                account=account,
                calendar=calendar,
                provider_key=f"uid-{i}@bench.example.com",
                summary=f"Meeting {i}",
                description="Weekly sync about the roadmap" if i % 3 else "",
                location_description="Room 4" if i % 4 == 0 else "",
                start=start,
                end=end,
                tzid="Europe/London",
                attendees=[
                    {"email": f"a{i}@example.com", "display_name": "A", "status": "accepted"},
                    {"email": f"b{i}@example.com", "display_name": "B", "status": "needs_action"},
                ],
                organizer={"email": "boss@example.com", "display_name": "Boss"},
                participation_status="accepted",
                is_recurring=i % 10 == 0,
                fingerprint="x",
                **fields,
            )
        )
        if len(batch) == 2000:
            Event.objects.bulk_create(batch)
            batch = []
    Event.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return account, application, token


FLOOR_SQL = """
SELECT e.id, e.event_uid, c.public_id AS calendar_id, e.summary, e.description,
       e.location_description, e.start, e."end", e.is_all_day, e.start_date, e.end_date,
       e.status, e.transparency, e.participation_status, e.attendees, e.organizer,
       e.categories, e.is_recurring, e.is_private, e.created_at, e.updated_at, e.is_deleted,
       e.event_id
FROM calendars_event e JOIN calendars_calendar c ON c.id = e.calendar_id
WHERE e.account_id = %s AND NOT e.is_deleted
  AND NOT (e.application_id IS NOT NULL AND e.application_id = %s AND e.event_id IS NOT NULL)
  AND e."end" > %s AND e.start < %s
ORDER BY e.start, e.id
LIMIT 100
"""


def floor_page(account_id: int, application_id: int, start: datetime, end: datetime) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(FLOOR_SQL, [account_id, application_id, start, end])
        columns = [c[0] for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:  # JSON columns arrive as text on some drivers
        for name in ("attendees", "organizer", "categories"):
            if isinstance(row[name], str):
                row[name] = orjson.loads(row[name])
    return dumps({"pages": {"current": 1, "total": 1}, "events": rows})


def timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()

    setup_test_environment()
    settings.API_RATE_LIMIT_PER_SECOND = settings.API_RATE_LIMIT_PER_MINUTE = 0
    settings.DEBUG = False
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        now = datetime.now(UTC)
        account, application, token = seed(now)
        today = now.date()
        params = {"tzid": "Etc/UTC", "from": str(today), "to": str(today + timedelta(days=92))}
        start = datetime.combine(today, dtime.min, tzinfo=UTC)
        end = start + timedelta(days=92)
        client = Client()
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

        first = client.get("/v1/events", params, **headers)
        assert first.status_code == 200, first.content
        body = first.json()
        next_path = body["pages"]["next_page"].removeprefix("http://testserver")
        floor_body = orjson.loads(floor_page(account.pk, application.pk, start, end))
        assert [e["event_uid"] for e in body["events"]] == [
            e["event_uid"] for e in floor_body["events"]
        ], "the floor must fetch the same page"

        def api_first():
            assert client.get("/v1/events", params, **headers).status_code == 200

        def api_next():
            assert client.get(next_path, **headers).status_code == 200

        def floor():
            floor_page(account.pk, application.pk, start, end)

        for fn in (api_first, api_next, floor):
            timed(fn, 30)  # warm caches and the connection
        api = summary(timed(api_first, args.repeat))
        api_later = summary(timed(api_next, args.repeat))
        base = summary(timed(floor, args.repeat))
        in_window = account.events.filter(end__gt=start, start__lt=end).count()
        print(
            orjson.dumps(
                {
                    "benchmark": "read_events",
                    "database": connection.vendor,
                    "events": TOTAL_EVENTS,
                    "calendars": CALENDARS,
                    "events_in_window": in_window,
                    "page_size": len(body["events"]),
                    "pages_total": body["pages"]["total"],
                    "repeat": args.repeat,
                    "api_first_page": api,
                    "api_later_page": api_later,
                    "floor_raw_sql_orjson": base,
                    "ratio_p50": round(api["p50_ms"] / base["p50_ms"], 2),
                    "ratio_p95": round(api["p95_ms"] / base["p95_ms"], 2),
                    "ratio_later_page_p50": round(api_later["p50_ms"] / base["p50_ms"], 2),
                    "target_ratio_p50": 3.0,
                }
            ).decode()
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
