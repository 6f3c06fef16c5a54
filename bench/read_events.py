"""Benchmark: GET /v1/events through the full stack against a raw-SQL + orjson floor.

Seeds a throwaway database (test_<your database>, created and dropped here) with one account,
5 calendars and 50,000 cached events, most of them history: starts spread over the 800 days
before today and the 201 days after it (5% all-day, some of them several days long, and a few
timed events of several days). Then times, interleaved so that every figure sees the same
machine:
  - api_week:    GET /v1/events for a 1-week window from today (its first page) through
                 Django's in-process test client: middleware, token authentication, rate
                 limiting, parsing, the ORM queries, rendering and orjson;
  - floor_week:  the same page fetched with one raw SQL query over the bounded
                 (account, start, id) index (same rows, order and limit; the lower bound on
                 start is the longest span in the seeded data, which the floor knows), turned
                 into dicts and serialized with orjson;
  - api_quarter, api_quarter_next, floor_quarter: the same for a 3-month window, and its
                 second page.
It also runs EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL over the event queries of the week's
first page (rows removed by filter, shared buffers, execution time, summed over them).
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
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

from accounts.renderers import dumps  # noqa: E402

TOTAL_EVENTS = 50_000
CALENDARS = 5
HISTORY_DAYS, FUTURE_DAYS = 800, 201
# The floor's lower bound on start: no seeded event lasts longer than this.
LONGEST_SPAN = timedelta(days=5)


def _span(rng: random.Random, start: datetime) -> tuple[datetime, datetime, dict]:
    roll = rng.random()
    if roll < 0.05:
        day = start.date()
        days = rng.choice((1, 1, 1, 2, 5))
        start = datetime.combine(day, dtime.min, tzinfo=UTC)
        fields = {"is_all_day": True, "start_date": day, "end_date": day + timedelta(days)}
        return start, start + timedelta(days=days), fields
    if roll < 0.052:  # a conference or a trip: timed, several days
        return start, start + timedelta(days=rng.choice((2, 3, 4))), {}
    return start, start + timedelta(minutes=rng.choice((15, 30, 30, 45, 60, 60, 90, 120))), {}


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
    first_start = now - timedelta(days=HISTORY_DAYS)
    span_minutes = (HISTORY_DAYS + FUTURE_DAYS) * 24 * 60
    batch = []
    for i in range(TOTAL_EVENTS):
        calendar = calendars[i % CALENDARS]
        start = first_start + timedelta(minutes=rng.randrange(span_minutes // 15) * 15)
        start, end, fields = _span(rng, start)
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
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
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
  AND e.start >= %s AND e.start < %s AND e."end" > %s
ORDER BY e.start, e.id
LIMIT 100
"""


def floor_page(account_id: int, application_id: int, start: datetime, end: datetime) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(FLOOR_SQL, [account_id, application_id, start - LONGEST_SPAN, end, start])
        columns = [c[0] for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:  # JSON columns arrive as text on some drivers
        for name in ("attendees", "organizer", "categories"):
            if isinstance(row[name], str):
                row[name] = orjson.loads(row[name])
    return dumps({"pages": {"current": 1, "total": 1}, "events": rows})


def explain(captured) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of the event queries a request ran, summed (PostgreSQL)."""
    totals = {"queries": 0, "rows_removed_by_filter": 0, "shared_buffers": 0, "execution_ms": 0}
    if connection.vendor != "postgresql":
        return totals
    for query in captured:
        sql = query["sql"]
        if not sql.startswith("SELECT") or 'FROM "calendars_event"' not in sql:
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
            plan = cursor.fetchone()[0]
        plan = orjson.loads(plan)[0] if isinstance(plan, str) else plan[0]
        nodes = [plan["Plan"]]
        while nodes:
            node = nodes.pop()
            totals["rows_removed_by_filter"] += node.get("Rows Removed by Filter", 0)
            nodes.extend(node.get("Plans", []))
        top = plan["Plan"]
        totals["shared_buffers"] += top.get("Shared Hit Blocks", 0) + top.get(
            "Shared Read Blocks", 0
        )
        totals["execution_ms"] = round(totals["execution_ms"] + plan["Execution Time"], 3)
        totals["queries"] += 1
    return totals


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 3),
    }


def interleaved(fns: dict, repeat: int) -> dict[str, dict]:
    """Each function once per round, so that all of them see the same machine."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1000)
    return {name: summary(values) for name, values in samples.items()}


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
        client = Client()
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        fns, figures = {}, {}
        for name, days in (("week", 7), ("quarter", 92)):
            params = {"tzid": "Etc/UTC", "from": str(today), "to": str(today + timedelta(days))}
            start = datetime.combine(today, dtime.min, tzinfo=UTC)
            end = start + timedelta(days=days)
            with CaptureQueriesContext(connection) as captured:
                first = client.get("/v1/events", params, **headers)
            assert first.status_code == 200, first.content
            body = first.json()
            floor_body = orjson.loads(floor_page(account.pk, application.pk, start, end))
            assert [e["event_uid"] for e in body["events"]] == [
                e["event_uid"] for e in floor_body["events"]
            ], "the floor must fetch the same page"
            figures[name] = {
                "events_in_window": account.events.filter(end__gt=start, start__lt=end).count(),
                "pages_total": body["pages"]["total"],
            }
            if name == "week":
                figures[name]["explain_first_page"] = explain(captured)
            fns[f"api_{name}"] = lambda p=params: client.get("/v1/events", p, **headers)
            fns[f"floor_{name}"] = lambda s=start, e=end: floor_page(
                account.pk, application.pk, s, e
            )
            if name == "quarter":
                next_path = body["pages"]["next_page"].removeprefix("http://testserver")
                fns["api_quarter_next"] = lambda p=next_path: client.get(p, **headers)

        interleaved(fns, 30)  # warm caches and the connection
        timings = interleaved(fns, args.repeat)
        print(
            orjson.dumps(
                {
                    "benchmark": "read_events",
                    "database": connection.vendor,
                    "events": TOTAL_EVENTS,
                    "history_days": HISTORY_DAYS,
                    "future_days": FUTURE_DAYS,
                    "calendars": CALENDARS,
                    "repeat": args.repeat,
                    **figures,
                    **timings,
                    "ratio_week_p50": round(
                        timings["api_week"]["p50_ms"] / timings["floor_week"]["p50_ms"], 2
                    ),
                    "ratio_quarter_p50": round(
                        timings["api_quarter"]["p50_ms"] / timings["floor_quarter"]["p50_ms"], 2
                    ),
                    "ratio_quarter_next_p50": round(
                        timings["api_quarter_next"]["p50_ms"] / timings["floor_quarter"]["p50_ms"],
                        2,
                    ),
                    "target_ratio_p50": 2.0,
                }
            ).decode()
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
