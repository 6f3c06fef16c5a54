"""Benchmark: a change committed by a sync -> the integrator's receiver has the POST, through the
real processes (the django-q2 worker with its schedules, and with --deliver the delivery
process `manage.py deliver`).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/calsync python bench/callback_latency.py \\
        [--changes 100] [--interval 0.5] [--deliver] [--redis] [--background-fanout]

Creates and drops a throwaway PostgreSQL database (test_<name>), runs `setup_schedules` (so the
worker runs whatever periodic jobs this version declares), starts a receiver process on
127.0.0.1 and the processes, opens one channel, then makes --changes changes, one every
--interval seconds, each the way a sync commits one: `calendars.services.apply_provider_events`
(the change log and its NOTIFY in the same transaction), then the engine's after-sync
`notifications.services.kick_relay`. Each change is timed from its commit to the receiver
reading the `change` POST (same machine, same clock). --background-fanout runs
bench/push_fanout.py over and over meanwhile (against a database of its own). Prints one JSON
line: p50/p95/p99/max in milliseconds.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_receiver(port_queue, receipts) -> None:
    """Receiver process: answers 200 at once, reports (type, time read) of each POST."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receipts.put((json.loads(body)["notification"]["type"], time.time()))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_queue.put(server.server_address[1])
    server.serve_forever()


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
        "p99": round(percentile(values, 0.99) * 1000, 1),
        "max": round(max(values) * 1000, 1),
    }


def fanout_forever(database_url: str) -> subprocess.Popen:
    """bench/push_fanout.py in a loop, on a database of its own (the background load)."""
    script = f"while true; do {sys.executable} bench/push_fanout.py >/dev/null 2>&1; done"
    return subprocess.Popen(
        ["bash", "-c", script],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url + "_fanout"},
        start_new_session=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between changes")
    parser.add_argument("--deliver", action="store_true", help="run manage.py deliver too")
    parser.add_argument("--redis", action="store_true", help="django-q2 on Redis")
    parser.add_argument("--background-fanout", action="store_true")
    parser.add_argument("--wait", type=float, default=30.0, help="give up on a change after")
    args = parser.parse_args()

    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (the processes share it)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ["PUSH_CALLBACK_ALLOWED_NETWORKS"] = "127.0.0.1/32"
    if args.redis:
        os.environ["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    port_queue, receipts = multiprocessing.Queue(), multiprocessing.Queue()
    receiver = multiprocessing.Process(target=run_receiver, args=(port_queue, receipts))
    receiver.daemon = True
    receiver.start()
    port = port_queue.get(timeout=10)
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    children: list[subprocess.Popen] = []
    background = None
    try:
        from accounts.models import ApplicationSecret
        from calendars.services import apply_provider_events
        from notifications import services
        from tests.factories import (
            make_account,
            make_application,
            make_calendar,
            make_event_data,
            make_profile,
        )

        call_command("setup_schedules", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
        account = make_account()
        calendar = make_calendar(profile=make_profile(account=account))
        app = make_application(name="Bench")
        ApplicationSecret.objects.create(
            application=app,
            secret="bench-secret",
            secret_checksum=hashlib.sha256(b"bench-secret").hexdigest(),
            secret_hash="-",
        )
        env = {
            **os.environ,
            "DATABASE_URL": os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + test_db,
        }
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
        if args.background_fanout:
            background = fanout_forever(os.environ["DATABASE_URL"])
        services.create_channel(
            account=account, application=app, callback_url=f"http://127.0.0.1:{port}/hook"
        )
        kind, _ = receipts.get(timeout=90)  # the verification: the path works
        assert kind == "verification", kind

        latencies: list[float] = []
        lost = 0
        for n in range(args.changes):
            apply_provider_events(calendar=calendar, upserts=[make_event_data(key=f"c{n}")])
            committed = time.time()
            services.kick_relay(account_id=account.pk)  # what the engine does after a sync
            try:
                while True:
                    kind, at = receipts.get(timeout=args.wait)
                    if kind == "change":
                        latencies.append(at - committed)
                        break
            except Exception:
                lost += 1
            time.sleep(args.interval)
        print(
            json.dumps(
                {
                    "benchmark": "callback_latency",
                    "deliver_process": args.deliver,
                    "broker": "redis" if args.redis else "orm",
                    "background_fanout": args.background_fanout,
                    "changes": args.changes,
                    "interval_s": args.interval,
                    "commit_to_callback_ms": figures_ms(latencies),
                    f"not_arrived_within_{args.wait:g}s": lost,
                }
            )
        )
    finally:
        if background is not None:
            os.killpg(background.pid, signal.SIGTERM)
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        connection.close()
        connection.creation.destroy_test_db(test_db, verbosity=0)
        receiver.terminate()


if __name__ == "__main__":
    main()
