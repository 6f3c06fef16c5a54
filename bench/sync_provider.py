"""Benchmark: the sync engine against an OAuth provider's sandbox, Google or Microsoft (not a
test; prints one JSON line).

    python bench/sync_provider.py --provider google|microsoft [--events 10000] [--small 100]
        [--repeat 5] [--pushes 20]

One code path for both providers; what differs is in PROVIDERS (event bodies, the settings
that point at the sandbox, the adapter whose fetch_changes is timed, the connect helper, the
service factory, the listing request counted as pages, how a push channel and a change push
look in the sandbox).

Part 1, in this process (like bench/sync_caldav.py), against `sync.sandbox.google` or
`sync.sandbox.microsoft` over real HTTP: (1) the initial sync of a big calendar (--events
events, one in a hundred more a weekly series) in events/s, with the share of the time spent
waiting for the sandbox (the adapter's fetch_changes) and the number of listing pages (Google
events.list, Microsoft calendarView/delta); (2) a no-op sync; (3) an incremental sync after one
changed event at the small (--small) and the big size, median of --repeat, split into total,
server and ours (parsing, diffing, database); (4) the first sync after UTC midnight
(time_machine, one day ahead), when the sync window moves a day. Google: it must not be a
full fetch. Microsoft: it is one by design (the calendarView window is frozen in the delta
link, so the adapter starts a new delta round and the engine a mark-and-sweep resync):
"full_fetch": true there, with "full_fetch_expected": true. Uses a throw-away SQLite
database, or a throw-away database next to DATABASE_URL's when that is PostgreSQL (created
and dropped here).

Part 2, with the real processes: `manage.py serve` (tests.live_service.LiveService, on its own
throw-away SQLite file or PostgreSQL database), connected through the hosted pages as the
providers' end-to-end tests do, an integrator channel made with pycronofy to a local receiver
(a Google push channel or a Graph subscription behind it); then --pushes times, ~1 s apart
(0.5-1.5 s at random, so that the changes do not lock onto one phase of the worker's 1 s queue
poll): one event changed in the sandbox, and the time until the integrator's receiver has a
`change` notification (p50, p95, max), with the part of it until the sandbox's push to the
service was answered. The calendar there has --small events.

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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="bench-provider-"))
BASE_DATABASE_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRES = BASE_DATABASE_URL.startswith("postgres")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from tests.live_service import drop_postgres_database, throwaway_postgres_url  # noqa: E402

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
    shutil.rmtree(WORK, ignore_errors=True)
    raise

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

from calendars.models import Calendar  # noqa: E402
from sync import services  # noqa: E402
from sync.providers.google import GoogleProvider  # noqa: E402
from sync.providers.microsoft import MicrosoftProvider  # noqa: E402
from sync.sandbox.google import GoogleSandbox  # noqa: E402
from sync.sandbox.microsoft import MicrosoftSandbox  # noqa: E402
from sync.services import engine  # noqa: E402
from tests.sync.sandbox_world import (  # noqa: E402
    Receiver,
    connect_google,
    connect_microsoft,
    google_service,
    integrator_client,
    microsoft_service,
    running_world,
    wait_for,
)

ADA = "ada@example.com"
CLIENT_ID, CLIENT_SECRET = "calsync-bench", "calsync-bench-secret"
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


# --- what differs between the providers ---
def google_body(title: str, location: str, start: datetime, end: datetime, weekly: bool) -> dict:
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    body = {
        "summary": title,
        "location": location,
        "start": {"dateTime": start.strftime(stamp), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime(stamp), "timeZone": "UTC"},
    }
    if weekly:
        body["recurrence"] = ["RRULE:FREQ=WEEKLY"]
    return body


def microsoft_body(title: str, location: str, start: datetime, end: datetime, weekly: bool) -> dict:
    stamp = "%Y-%m-%dT%H:%M:%S"
    body = {
        "subject": title,
        "location": {"displayName": location},
        "start": {"dateTime": start.strftime(stamp), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime(stamp), "timeZone": "UTC"},
    }
    if weekly:
        # Graph needs a range: as many weeks as the sync window holds, so that the series
        # reaches past its end like Google's endless one.
        window_days = settings.SYNC_WINDOW_PAST_DAYS + settings.SYNC_WINDOW_FUTURE_DAYS
        body["recurrence"] = {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [WEEKDAYS[start.weekday()]]},
            "range": {
                "type": "numbered",
                "startDate": start.strftime("%Y-%m-%d"),
                "numberOfOccurrences": window_days // 7 + 2,
            },
        }
    return body


@dataclass(frozen=True)
class ProviderPieces:
    label: str
    sandbox: type
    adapter: type  # its fetch_changes is the "server" time
    title_field: str
    body: Callable[[str, str, datetime, datetime, bool], dict]
    settings: Callable[[str], dict]  # the sandbox's URL -> the settings pointing at it
    connect: Callable  # (sandbox, email, client_id) -> Profile, calendars discovered
    service: Callable  # tests.sync.sandbox_world's service factory
    backend: str  # the hosted connect's social-auth backend and provider_name
    provider_name: str
    default_calendar: str | None  # put_event's name of the default calendar
    add_small_calendar: Callable  # (sandbox) -> the new calendar's id
    listing: str  # the request regex of one listing page
    token_request: str
    starts_over: Callable  # (LoggedRequest) -> a listing request that is no incremental one
    roll_is_full: bool  # the daily roll is a full fetch by design
    push_channels: Callable  # (sandbox) -> ADA's live push channels there
    is_change_push: Callable  # (sandbox Delivery) -> a push about a changed event


PROVIDERS = {
    "google": ProviderPieces(
        label="Google",
        sandbox=GoogleSandbox,
        adapter=GoogleProvider,
        title_field="summary",
        body=google_body,
        settings=lambda url: {
            "GOOGLE_APIS_URL": url,
            "GOOGLE_TOKEN_URL": f"{url}/token",
            "SOCIAL_AUTH_GOOGLE_OAUTH2_KEY": CLIENT_ID,
            "SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET": CLIENT_SECRET,
        },
        connect=connect_google,
        service=google_service,
        backend="google-oauth2",
        provider_name="google",
        default_calendar="primary",
        add_small_calendar=lambda sandbox: sandbox.add_calendar(
            ADA, "small@group.calendar.google.com", summary="Small"
        )["id"],
        listing=r"/calendars/[^/]+/events$",
        token_request=r"^/token$",
        starts_over=lambda request: "syncToken" not in request.query,
        roll_is_full=False,
        push_channels=lambda sandbox: [
            c
            for c in sandbox.channels()
            if c["kind"] == "events" and c["target"] == ADA and not c["stopped"]
        ],
        is_change_push=lambda delivery: delivery.resource_state == "exists",
    ),
    "microsoft": ProviderPieces(
        label="Microsoft",
        sandbox=MicrosoftSandbox,
        adapter=MicrosoftProvider,
        title_field="subject",
        body=microsoft_body,
        settings=lambda url: {
            "MICROSOFT_GRAPH_URL": url,
            "MICROSOFT_TOKEN_URL": f"{url}/common/oauth2/v2.0/token",
            "SOCIAL_AUTH_MICROSOFT_GRAPH_KEY": CLIENT_ID,
            "SOCIAL_AUTH_MICROSOFT_GRAPH_SECRET": CLIENT_SECRET,
        },
        connect=connect_microsoft,
        service=microsoft_service,
        backend="microsoft-graph",
        provider_name="office365",
        default_calendar=None,
        add_small_calendar=lambda sandbox: sandbox.add_calendar(ADA, name="Small")["id"],
        listing=r"calendarView/delta",
        token_request=r"/oauth2/v2\.0/token$",
        # A new round's first page has the window and neither token.
        starts_over=lambda request: not {"$deltatoken", "$skiptoken"} & request.query.keys(),
        roll_is_full=True,
        push_channels=lambda sandbox: [
            s for s in sandbox.subscriptions() if s["user"] == ADA and s["active"]
        ],
        is_change_push=lambda delivery: delivery.kind == "change",
    ),
}

SERVER_TIME = [0.0]


def time_fetches(adapter: type) -> None:
    """Add each call of `adapter.fetch_changes` (waiting for the sandbox) to SERVER_TIME."""
    fetch = adapter.fetch_changes

    def timed_fetch(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return fetch(self, *args, **kwargs)
        finally:
            SERVER_TIME[0] += time.perf_counter() - started

    adapter.fetch_changes = timed_fetch


# --- shared helpers ---
def event_body(p: ProviderPieces, n: int, base: datetime, summary="Event", weekly=False) -> dict:
    start = base + timedelta(hours=n % 2000 * 2)
    return p.body(f"{summary} {n}", f"Room {n % 17}", start, start + timedelta(minutes=30), weekly)


def series_count(events: int) -> int:
    return max(1, events // 100)


def seed(p: ProviderPieces, sandbox, calendar_id, count: int, base: datetime) -> list[str]:
    """`count` single events and one weekly series per hundred; the single events' ids."""
    ids = [sandbox.put_event(ADA, calendar_id, event_body(p, n, base))["id"] for n in range(count)]
    for n in range(count, count + series_count(count)):
        sandbox.put_event(ADA, calendar_id, event_body(p, n, base, "Series", weekly=True))
    return ids


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (p95 of 20 values: the 19th)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))]


