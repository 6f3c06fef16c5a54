"""Benchmark: managed-event upserts from POST (202) to the event existing at a real Radicale.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/calsync python bench/write_events.py \
        [--upserts 200] [--rate 10] [--senders 4] [--accounts 1] [--redis] \
        [--conn-max-age 60] [--deliver] [--cpu-load 1] [--watch]

Creates and drops a throwaway PostgreSQL database (test_<name>), starts Radicale and a real
django-q2 worker (`manage.py qcluster`, ORM broker; Redis with --redis) and, with --deliver,
the delivery process (`manage.py deliver`). It connects --accounts end-users, each with a
CalDAV profile of their own (one calendar, one Radicale login) and a token, then POSTs
--upserts new events through the full API stack (in-process test client: token auth, rate
limits, validation, the write transaction) at a sustained --rate per second, round-robin over
the accounts, spread over --senders processes (one cannot POST 50 a second). --cpu-load N runs
N busy processes meanwhile, the "other work on the machine" of issue 19.

When did a write reach the provider? The reconciler records the provider's success answer
(`completed_at` of the write, set once the PUT returned 2xx): POST-to-provider is that minus
the moment the 202 came back, both wall-clock on this machine. At the end one listing per
calendar at Radicale checks that every event is really there. --watch adds the older
measure: a watcher thread lists the (first) calendar at Radicale every 0.25 s and records
when each event first appears; those listings compete with the writes for Radicale's
storage lock, so use it with one account.

Radicale itself serves one calendar's PUTs one at a time and slows as the collection grows
(about 65 PUTs a second into one calendar on this machine with nothing else running), so 50
writes a second to a single calendar measure Radicale; spread them over accounts to measure us.

Prints one JSON line: API-side latency of the 202, POST-to-provider latency (p50/p95/max),
in milliseconds, and the rate actually sustained.
"""

import argparse
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
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


# One PROPFIND of the whole calendar per round: Radicale serves one request at a time on its
# storage lock, so a watcher that lists it every few milliseconds slows the writes it times.
WATCH_INTERVAL_SECONDS = 0.25


class Watcher(threading.Thread):
    """Lists the calendar at Radicale (one PROPFIND a round, however many are pending) and
    records when each expected resource first exists."""

    def __init__(self, session: requests.Session, calendar_url: str):
        super().__init__(daemon=True)
        self.session = session
        self.calendar_url = calendar_url
        self.pending: dict[str, float] = {}  # resource name -> time the POST returned
        self.landed: dict[str, float] = {}  # resource name -> seconds from POST to existing
        self.lock = threading.Lock()
        self.stopping = False

    def expect(self, name: str, posted_at: float) -> None:
        with self.lock:
            self.pending[name] = posted_at

    def run(self) -> None:
        while not self.stopping:
            present = listed_names(self.session, self.calendar_url)
            now = time.perf_counter()
            with self.lock:
                for name in present & set(self.pending):
                    self.landed[name] = now - self.pending.pop(name)
            time.sleep(WATCH_INTERVAL_SECONDS)


@dataclass(frozen=True)
class Target:
    """One end-user the bench writes to: a Radicale login and calendar, an account, a token."""

    user: str
    calendar_url: str
    calendar_pk: int
    calendar_public_id: str
    token: str


def connect_end_user(radicale, application, connect, make_access_token) -> Target:
    user, calendar_url, calendar = connect(radicale)
    token = make_access_token(
        account=calendar.profile.account, application=application, scope="read_write"
    )
    return Target(user, calendar_url, calendar.pk, calendar.public_id, token)


def resource_name(event_model, target: Target, n: int) -> str:
    event = event_model.objects.get(calendar_id=target.calendar_pk, event_id=f"booking-{n}")
    return f"{event.ical_uid or event.provider_key}.ics"


