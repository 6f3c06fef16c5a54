"""Benchmark: one change fanned out to 1,000 channels of one account, 10% of receivers hanging.

Measures the time from the committed change until each healthy receiver has its `change`
notification (receiver clock = same machine), relay included. The hanging 10% answer the
verification but never answer the change in time (5 s timeout, then retry).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/calsync python bench/push_fanout.py

Creates and drops a throwaway database (test_<name>); prints one JSON line of figures.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import statistics
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_receiver(port_queue, receipts, hang_seconds: float) -> None:
    """Receiver process: /ok/<n> answers at once; /slow/<n> hangs on `change`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = json.loads(body)["notification"]["type"]
            receipts.put((self.path, kind, time.time()))
            if kind == "change" and self.path.startswith("/slow/"):
                time.sleep(hang_seconds)
            try:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
            except OSError:
                pass
            self.close_connection = True

    class Server(ThreadingHTTPServer):
        request_queue_size = 4096
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def drain(receipts) -> list:
    items = []
    while True:
        try:
            items.append(receipts.get(timeout=0.2))
        except Exception:
            return items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--slow-fraction", type=float, default=0.10)
    parser.add_argument("--concurrency", type=int, default=0, help="0: PUSH_DISPATCH_CONCURRENCY")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["PUSH_CALLBACK_ALLOWED_NETWORKS"] = "127.0.0.1/32"
    os.environ["PUSH_MAX_CHANNELS_PER_ACCOUNT"] = str(args.channels)
    os.environ["PUSH_ENQUEUE_ON_COMMIT"] = "false"
    os.environ.setdefault("LOG_LEVEL", "ERROR")

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    port_queue, receipts = multiprocessing.Queue(), multiprocessing.Queue()
    receiver = multiprocessing.Process(
        target=run_receiver, args=(port_queue, receipts, 10.0), daemon=True
    )
    receiver.start()
    port = port_queue.get(timeout=10)

    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
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

        account = make_account()
        calendar = make_calendar(profile=make_profile(account=account))
        app = make_application(name="Bench")
        for secret in ("bench-secret-one", "bench-secret-two"):
            ApplicationSecret.objects.create(
                application=app,
                secret=secret,
                secret_checksum=hashlib.sha256(secret.encode()).hexdigest(),
                secret_hash="-",
            )
        slow_every = round(1 / args.slow_fraction) if args.slow_fraction else 0
        slow_paths, ok_paths = set(), set()
        for i in range(args.channels):
            is_slow = slow_every and i % slow_every == 0
            path = f"/slow/{i}" if is_slow else f"/ok/{i}"
            (slow_paths if is_slow else ok_paths).add(path)
            services.create_channel(
                account=account, application=app, callback_url=f"http://127.0.0.1:{port}{path}"
            )
        concurrency = args.concurrency or settings.PUSH_DISPATCH_CONCURRENCY
        services.run_dispatcher(concurrency=concurrency)  # verifications (everyone answers)
        drain(receipts)

        started = time.time()
        apply_provider_events(calendar=calendar, upserts=[make_event_data()])
        committed = time.time()
        relay_started = time.perf_counter()
        relayed = services.relay_changes()
        relay_s = time.perf_counter() - relay_started
        stats = services.run_dispatcher(concurrency=concurrency)
        returned = time.time()
        time.sleep(0.5)
        got = {path: at for path, kind, at in drain(receipts) if kind == "change"}

        latencies = sorted(got[p] - committed for p in ok_paths if p in got)
        healthy_within_5s = sum(1 for v in latencies if v <= 5.0)
        figures = {
            "benchmark": "push_fanout",
            "database": connection.vendor,
            "channels": args.channels,
            "slow_receivers": len(slow_paths),
            "concurrency": concurrency,
            "timeout_s": settings.PUSH_DELIVERY_TIMEOUT_SECONDS,
            "change_commit_s": round(committed - started, 4),
            "relay_s": round(relay_s, 3),
            "notifications_created": relayed,
            "healthy_delivered": len(latencies),
            "healthy_within_5s": healthy_within_5s,
            "healthy_latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "healthy_latency_p95_s": round(latencies[int(len(latencies) * 0.95) - 1], 3)
            if latencies
            else None,
            "all_healthy_delivered_s": round(latencies[-1], 3) if latencies else None,
            "slow_reached": sum(1 for p in slow_paths if p in got),
            "dispatcher_run_s": round(returned - committed, 3),
            "outcomes": dict(stats.outcomes),
        }
        print(json.dumps(figures))
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)
        receiver.terminate()


if __name__ == "__main__":
    main()
