"""Benchmark: what a CalDAV poll that finds nothing costs (not a test; prints one JSON line).

    python bench/caldav_noop_poll.py [--polls 200]

One account of three calendars in one calendar home, nothing changed, polled three ways in
alternating rounds (so that the figures are side by side in one run):

- `fresh_per_calendar`: as before issue 19, a new adapter with a new session and no memory of
  the server's auth scheme per poll, and one fetch_changes per calendar;
- `reused_per_calendar`: the adapter the worker builds now (the process's session for the
  origin, credentials sent as the origin asked before), one fetch_changes per calendar;
- `reused_account_wide`: that adapter, and one unchanged_calendars for the three.

Per poll: HTTP requests, new TCP connections and 401s, counted at tests.sync.dav_stub (a
keep-alive server; Radicale's built-in server closes every connection, so it cannot show
reuse), and the poll's CPU time in the polling thread, against the stub and against a real
Radicale. No database.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="bench-noop-"))
os.environ.setdefault("DATABASE_URL", f"sqlite:///{WORK / 'bench.sqlite3'}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from sync.outbound import guarded_session  # noqa: E402
from sync.providers.base import CalDAVCredentials  # noqa: E402
from sync.providers.caldav import CalDAVProvider  # noqa: E402
from sync.providers.caldav.auth import AuthSchemes  # noqa: E402
from sync.services.credentials import build_provider  # noqa: E402
from tests.radicale import start_radicale  # noqa: E402
from tests.sync.dav_stub import DavStub  # noqa: E402
from tests.sync.helpers import soon, vcalendar, vevent  # noqa: E402

MODES = ("fresh_per_calendar", "reused_per_calendar", "reused_account_wide")


def poll(mode: str, credentials: dict, cursors: dict) -> None:
    if mode == "fresh_per_calendar":
        creds = CalDAVCredentials(**credentials)
        provider = CalDAVProvider(creds, guarded_session(), auth_schemes=AuthSchemes())
    else:
        provider = build_provider("caldav", credentials)
    if mode == "reused_account_wide":
        assert provider.unchanged_calendars(cursors) == set(cursors)
        return
    for calendar_id, cursor in cursors.items():
        assert provider.fetch_changes(calendar_id, cursor).unchanged


def measure(credentials: dict, cursors: dict, polls: int, stub: DavStub | None = None) -> dict:
    figures = {
        mode: {"cpu_s": 0.0, "requests": 0, "connections": 0, "challenges": 0} for mode in MODES
    }
    for _round in range(polls):
        for mode in MODES:
            before = vars(stub.counts).copy() if stub else {}
            started = time.thread_time()
            poll(mode, credentials, cursors)
            figures[mode]["cpu_s"] += time.thread_time() - started
            for name in ("requests", "connections", "challenges") if stub else ():
                figures[mode][name] += getattr(stub.counts, name) - before[name]
    result = {}
    for mode, totals in figures.items():
        result[mode] = {"cpu_ms_per_poll": round(1000 * totals["cpu_s"] / polls, 2)}
        if stub:
            for name in ("requests", "connections", "challenges"):
                result[mode][f"{name}_per_poll"] = round(totals[name] / polls, 2)
    return result


def stub_account(stub: DavStub) -> tuple[dict, dict]:
    stub.members = {f"/home/{n}/": {"ctag": f"c{n}", "token": f"t{n}"} for n in "abc"}
    cursors = {
        stub.url(path): json.dumps({"ctag": p["ctag"], "token": p["token"]}, sort_keys=True)
        for path, p in stub.members.items()
    }
    return {"url": stub.url("/home/"), "username": "alice", "password": "alice-pw"}, cursors


def radicale_account(server) -> tuple[dict, dict]:
    user = server.make_user()
    credentials = {
        "url": server.base_url + "/",
        "username": user,
        "password": server.password(user),
    }
    urls = [server.make_calendar(user, name=name) for name in ("Work", "Home", "Team")]
    for url in urls:
        for n in range(5):
            server.put_event(url, f"e{n}", vcalendar(vevent(f"e{n}", soon(n))))
    provider = build_provider("caldav", credentials)
    return credentials, {url: provider.fetch_changes(url, None).cursor for url in urls}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--polls", type=int, default=200)
    args = parser.parse_args()

    stub = DavStub()
    radicale = start_radicale(WORK)
    settings.CONNECT_ALLOWED_ORIGINS = [stub.origin, radicale.base_url]
    try:
        on_stub = measure(*stub_account(stub), args.polls, stub)
        on_radicale = measure(*radicale_account(radicale), max(1, args.polls // 4))
    finally:
        stub.close()
        radicale.stop()
    fresh, wide = on_radicale["fresh_per_calendar"], on_radicale["reused_account_wide"]
    print(
        json.dumps(
            {
                "bench": "caldav_noop_poll",
                "calendars": 3,
                "polls": args.polls,
                "stub": on_stub,
                "radicale": on_radicale,
                "radicale_cpu_ratio_fresh_to_account_wide": round(
                    fresh["cpu_ms_per_poll"] / wide["cpu_ms_per_poll"], 2
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
