"""Benchmark: managed-event upserts from POST (202) to the event existing at a real Radicale.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/calsync python bench/write_events.py \
        [--upserts 200] [--rate 10] [--redis] [--conn-max-age 60]

Creates and drops a throwaway PostgreSQL database (test_<name>), starts Radicale and a real
django-q2 worker (`manage.py qcluster`, ORM broker; Redis with --redis), connects a CalDAV
profile, then POSTs --upserts new events through the full API stack (in-process test client:
token auth, rate limits, validation, the write transaction) at --rate per second. A watcher
thread GETs each event's resource at Radicale until it exists. Prints one JSON line: API-side
latency of the 202, and POST-to-Radicale latency (p50/p95/max), in milliseconds.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def figures_ms(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(statistics.median(values) * 1000, 1),
        "p95": round(percentile(values, 0.95) * 1000, 1),
        "max": round(max(values) * 1000, 1),
    }


class Watcher(threading.Thread):
    """Polls Radicale for each expected resource; records when it first exists."""

    def __init__(self, session: requests.Session):
        super().__init__(daemon=True)
        self.session = session
        self.pending: dict[str, float] = {}  # url -> time the POST returned
        self.landed: dict[str, float] = {}  # url -> seconds from POST to existing
        self.lock = threading.Lock()
        self.stopping = False

    def expect(self, url: str, posted_at: float) -> None:
        with self.lock:
            self.pending[url] = posted_at

    def run(self) -> None:
        while not self.stopping:
            with self.lock:
                urls = list(self.pending.items())
            for url, posted_at in urls:
                if self.session.head(url, timeout=10).status_code == 200:
                    now = time.perf_counter()
                    with self.lock:
                        self.pending.pop(url, None)
                        self.landed[url] = now - posted_at
            time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upserts", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="POSTs per second")
    parser.add_argument("--redis", action="store_true", help="django-q2 on Redis")
    parser.add_argument(
        "--conn-max-age",
        default="60",
        help="DATABASE_CONN_MAX_AGE for the API and the worker (0: a connection per request)",
    )
    args = parser.parse_args()

    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (the worker is another process)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ["DATABASE_CONN_MAX_AGE"] = args.conn_max_age
    os.environ["API_RATE_LIMIT_PER_SECOND"] = "0"
    os.environ["API_RATE_LIMIT_PER_MINUTE"] = "0"
    if args.redis:
        os.environ["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")

    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    from calendars.models import Event
    from sync import services as sync_services
    from tests.factories import make_access_token, make_account, make_application
    from tests.radicale import start_radicale, write_config

    work = Path(tempfile.mkdtemp(prefix="bench-write-"))
    write_config(work)
    radicale = start_radicale(work)
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    worker = None
    try:
        user = radicale.make_user()
        calendar_url = radicale.make_calendar(user, name="Bookings")
        account = make_account()
        profile = sync_services.connect_profile(
            account=account,
            provider_key="caldav",
            credentials_dict={
                "url": radicale.base_url + "/",
                "username": user,
                "password": radicale.password(user),
            },
        )
        calendar = profile.calendars.get(provider_calendar_id=calendar_url)
        token = make_access_token(
            account=account, application=make_application(name="Bench"), scope="read_write"
        )

        env = dict(os.environ)
        env["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + test_db
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(3)  # let the cluster start its workers

        client = Client()
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        session = radicale.session(user)
        watcher = Watcher(session)
        watcher.start()
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
        api_s: list[float] = []
        statuses: dict[int, int] = {}
        interval = 1 / args.rate
        for n in range(args.upserts):
            body = {
                "event_id": f"booking-{n}",
                "summary": f"Booking {n}",
                "description": "Benchmark booking",
                "start": (start + timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": (start + timedelta(hours=n, minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tzid": "Europe/London",
            }
            began = time.perf_counter()
            response = client.post(
                f"/v1/calendars/{calendar.public_id}/events",
                json.dumps(body),
                content_type="application/json",
                **headers,
            )
            returned = time.perf_counter()
            api_s.append(returned - began)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            event = Event.objects.get(calendar=calendar, event_id=body["event_id"])
            watcher.expect(f"{calendar_url}{event.ical_uid or event.provider_key}.ics", returned)
            time.sleep(max(0.0, interval - (time.perf_counter() - began)))

        deadline = time.monotonic() + 120
        while watcher.pending and time.monotonic() < deadline:
            time.sleep(0.1)
        watcher.stopping = True
        landed = list(watcher.landed.values())
        print(
            json.dumps(
                {
                    "benchmark": "write_events",
                    "database": connection.vendor,
                    "broker": "redis" if args.redis else "orm",
                    "conn_max_age": int(args.conn_max_age),
                    "upserts": args.upserts,
                    "rate_per_s": args.rate,
                    "statuses": statuses,
                    "api_202_ms": figures_ms(api_s),
                    "post_to_radicale_ms": figures_ms(landed),
                    "not_landed_after_120s": len(watcher.pending),
                }
            )
        )
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        connection.close()
        connection.creation.destroy_test_db(test_db, verbosity=0)
        radicale.stop()


if __name__ == "__main__":
    main()
