"""Benchmark: the sync engine against the Google sandbox (not a test; prints one JSON line).

    python bench/sync_google.py [--events 10000] [--small 100] [--repeat 5] [--pushes 20]

Part 1, in this process (like bench/sync_caldav.py), against `sync.sandbox.google` over real
HTTP: (1) the initial sync of a big calendar (--events events, one in a hundred more a weekly
series) in events/s, with the share of the time spent waiting for the sandbox (the adapter's
fetch_changes) and the number of events.list pages; (2) a no-op sync; (3) an incremental sync
after one changed event at the small (--small) and the big size, median of --repeat, split
into total, server and ours (parsing, diffing, database); (4) the first sync after UTC midnight
(time_machine, one day ahead), when the recurrence window moves a day: it must not be a full
fetch. Uses a throw-away SQLite database, or a throw-away database next to DATABASE_URL's when
that is PostgreSQL (created and dropped here).

Part 2, with the real processes: `manage.py serve` (tests.live_service.LiveService, on its own
throw-away SQLite file or PostgreSQL database), connected through the hosted pages as
tests/sync/test_google_e2e.py does, an integrator channel made with pycronofy to a local
receiver; then --pushes times, ~1 s apart (0.5-1.5 s at random, so that the changes do not
lock onto one phase of the worker's 1 s queue poll): one event changed in the sandbox, and the
time until the integrator's receiver has a `change` notification (p50, p95, max), with the
part of it until the sandbox's push to the service was answered. The calendar there has
--small events.

Note: the sandbox runs in this process (a thread), so "server" time includes its own Python
work (rendering JSON), sharing the GIL with nothing else while we wait for it.
"""

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="bench-google-"))
BASE_DATABASE_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRES = BASE_DATABASE_URL.startswith("postgres")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from tests.live_service import (  # noqa: E402
    LiveService,
    drop_postgres_database,
    throwaway_postgres_url,
)

# Part 1's database: never the one DATABASE_URL names (a second run would find the profile).
if ON_POSTGRES:
    PART1_DATABASE_URL = throwaway_postgres_url(BASE_DATABASE_URL)
    os.environ["DATABASE_URL"] = PART1_DATABASE_URL
else:
    PART1_DATABASE_URL = ""
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{WORK / 'bench.sqlite3'}")

import django  # noqa: E402
import time_machine  # noqa: E402

try:
    django.setup()
except BaseException:
    if PART1_DATABASE_URL:
        drop_postgres_database(PART1_DATABASE_URL)
    raise

import pycronofy  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

from calendars.models import Calendar  # noqa: E402
from sync import services  # noqa: E402
from sync.providers.google import GoogleProvider  # noqa: E402
from sync.sandbox.google import GoogleSandbox  # noqa: E402
from sync.services import engine  # noqa: E402
from tests.sync.sandbox_world import (  # noqa: E402
    REDIRECT_URI,
    Receiver,
    connect_google,
    connect_through_the_hosted_pages,
    google_service,
    wait_for,
)

ADA = "ada@example.com"
CLIENT_ID, CLIENT_SECRET = "calsync-bench", "calsync-bench-secret"
SMALL_CALENDAR = "small@group.calendar.google.com"
EVENTS_LIST = r"/calendars/[^/]+/events$"

SERVER_TIME = [0.0]
_fetch = GoogleProvider.fetch_changes


def _timed_fetch(self, *args, **kwargs):
    started = time.perf_counter()
    try:
        return _fetch(self, *args, **kwargs)
    finally:
        SERVER_TIME[0] += time.perf_counter() - started


GoogleProvider.fetch_changes = _timed_fetch


# --- shared helpers ---
def event_body(n: int, base: datetime, summary: str = "Event", weekly: bool = False) -> dict:
    start = base + timedelta(hours=n % 2000 * 2)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    body = {
        "summary": f"{summary} {n}",
        "location": f"Room {n % 17}",
        "start": {"dateTime": start.strftime(stamp), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(minutes=30)).strftime(stamp), "timeZone": "UTC"},
    }
    if weekly:
        body["recurrence"] = ["RRULE:FREQ=WEEKLY"]
    return body


def series_count(events: int) -> int:
    return max(1, events // 100)


def seed(sandbox: GoogleSandbox, calendar_id: str, count: int, base: datetime) -> list[str]:
    """`count` single events and one weekly series per hundred; the single events' ids."""
    ids = [sandbox.put_event(ADA, calendar_id, event_body(n, base))["id"] for n in range(count)]
    for n in range(count, count + series_count(count)):
        sandbox.put_event(ADA, calendar_id, event_body(n, base, "Series", weekly=True))
    return ids


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (p95 of 20 values: the 19th)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))]