def hour_a_month_ago() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=30)


# --- part 1: in process ---
def incremental(p: ProviderPieces, sandbox, calendar, event_id: str, repeat: int) -> dict:
    totals, servers = [], []
    for i in range(repeat):
        change = {"id": event_id, p.title_field: f"Changed {i}"}
        sandbox.put_event(ADA, calendar.provider_calendar_id, change)
        SERVER_TIME[0] = 0.0
        elapsed, outcome = timed(lambda: services.sync_calendar(calendar_id=calendar.pk))
        assert outcome.status == "synced" and outcome.result.updated == 1, outcome
        assert not outcome.full, outcome
        totals.append(elapsed)
        servers.append(SERVER_TIME[0])
    total, srv = statistics.median(totals), statistics.median(servers)
    return {"total_s": round(total, 4), "server_s": round(srv, 4), "ours_s": round(total - srv, 4)}


def daily_roll(p: ProviderPieces, sandbox, calendar) -> dict:
    """The first sync after UTC midnight (the window moves a day). The sandbox's clock moves
    too, so the access token has expired: the roll includes its refresh."""
    SERVER_TIME[0] = 0.0
    sandbox.clear_requests_log()
    with time_machine.travel(datetime.now(UTC) + timedelta(days=1), tick=True):
        elapsed, outcome = timed(lambda: services.sync_calendar(calendar_id=calendar.pk))
    assert outcome.status in ("synced", "unchanged"), outcome
    lists = sandbox.requests("GET", p.listing)
    return {
        "total_s": round(elapsed, 3),
        "server_s": round(SERVER_TIME[0], 3),
        "full_fetch": outcome.full or any(p.starts_over(r) for r in lists),
        "full_fetch_expected": p.roll_is_full,
        "created": outcome.result.created if outcome.result else 0,
        "events_list_requests": len(lists),
        "token_refreshes": len(sandbox.requests("POST", p.token_request)),
        "provider_requests": len(sandbox.requests_log),
    }


