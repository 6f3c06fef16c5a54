"""Run the delivery process until SIGTERM or Ctrl-C: relay the change log, send push
notifications, reconcile managed-event writes as soon as the commits that make them due, and
hand calendar polls to the workers as they fall due
(sync/services/delivery.py; docs/operations.md, "The delivery process"). `serve` starts one;
several may run against one database (on one host or many), none sends a notification twice.

SIGTERM stops claiming, lets the deliveries in flight finish (at most the delivery timeout)
and the writer threads finish the write they hold, then exits with a summary.
"""

import signal

from django.core.management.base import BaseCommand

from sync.services.delivery import DeliveryProcess


class Command(BaseCommand):
    help = (
        "Deliver push notifications and managed-event writes, woken on commit, and hand due "
        "calendar polls to the workers."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--write-threads",
            type=int,
            default=None,
            help="writes reconciled at once (default EVENT_WRITE_CONCURRENCY)",
        )
        parser.add_argument(
            "--no-polls",
            action="store_true",
            help="do not hand due calendar polls to the workers (the minute tick still does)",
        )
        parser.add_argument(
            "--push-concurrency",
            type=int,
            default=None,
            help="deliveries in flight at once (default PUSH_DISPATCH_CONCURRENCY)",
        )

    def handle(self, *args, write_threads, push_concurrency, no_polls, **options):
        process = DeliveryProcess(
            write_threads=write_threads,
            push_concurrency=push_concurrency,
            hand_out_polls=not no_polls,
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: process.stop())
        self.stdout.write(f"delivering as {process.name}", ending="\n")
        self.stdout.flush()
        report = process.run()
        self.stdout.write(f"stopped: {report}")
