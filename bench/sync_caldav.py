"""Benchmark: the sync engine against a real Radicale (not a test; prints one JSON line).

    python bench/sync_caldav.py [--events 10000] [--small 100] [--repeat 5]

Measures (1) initial sync of a big calendar (events/s) against the time the `caldav` library
alone needs to fetch the same events, and (2) an incremental sync after one changed event at
the small and the big size, split into time spent waiting for the server (adapter calls) and
our own time (parsing, diffing, database), and (3) the first sync after UTC midnight, when the
recurrence window moves a day (one event in a hundred is a weekly series). Uses a throw-away
SQLite database unless DATABASE_URL is set. The adapter runs as shipped, with its own timeouts:
Radicale's first PROPFIND of a 10,000-item calendar (it hashes every item for the ctag) can take
longer than a short timeout on a busy 2-core machine, which the adapter's read timeout allows
(docs/operations.md, Outbound requests).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="bench-sync-"))
os.environ.setdefault("DATABASE_URL", f"sqlite:///{WORK / 'bench.sqlite3'}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import caldav  # noqa: E402
import django  # noqa: E402
import time_machine  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

from accounts.models import Account  # noqa: E402
from sync import services  # noqa: E402
from sync.outbound import pooled_session  # noqa: E402
from sync.providers.caldav import CalDAVProvider, adapter  # noqa: E402
from tests.radicale import start_radicale, write_config  # noqa: E402

SERVER_TIME = [0.0]
_fetch = CalDAVProvider.fetch_changes


def _timed_fetch(self, *args, **kwargs):
    started = time.perf_counter()
    try:
        return _fetch(self, *args, **kwargs)
    finally:
        SERVER_TIME[0] += time.perf_counter() - started


CalDAVProvider.fetch_changes = _timed_fetch


def vevent(n: int, base: datetime, summary: str = "Event") -> str:
    start = base + timedelta(hours=n % 2000 * 2)
    fmt = "%Y%m%dT%H%M%SZ"
    return (
        f"BEGIN:VEVENT\r\nUID:bench-{n}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start:{fmt}}\r\nDTEND:{start + timedelta(minutes=30):{fmt}}\r\n"
        f"SUMMARY:{summary} {n}\r\nLOCATION:Room {n % 17}\r\nEND:VEVENT\r\n"
    )


def series_count(events: int) -> int:
    return max(1, events // 100)


def seed(server, user: str, name: str, count: int, base: datetime) -> str:
    """One PUT of a whole VCALENDAR: Radicale splits it by UID (fast seeding; see
    docs/providers.md, Server quirks)."""
    url = f"{server.base_url}/{user}/{name}/"
    body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n"
    body += "".join(vevent(n, base) for n in range(count))
    # A few weekly series too (one in a hundred events), as real calendars have.
    body += "".join(
        vevent(n, base, summary="Series").replace("END:VEVENT", "RRULE:FREQ=WEEKLY\r\nEND:VEVENT")
        for n in range(count, count + series_count(count))
    )
    body += "END:VCALENDAR\r\n"
    server.session(user).put(
        url, data=body.encode(), headers={"Content-Type": "text/calendar"}, timeout=600
    ).raise_for_status()
    return url


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def incremental(server, calendar, url, base, repeat):
    totals, servers = [], []
    for i in range(repeat):
        server.put_event(
            url,
            "bench-7",
            f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
            f"{vevent(7, base, summary=f'Changed {i}')}END:VCALENDAR\r\n",
        )
        SERVER_TIME[0] = 0.0
        elapsed, outcome = timed(lambda: services.sync_calendar(calendar_id=calendar.pk))
        assert outcome.status == "synced" and outcome.result.updated == 1, outcome
        totals.append(elapsed)
        servers.append(SERVER_TIME[0])
    total, srv = statistics.median(totals), statistics.median(servers)
    return {"total_s": round(total, 4), "server_s": round(srv, 4), "ours_s": round(total - srv, 4)}


def daily_roll(calendar):
    """The first sync after UTC midnight (the window moves a day): its time, the time spent
    waiting for the server, and whether it had to fetch everything."""
    SERVER_TIME[0] = 0.0
    with time_machine.travel(datetime.now(UTC) + timedelta(days=1), tick=True):
        elapsed, outcome = timed(lambda: services.sync_calendar(calendar_id=calendar.pk))
    assert outcome.status in ("synced", "unchanged"), outcome
    return {
        "total_s": round(elapsed, 3),
        "server_s": round(SERVER_TIME[0], 3),
        "full_fetch": outcome.full,
        "created": outcome.result.created,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    write_config(WORK, max_expand_occurrence=10 * args.events)
    server = start_radicale(WORK)
    # The guarded session refuses loopback unless the origin is allowed (docs/operations.md).
    settings.CONNECT_ALLOWED_ORIGINS = [server.base_url]
    # The longest wait for a response's head, against the adapter's timeouts.
    waits = [0.0]
    pooled_session(server.base_url).hooks["response"].append(
        lambda r, **kwargs: waits.append(r.elapsed.total_seconds())
    )
    try:
        user = server.make_user()
        base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
        big_url = seed(server, user, "big", args.events, base)
        small_url = seed(server, user, "small", args.small, base)
        password = server.password(user)

        client = caldav.DAVClient(url=server.base_url + "/", username=user, password=password)
        baseline_s, fetched = timed(lambda: client.calendar(url=big_url).events())
        assert len(fetched) == args.events + series_count(args.events), len(fetched)
        # Touch the data so the library's lazy parsing is not left out of its time.
        parse_s, _ = timed(lambda: [e.icalendar_component["UID"] for e in fetched])

        account = Account.objects.create(
            user=get_user_model().objects.create_user(username="bench"), email="b@example.com"
        )
        profile = services.connect_profile(
            account=account,
            provider_key="caldav",
            credentials_dict={"url": server.base_url + "/", "username": user, "password": password},
        )
        calendars = {c.provider_calendar_id: c for c in profile.calendars.all()}
        big, small = calendars[big_url], calendars[small_url]

        SERVER_TIME[0] = 0.0
        initial_s, outcome = timed(lambda: services.sync_calendar(calendar_id=big.pk))
        initial_server_s = SERVER_TIME[0]
        assert outcome.result.created > args.events, outcome  # plus the series' instances
        services.sync_calendar(calendar_id=small.pk)
        noop_s, noop = timed(lambda: services.sync_calendar(calendar_id=big.pk))
        assert noop.status == "unchanged"

        inc_small = incremental(server, small, small_url, base, args.repeat)
        inc_big = incremental(server, big, big_url, base, args.repeat)
        roll = daily_roll(big)
        figures = {
            "bench": "sync_caldav",
            "database": os.environ["DATABASE_URL"].split(":", 1)[0],
            "events": args.events,
            "initial_sync_s": round(initial_s, 3),
            "initial_sync_server_s": round(initial_server_s, 3),
            "initial_events_per_s": round(args.events / initial_s),
            "caldav_library_fetch_s": round(baseline_s, 3),
            "caldav_library_fetch_and_parse_s": round(baseline_s + parse_s, 3),
            "initial_vs_library_ratio": round(initial_s / (baseline_s + parse_s), 2),
            "noop_sync_big_s": round(noop_s, 4),
            f"incremental_{args.small}": inc_small,
            f"incremental_{args.events}": inc_big,
            "incremental_ratio_total": round(inc_big["total_s"] / inc_small["total_s"], 2),
            "incremental_ratio_ours": round(inc_big["ours_s"] / inc_small["ours_s"], 2),
            "daily_roll": roll,
            "slowest_response_head_s": round(max(waits), 3),
            "read_timeout_s": adapter.READ_TIMEOUT_SECONDS,
        }
        print(json.dumps(figures))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