def in_process(p: ProviderPieces, args, stack: contextlib.ExitStack) -> dict:
    call_command("migrate", verbosity=0)
    sandbox = p.sandbox().start()
    stack.callback(sandbox.stop)
    for name, value in p.settings(sandbox.url).items():
        setattr(settings, name, value)
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    # Tasks are triggers only (no worker here); the bench runs the syncs itself.
    engine.enqueue_calendar_discovery = lambda profile_id: None
    engine.enqueue_sync = lambda calendar_id: None
    engine.enqueue_push_maintenance = lambda: None
    sandbox.add_client(CLIENT_ID, CLIENT_SECRET, [])
    sandbox.add_user(ADA, name="Ada")
    small_id = p.add_small_calendar(sandbox)

    base_time = hour_a_month_ago()
    seed_s, big_ids = timed(lambda: seed(p, sandbox, p.default_calendar, args.events, base_time))
    small_ids = seed(p, sandbox, small_id, args.small, base_time)

    profile = p.connect(sandbox, ADA, CLIENT_ID)
    big = Calendar.objects.get(profile=profile, is_primary=True)
    small = Calendar.objects.get(profile=profile, provider_calendar_id=small_id)

    sandbox.clear_requests_log()
    SERVER_TIME[0] = 0.0
    initial_s, outcome = timed(lambda: services.sync_calendar(calendar_id=big.pk))
    initial_server_s = SERVER_TIME[0]
    assert outcome.status == "synced" and outcome.full, outcome
    assert outcome.result.created > args.events, outcome  # plus the series' instances
    pages = len(sandbox.requests("GET", p.listing))
    requests_initial = len(sandbox.requests_log)

    assert services.sync_calendar(calendar_id=small.pk).status == "synced"
    SERVER_TIME[0] = 0.0
    noop_s, noop = timed(lambda: services.sync_calendar(calendar_id=big.pk))
    assert noop.status == "unchanged", noop
    noop_server_s = SERVER_TIME[0]

    inc_small = incremental(p, sandbox, small, small_ids[7], args.repeat)
    inc_big = incremental(p, sandbox, big, big_ids[7], args.repeat)
    roll = daily_roll(p, sandbox, big)
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
    calendar__public_id=%r, last_synced_at__isnull=False).exists()))
