"""Benchmark: polling at scale, through the real worker and the real schedules (one JSON line).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/calsync \
        python bench/poll_scale.py --calendars 10000 --minutes 10 [--per-profile 3]
        [--workers 2] [--broker orm|redis] [--interval 300] [--after-midnight] [--no-deliver]

Seeds `--calendars` CalDAV calendars, `--per-profile` to an account, in a fresh PostgreSQL
database next to DATABASE_URL (dropped afterwards), all synced once today (with
--after-midnight: as if UTC midnight had just passed, so that every first poll rolls its
window: locally, not by a full fetch), their polls due evenly over the first interval. They
point at a CalDAV stand-in (tests/caldav_standin.py, threads of this process) that answers
every poll "no change" and counts requests. Then `manage.py
setup_schedules`, one `manage.py qcluster` with `--workers` workers and, as `serve` runs it
next to them, `manage.py deliver` (which hands out each poll as it falls due; --no-deliver:
the minute tick alone) run for `--minutes`.

A trigger on the sync state records each poll: when it started (`last_attempt_at`, set by
every poll) and when it was due (the `next_poll_at` the claim moved on). Figures: polls/s,
worker CPU seconds per poll (every process of the cluster), HTTP requests per poll, database
transactions and sync-state row updates per poll (pg_stat, the broker's included), the p50/p99
poll delay, calendars overdue by more than a minute at the end, calendars polled twice within
half an interval, and full fetches seen by the server. `--redis` uses redis://…/3 (flushed).
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.caldav_standin import StandIn  # noqa: E402
from tests.live_service import drop_postgres_database, throwaway_postgres_url  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/3"
BOOT_SECONDS = 15  # the cluster starts before the first poll is due

TRACE_SQL = """
CREATE TABLE bench_due (calendar_id integer PRIMARY KEY, due_at timestamptz NOT NULL);
CREATE TABLE bench_poll (
    id bigserial PRIMARY KEY, calendar_id integer NOT NULL, due_at timestamptz,
    started_at timestamptz NOT NULL
);
CREATE FUNCTION bench_trace() RETURNS trigger AS $$
DECLARE due timestamptz;
BEGIN
    -- A due poll moved on (claimed, or polled): remember when it was due, the first time.
    IF OLD.next_poll_at IS NOT NULL AND OLD.next_poll_at <= clock_timestamp()
       AND NEW.next_poll_at IS DISTINCT FROM OLD.next_poll_at THEN
        INSERT INTO bench_due VALUES (NEW.calendar_id, OLD.next_poll_at)
        ON CONFLICT DO NOTHING;
    END IF;
    IF NEW.last_attempt_at IS DISTINCT FROM OLD.last_attempt_at THEN
        DELETE FROM bench_due WHERE calendar_id = NEW.calendar_id RETURNING due_at INTO due;
        INSERT INTO bench_poll (calendar_id, due_at, started_at)
        VALUES (NEW.calendar_id, due, NEW.last_attempt_at);
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER bench_trace BEFORE UPDATE ON sync_calendarsyncstate
    FOR EACH ROW EXECUTE FUNCTION bench_trace();
"""


def cpu_seconds(groups: list[int]) -> float:
    """CPU of every live process of the groups, with the children each has reaped."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:  # pgrp
            ticks += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def pg_counters(cursor) -> tuple[int, int]:
    cursor.execute("SELECT pg_stat_clear_snapshot()")
    cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    commits = cursor.fetchone()[0]
    cursor.execute(
        "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'sync_calendarsyncstate'"
    )
    return commits, cursor.fetchone()[0]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * q))], 2)


def results(cursor, *, since, until, interval: int) -> dict:
    cursor.execute(
        "SELECT calendar_id, extract(epoch FROM started_at), extract(epoch FROM due_at)"
        " FROM bench_poll ORDER BY calendar_id, started_at"
    )
    rows = cursor.fetchall()
    in_window = [r for r in rows if since <= float(r[1]) <= until]
    delays = [float(start) - float(due) for _, start, due in in_window if due is not None]
    twice, previous = 0, {}
    for calendar_id, started, _ in rows:
        last = previous.get(calendar_id)
        if last is not None and float(started) - last < interval / 2 and float(started) >= since:
            twice += 1
        previous[calendar_id] = float(started)
    cursor.execute(
        "SELECT count(*) FROM sync_calendarsyncstate s LEFT JOIN bench_due d"
        " ON d.calendar_id = s.calendar_id"
        " WHERE coalesce(d.due_at, s.next_poll_at) < now() - interval '60 seconds'"
    )
    overdue = cursor.fetchone()[0]
    return {
        "polls": len(in_window),
        "delays": delays,
        "polled_twice_within_half_interval": twice,
        "overdue_at_end": overdue,
    }