# --- part 1: in process ---
def incremental(sandbox, calendar, calendar_id: str, event_id: str, repeat: int) -> dict:
    totals, servers = [], []
    for i in range(repeat):
        sandbox.put_event(ADA, calendar_id, {"id": event_id, "summary": f"Changed {i}"})
        SERVER_TIME[0] = 0.0
        elapsed, outcome = timed(lambda: services.sync_calendar(calendar_id=calendar.pk))
        assert outcome.status == "synced" and outcome.result.updated == 1, outcome
        assert not outcome.full, outcome
        totals.append(elapsed)
        servers.append(SERVER_TIME[0])
    total, srv = statistics.median(totals), statistics.median(servers)
    return {"total_s": round(total, 4), "server_s": round(srv, 4), "ours_s": round(total - srv, 4)}


def daily_roll(sandbox, calendar) -> dict:
    """The first sync after UTC midnight (the window moves a day). The sandbox's clock moves
    too, so the access token has expired: the roll includes its refresh."""
    SERVER_TIME[0] = 0.0
    sandbox.clear_requests_log()
    with time_machine.travel(datetime.now(UTC) + timedelta(days=1), tick=True):
        elapsed, outcome = timed(lambda: services.sync_calendar(calendar_id=calendar.pk))
    assert outcome.status in ("synced", "unchanged"), outcome
    lists = sandbox.requests("GET", EVENTS_LIST)
    return {
        "total_s": round(elapsed, 3),
        "server_s": round(SERVER_TIME[0], 3),
        "full_fetch": outcome.full or any("syncToken" not in r.query for r in lists),
        "created": outcome.result.created if outcome.result else 0,
        "events_list_requests": len(lists),
        "token_refreshes": len(sandbox.requests("POST", r"^/token$")),
        "provider_requests": len(sandbox.requests_log),
    }


def in_process(args, stack: contextlib.ExitStack) -> dict:
    call_command("migrate", verbosity=0)
    sandbox = GoogleSandbox().start()
    stack.callback(sandbox.stop)
    settings.GOOGLE_APIS_URL = sandbox.url
    settings.GOOGLE_TOKEN_URL = f"{sandbox.url}/token"
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = CLIENT_ID
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = CLIENT_SECRET
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    # Tasks are triggers only (no worker here); the bench runs the syncs itself.
    engine.enqueue_calendar_discovery = lambda profile_id: None
    engine.enqueue_sync = lambda calendar_id: None
    sandbox.add_client(CLIENT_ID, CLIENT_SECRET, [])
    sandbox.add_user(ADA, name="Ada")
    sandbox.add_calendar(ADA, SMALL_CALENDAR, summary="Small")

    base_time = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
    seed_s, big_ids = timed(lambda: seed(sandbox, "primary", args.events, base_time))
    small_ids = seed(sandbox, SMALL_CALENDAR, args.small, base_time)

    profile = connect_google(sandbox, ADA, CLIENT_ID)
    calendars = {c.provider_calendar_id: c for c in Calendar.objects.filter(profile=profile)}
    big, small = calendars[ADA], calendars[SMALL_CALENDAR]

    sandbox.clear_requests_log()
    SERVER_TIME[0] = 0.0
    initial_s, outcome = timed(lambda: services.sync_calendar(calendar_id=big.pk))
    initial_server_s = SERVER_TIME[0]
    assert outcome.status == "synced" and outcome.full, outcome
    assert outcome.result.created > args.events, outcome  # plus the series' instances
    pages = len(sandbox.requests("GET", EVENTS_LIST))
    requests_initial = len(sandbox.requests_log)

    assert services.sync_calendar(calendar_id=small.pk).status == "synced"
    SERVER_TIME[0] = 0.0
    noop_s, noop = timed(lambda: services.sync_calendar(calendar_id=big.pk))
    assert noop.status == "unchanged", noop
    noop_server_s = SERVER_TIME[0]

    inc_small = incremental(sandbox, small, SMALL_CALENDAR, small_ids[7], args.repeat)
    inc_big = incremental(sandbox, big, ADA, big_ids[7], args.repeat)
    roll = daily_roll(sandbox, big)
    return {
        "seed_sandbox_s": round(seed_s, 2),
        "initial_sync_s": round(initial_s, 3),
        "initial_sync_server_s": round(initial_server_s, 3),
        "initial_server_share": round(initial_server_s / initial_s, 2),
        "initial_events_per_s": round(args.events / initial_s),
        "initial_events_created": outcome.result.created,
        "initial_events_list_pages": pages,
        "initial_provider_requests": requests_initial,
        "noop_sync_big_s": round(noop_s, 4),
        "noop_sync_big_server_s": round(noop_server_s, 4),
        f"incremental_{args.small}": inc_small,
        f"incremental_{args.events}": inc_big,
        "incremental_ratio_total": round(inc_big["total_s"] / inc_small["total_s"], 2),
        "incremental_ratio_ours": round(inc_big["ours_s"] / max(inc_small["ours_s"], 1e-6), 2),
        "daily_roll": roll,
    }