"""


def real_service(p: ProviderPieces, args, stack: contextlib.ExitStack) -> dict:
    workdir = WORK / "service"
    workdir.mkdir()
    sandbox, service = stack.enter_context(
        running_world(
            "postgresql" if ON_POSTGRES else "sqlite",
            workdir,
            p.sandbox(),
            p.service,
            ADA,
            (CLIENT_ID, CLIENT_SECRET),
        )
    )
    try:
        ids = seed(p, sandbox, p.default_calendar, args.small, hour_a_month_ago())
        return _measure_pushes(p, args, sandbox, service, ids)
    except BaseException:
        print(f"--- serve.log (tail) ---\n{service.log()[-4000:]}", file=sys.stderr)
        raise


def _measure_pushes(p: ProviderPieces, args, sandbox, service, ids: list[str]) -> dict:
    client = integrator_client(service, backend=p.backend, provider_name=p.provider_name)
    calendars = wait_for("calendars", client.list_calendars, timeout=60)
    [primary] = [c for c in calendars if c["calendar_primary"]]
    wait_for(
        "the first sync",
        lambda: service.shell_json(SYNCED_QUERY % primary["calendar_id"]),
        timeout=300,
        every=1,
    )

    receiver = Receiver()
    try:
        client.create_notification_channel(receiver.url, calendar_ids=(primary["calendar_id"],))
        wait_for(f"a push channel at {p.label}", lambda: p.push_channels(sandbox), timeout=60)
        time.sleep(1)
        first_change = time.monotonic()
        latencies, delivered = [], []
        for i in range(args.pushes):
            changed_at, changed_wall = time.monotonic(), time.time()
            change = {"id": ids[i % len(ids)], p.title_field: f"Pushed {i}"}
            sandbox.put_event(ADA, p.default_calendar, change)
            [arrived, *_] = wait_for(
                f"the change notification of push {i + 1}",
                lambda: receiver.changes_after(changed_at),  # noqa: B023 - called right here
                timeout=60,
                every=0.02,
            )
            latencies.append(arrived - changed_at)
            pushed = [
                d.at for d in sandbox.deliveries if p.is_change_push(d) and d.at >= changed_wall
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
    parser.add_argument("--provider", choices=sorted(PROVIDERS), required=True)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pushes", type=int, default=20)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, WORK, ignore_errors=True)  # runs last
        if PART1_DATABASE_URL:
            stack.callback(drop_postgres_database, PART1_DATABASE_URL)
        stack.callback(connections.close_all)  # before the drop and the removal
        args = parser.parse_args()
        assert args.small > 7 and args.events > 7, "--small and --events: at least 8"
        signal.signal(signal.SIGTERM, _terminate)
        pieces = PROVIDERS[args.provider]
        time_fetches(pieces.adapter)
        part1 = in_process(pieces, args, stack)
        part2 = real_service(pieces, args, stack)
        figures = {
            "bench": "sync_provider",
            "provider": args.provider,
            "database": (BASE_DATABASE_URL or "sqlite").split(":", 1)[0],
            "events": args.events,
            "small": args.small,
            **part1,
            **part2,
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
