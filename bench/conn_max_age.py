"""Benchmark: the latency of an event write through gunicorn with DATABASE_CONN_MAX_AGE 0
(a new database connection per request) and 60 (persistent, health-checked), side by side.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/calsync python bench/conn_max_age.py \
        [--writes 300]

Creates and drops a throwaway database (test_<name>) with one account, a CalDAV profile and a
calendar, starts two gunicorn servers on it (config.wsgi, one worker with 4 threads each), one
per setting, and POSTs /v1/calendars/{id}/events to them in turn over keep-alive sessions, so
that both see the same machine. The 202 is the write transaction (event, write row, change log,
the reconciler's trigger); nothing reaches a provider, no worker runs. Prints one JSON line:
p50/p95 in milliseconds per setting and the ratio of the p50s.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
import requests  # noqa: E402
from django.db import connection  # noqa: E402

SETTINGS = (0, 60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed():
    from tests.factories import (
        make_access_token,
        make_account,
        make_application,
        make_calendar,
        make_profile,
    )

    account = make_account()
    calendar = make_calendar(profile=make_profile(account=account))
    token = make_access_token(account=account, application=make_application(), expires_in=86400)
    return calendar, token


def start_server(port: int, conn_max_age: int, database_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATABASE_CONN_MAX_AGE": str(conn_max_age),
        "API_RATE_LIMIT_PER_SECOND": "0",
        "API_RATE_LIMIT_PER_MINUTE": "0",
        "DEBUG": "true",
    }
    command = [sys.executable, "-m", "gunicorn", "config.wsgi:application"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)


def wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/health", timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{base} did not start")


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300, help="POSTs per setting")
    args = parser.parse_args()

    old_name = connection.settings_dict["NAME"]
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    servers = []
    try:
        calendar, token = seed()
        connection.close()
        url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{test_name}"
        bases = {}
        for conn_max_age in SETTINGS:
            port = free_port()
            servers.append(start_server(port, conn_max_age, url))
            bases[conn_max_age] = f"http://127.0.0.1:{port}"
        sessions = {setting: requests.Session() for setting in SETTINGS}
        for setting, base in bases.items():
            wait_until_up(base)
            sessions[setting].headers["Authorization"] = f"Bearer {token}"
        samples: dict[int, list[float]] = {setting: [] for setting in SETTINGS}
        for i in range(args.writes + 20):
            for setting in SETTINGS:
                body = {
                    "event_id": f"bench-{setting}-{i}",
                    "summary": "Bench",
                    "start": "2026-12-20T09:00:00Z",
                    "end": "2026-12-20T09:30:00Z",
                }
                t0 = time.perf_counter()
                response = sessions[setting].post(
                    f"{bases[setting]}/v1/calendars/{calendar.public_id}/events",
                    json=body,
                    timeout=30,
                )
                elapsed = (time.perf_counter() - t0) * 1000
                assert response.status_code == 202, response.content
                if i >= 20:  # the first ones warm both servers
                    samples[setting].append(elapsed)
        figures = {f"conn_max_age_{s}": summary(samples[s]) for s in SETTINGS}
        print(
            orjson.dumps(
                {
                    "benchmark": "conn_max_age",
                    "database": connection.vendor,
                    "writes_per_setting": args.writes,
                    **figures,
                    "ratio_p50_0_over_60": round(
                        figures["conn_max_age_0"]["p50_ms"] / figures["conn_max_age_60"]["p50_ms"],
                        2,
                    ),
                }
            ).decode()
        )
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