def wait_for_writes(model, event_pks: list[int], *, timeout: float) -> dict[int, float]:
    """{event pk: wall-clock time its write was recorded done}, once all are or at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        done = {
            event_pk: completed_at.timestamp()
            for event_pk, completed_at in model.objects.filter(
                event_id__in=event_pks, status="done"
            ).values_list("event_id", "completed_at")
        }
        if len(done) == len(event_pks) or time.monotonic() >= deadline:
            return done
        time.sleep(0.2)


def listed_names(session: requests.Session, calendar_url: str) -> set[str]:
    listing = session.request(
        "PROPFIND",
        calendar_url,
        headers={"Depth": "1"},
        data=b'<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
        timeout=60,
    ).text
    return set(re.findall(r"/([^/<]+\.ics)</", listing))


def burn_cpu() -> None:
    """A background process that keeps one core busy (--cpu-load)."""
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upserts", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="POSTs per second, sustained")
    parser.add_argument("--senders", type=int, default=4, help="processes that POST")
    parser.add_argument(
        "--accounts", type=int, default=1, help="end-users, one CalDAV calendar each"
    )
    parser.add_argument(
        "--watch", action="store_true", help="also time arrival by listing the first calendar"
    )
    parser.add_argument("--redis", action="store_true", help="django-q2 on Redis")
    parser.add_argument(
        "--deliver", action="store_true", help="also run the delivery process (manage.py deliver)"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="run with DEBUG on (the development default; every query is also logged)",
    )
    parser.add_argument("--cpu-load", type=int, default=0, help="busy processes meanwhile")
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
    if not args.debug:  # production settings: DEBUG off, so every value it requires is set
        os.environ.update(
            DEBUG="false",
            SECRET_KEY="bench-write-events-secret-key",
            ENCRYPTION_KEYS="YmVuY2gtd3JpdGUtZXZlbnRzLWtleS0zMi1ieXRlcyE=",
            ALLOWED_HOSTS="testserver,127.0.0.1",
        )
    os.environ["API_RATE_LIMIT_PER_SECOND"] = "0"
    os.environ["API_RATE_LIMIT_PER_MINUTE"] = "0"
    if args.redis:
        os.environ["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection, connections
    from django.test import Client

    from calendars.models import Event, ManagedEventWrite
    from tests.factories import make_access_token, make_application
    from tests.radicale import start_radicale, write_config
    from tests.sync.writes_helpers import connect

    work = Path(tempfile.mkdtemp(prefix="bench-write-"))
    write_config(work)
    radicale = start_radicale(work)
    # End-users' CalDAV servers may be on loopback only where allowed (sync/outbound.py).
    settings.CONNECT_ALLOWED_ORIGINS = [radicale.base_url]
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    children: list[subprocess.Popen] = []
    burners = [multiprocessing.Process(target=burn_cpu, daemon=True) for _ in range(args.cpu_load)]
    try:
        application = make_application(name="Bench")
        targets = [
            connect_end_user(radicale, application, connect, make_access_token)
            for _ in range(args.accounts)
        ]

        env = dict(os.environ)
        env["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + test_db
        env["CONNECT_ALLOWED_ORIGINS"] = radicale.base_url
        commands = [["qcluster"]] + ([["deliver"]] if args.deliver else [])
        for command in commands:
            children.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", *command],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(3)  # let the cluster start its workers
        for burner in burners:
            burner.start()

        watcher = Watcher(radicale.session(targets[0].user), targets[0].calendar_url)
        if args.watch:
            watcher.start()
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
        api_s: list[float] = []
        statuses: dict[int, int] = {}
        posted = multiprocessing.Queue()
        connections.close_all()  # the senders are forked: each opens its own connection
        began_all = time.perf_counter()

        def post(n: int, client: Client) -> None:
            target = targets[n % len(targets)]
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
                f"/v1/calendars/{target.calendar_public_id}/events",
                json.dumps(body),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {target.token}",
            )
            returned, returned_wall = time.perf_counter(), time.time()
            # Only the POST: the events are looked up afterwards, in bulk, so that the senders
            # take no more CPU from the service than the API requests themselves.
            posted.put((n, returned, returned_wall, returned - began, response.status_code))

        def sender(first: int) -> None:
            # Sender k posts upserts k, k+senders, ... each at its slot of the common schedule,
            # so the total rate holds even when one POST is slow. Processes, not threads: one
            # interpreter cannot run 50 API requests a second on its own.
            client = Client()
            for n in range(first, args.upserts, args.senders):
                time.sleep(max(0.0, began_all + n / args.rate - time.perf_counter()))
                post(n, client)
            connections.close_all()

        senders = [
            multiprocessing.Process(target=sender, args=(k,), daemon=True)
            for k in range(args.senders)
        ]
        for process in senders:
            process.start()
        last_posted = began_all
        returned_at: dict[int, float] = {}  # upsert n -> wall-clock time of its 202
        for _ in range(args.upserts):
            n, returned, returned_wall, api, status = posted.get(timeout=120)
            if args.watch and n % len(targets) == 0:
                watcher.expect(resource_name(Event, targets[0], n), returned)
            returned_at[n] = returned_wall
            api_s.append(api)
            statuses[status] = statuses.get(status, 0) + 1
            last_posted = max(last_posted, returned)
        for process in senders:
            process.join(30)
        posting_s = last_posted - began_all

        events = {  # upsert n -> (event pk, resource name at Radicale)
            int(event_id.removeprefix("booking-")): (pk, f"{ical_uid or key}.ics")
            for pk, event_id, ical_uid, key in Event.objects.filter(
                calendar_id__in=[target.calendar_pk for target in targets],
                event_id__startswith="booking-",
            ).values_list("pk", "event_id", "ical_uid", "provider_key")
        }
        expected: dict[int, set[str]] = {k: set() for k in range(len(targets))}
        for n, (_pk, name) in events.items():
            expected[n % len(targets)].add(name)
        done = wait_for_writes(ManagedEventWrite, [pk for pk, _ in events.values()], timeout=120)
        at_provider = [
            done[events[n][0]] - returned_at[n]
            for n in returned_at
            if n in events and events[n][0] in done  # a refused POST made no event
        ]
        if args.watch:
            deadline = time.monotonic() + 30
            while watcher.pending and time.monotonic() < deadline:
                time.sleep(0.1)
        watcher.stopping = True
        missing = sum(
            len(names - listed_names(radicale.session(target.user), target.calendar_url))
            for target, names in zip(targets, expected.values(), strict=True)
        )
        print(
            json.dumps(
                {
                    "benchmark": "write_events",
                    "database": connection.vendor,
                    "broker": "redis" if args.redis else "orm",
                    "deliver_process": args.deliver,
                    "debug": args.debug,
                    "cpu_load": args.cpu_load,
                    "conn_max_age": int(args.conn_max_age),
                    "upserts": args.upserts,
                    "accounts": args.accounts,
                    "rate_per_s": args.rate,
                    "sustained_rate_per_s": round(args.upserts / posting_s, 1),
                    "statuses": statuses,
                    "api_202_ms": figures_ms(api_s),
                    "post_to_provider_ms": figures_ms(at_provider),
                    "not_done_after_120s": len(returned_at) - len(done),
                    "missing_at_radicale": missing,
                    **(
                        {
                            "watched_post_to_radicale_ms": figures_ms(
                                list(watcher.landed.values())
                            ),
                            "watch_interval_ms": WATCH_INTERVAL_SECONDS * 1000,
                        }
                        if args.watch
                        else {}
                    ),
                }
            )
        )
    finally:
        for burner in burners:
            if burner.is_alive():
                burner.terminate()
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        connections.close_all()
        connection.creation.destroy_test_db(test_db, verbosity=0)
        radicale.stop()


if __name__ == "__main__":
    main()