def start_cluster(database_url: str, args, standin: StandIn, started: list) -> None:
    """The worker cluster and, unless --no-deliver, the delivery process, each in a process
    group of its own (the CPU figure counts both), into `started` as they start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.pop("REDIS_URL", None)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="config.settings",
        Q_WORKERS=str(args.workers),
        SYNC_POLL_INTERVAL_SECONDS=str(args.interval),
        CONNECT_ALLOWED_ORIGINS=standin.base_url,
        LOG_LEVEL="ERROR",
    )
    if args.broker == "redis":
        env["REDIS_URL"] = REDIS_URL
    quiet = {"cwd": ROOT, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    # The delivery process without writer threads: nothing here writes.
    commands = [["qcluster"]] + ([] if args.no_deliver else [["deliver", "--write-threads", "0"]])
    for command in commands:
        started.append(
            subprocess.Popen(
                [sys.executable, "manage.py", *command], start_new_session=True, **quiet
            )
        )


def stop_cluster(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calendars", type=int, default=1000)
    parser.add_argument("--per-profile", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--broker", choices=("orm", "redis"), default="orm")
    parser.add_argument("--interval", type=int, default=300, help="SYNC_POLL_INTERVAL_SECONDS")
    parser.add_argument(
        "--after-midnight",
        action="store_true",
        help="every window due to roll at the first poll (UTC midnight's burst)",
    )
    parser.add_argument(
        "--no-deliver", action="store_true", help="no delivery process: the minute tick alone"
    )
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database")

    database_url = throwaway_postgres_url(base_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["SYNC_POLL_INTERVAL_SECONDS"] = str(args.interval)
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    profiles = -(-args.calendars // args.per_profile)
    standin = StandIn(profiles=profiles, per_profile=args.per_profile).start()
    os.environ["CONNECT_ALLOWED_ORIGINS"] = standin.base_url
    cluster: list[subprocess.Popen] = []
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from django.utils import timezone

        from tests.poll_world import seed_synced_calendars

        call_command("migrate", verbosity=0)
        start = timezone.now() + timedelta(seconds=BOOT_SECONDS)
        seed_synced_calendars(
            standin.base_url,
            calendars=args.calendars,
            per_profile=args.per_profile,
            interval=args.interval,
            start=start,
            after_midnight=args.after_midnight,
        )
        standin.requests.clear()
        standin.full_reports = 0
        with connection.cursor() as cursor:
            cursor.execute(TRACE_SQL)
        call_command("setup_schedules", stdout=open(os.devnull, "w"))  # noqa: SIM115
        if args.broker == "redis":
            import redis

            redis.Redis.from_url(REDIS_URL).flushdb()
        connection.close()

        start_cluster(database_url, args, standin, cluster)
        time.sleep(max(0.0, (start - timezone.now()).total_seconds()))
        with connection.cursor() as cursor:
            commits0, updates0 = pg_counters(cursor)
        groups = [process.pid for process in cluster]
        cpu0, requests0, since = cpu_seconds(groups), standin.total_requests(), time.time()
        time.sleep(args.minutes * 60)
        cpu1, requests1, until = cpu_seconds(groups), standin.total_requests(), time.time()
        with connection.cursor() as cursor:
            commits1, updates1 = pg_counters(cursor)
            figures = results(cursor, since=since, until=until, interval=args.interval)
        polls = figures["polls"] or 1
        delays = figures.pop("delays")
        print(
            json.dumps(
                {
                    "bench": "poll_scale",
                    "calendars": args.calendars,
                    "per_profile": args.per_profile,
                    "workers": args.workers,
                    "broker": args.broker,
                    "interval_s": args.interval,
                    "minutes": args.minutes,
                    "after_midnight": args.after_midnight,
                    "deliver": not args.no_deliver,
                    "expected_polls_per_s": round(args.calendars / args.interval, 2),
                    "polls_per_s": round(figures["polls"] / (until - since), 2),
                    "cpu_ms_per_poll": round((cpu1 - cpu0) * 1000 / polls, 2),
                    "http_requests_per_poll": round((requests1 - requests0) / polls, 2),
                    "db_transactions_per_poll": round((commits1 - commits0) / polls, 2),
                    "syncstate_row_updates_per_poll": round((updates1 - updates0) / polls, 2),
                    "delay_p50_s": percentile(delays, 0.5),
                    "delay_p99_s": percentile(delays, 0.99),
                    "delay_mean_s": round(statistics.fmean(delays), 2) if delays else None,
                    **figures,
                    "full_fetches": standin.full_reports,
                    "requests": dict(standin.requests),
                }
            )
        )
    finally:
        for process in cluster:
            stop_cluster(process)
        standin.stop()
        from django.db import connections

        connections.close_all()
        drop_postgres_database(database_url)


if __name__ == "__main__":
    main()