# --- part 2: the real service ---
SYNCED_QUERY = """
import json
from sync.models import CalendarSyncState
print(json.dumps(CalendarSyncState.objects.filter(
    calendar__provider_calendar_id=%r, last_synced_at__isnull=False).exists()))
"""
CREATE_APPLICATION = (
    "import json; from accounts.oauth_services import create_application as c; "
    f"a = c(name='Bench', redirect_uris=[{REDIRECT_URI!r}]); "
    "print(json.dumps({'client_id': a.application.client_id, "
    "'client_secret': a.client_secret}))"
)


def real_service(args, stack: contextlib.ExitStack) -> dict:
    workdir = WORK / "service"
    workdir.mkdir()
    if ON_POSTGRES:
        url = throwaway_postgres_url(BASE_DATABASE_URL)
        stack.callback(drop_postgres_database, url)
    else:
        url = f"sqlite:///{workdir / 'service.sqlite3'}"
    sandbox = GoogleSandbox(auto_approve_as=ADA).start()
    stack.callback(sandbox.stop)
    service = google_service(
        sandbox, database_url=url, workdir=workdir, client=(CLIENT_ID, CLIENT_SECRET), email=ADA
    )
    base_time = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
    ids = seed(sandbox, "primary", args.small, base_time)

    stack.callback(service.stop)
    try:
        return _measure_pushes(args, sandbox, service, ids)
    except BaseException:
        print(f"--- serve.log (tail) ---\n{service.log()[-4000:]}", file=sys.stderr)
        raise


def _measure_pushes(args, sandbox: GoogleSandbox, service: LiveService, ids: list[str]) -> dict:
    service.start()
    app = service.shell_json(CREATE_APPLICATION)
    code = connect_through_the_hosted_pages(
        service, app["client_id"], backend="google-oauth2", provider_name="google"
    )
    client = pycronofy.Client(client_id=app["client_id"], client_secret=app["client_secret"])
    client.request_handler.base_url = service.url
    client.app_base_url = service.url
    client.get_authorization_from_code(code, redirect_uri=REDIRECT_URI)
    calendars = wait_for("calendars", client.list_calendars, timeout=60)
    [primary] = [c for c in calendars if c["calendar_primary"]]
    wait_for(
        "the first sync",
        lambda: service.shell_json(SYNCED_QUERY % ADA),
        timeout=300,
        every=1,
    )

    receiver = Receiver()
    try:
        client.create_notification_channel(receiver.url, calendar_ids=(primary["calendar_id"],))
        wait_for(
            "a push channel at Google",
            lambda: [
                c
                for c in sandbox.channels()
                if c["kind"] == "events" and c["target"] == ADA and not c["stopped"]
            ],
            timeout=60,
        )
        time.sleep(1)
        first_change = time.monotonic()
        latencies, delivered = [], []
        for i in range(args.pushes):
            changed_at, changed_wall = time.monotonic(), time.time()
            sandbox.put_event(ADA, "primary", {"id": ids[i % len(ids)], "summary": f"Pushed {i}"})
            [arrived, *_] = wait_for(
                f"the change notification of push {i + 1}",
                lambda: receiver.changes_after(changed_at),  # noqa: B023 - called right here
                timeout=60,
                every=0.02,
            )
            latencies.append(arrived - changed_at)
            pushed = [
                d.at
                for d in sandbox.deliveries
                if d.resource_state == "exists" and d.at >= changed_wall
            ]
            if pushed:
                delivered.append(min(pushed) - changed_wall)
            # ~1 s, not exactly: the worker polls its queue every second, and a fixed pause
            # would lock the changes to one phase of that poll (and measure one point of it).
            time.sleep(random.uniform(0.5, 1.5))
        notifications = len(receiver.changes_after(first_change))
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
    return {
        "push_count": len(latencies),
        "push_to_callback_p50_s": round(statistics.median(latencies), 3),
        "push_to_callback_p95_s": round(percentile(latencies, 0.95), 3),
        "push_to_callback_max_s": round(max(latencies), 3),
        "push_delivered_to_service_p50_s": (
            round(statistics.median(delivered), 3) if delivered else None
        ),
        "push_calendar_events": len(ids) + series_count(len(ids)),
        "change_notifications_received": notifications,
    }


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # run the cleanups (service, sandbox, databases)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pushes", type=int, default=20)
    args = parser.parse_args()
    assert args.small > 7 and args.events > 7, "--small and --events: at least 8"
    signal.signal(signal.SIGTERM, _terminate)

    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, WORK, ignore_errors=True)  # runs last
        if PART1_DATABASE_URL:
            stack.callback(drop_postgres_database, PART1_DATABASE_URL)
        stack.callback(connections.close_all)  # before the drop and the removal
        part1 = in_process(args, stack)
        part2 = real_service(args, stack)
        figures = {
            "bench": "sync_google",
            "database": (BASE_DATABASE_URL or "sqlite").split(":", 1)[0],
            "events": args.events,
            "small": args.small,
            **part1,
            **part2,
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
