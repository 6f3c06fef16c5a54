"""python -m sync.sandbox.microsoft [--port 8766] [--client-id ... --client-secret ...
[--redirect-uri ...]] [--user email ...] [--auto-approve-as email] [--sample]: run the
sandbox until interrupted (Ctrl-C or SIGTERM)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta

from sync.sandbox.microsoft.sandbox import MicrosoftSandbox

_LOCAL = "%Y-%m-%dT%H:%M:%S"


def _slot(day: datetime, offset_days: int, hour: int, minutes: int = 60) -> dict:
    start = day + timedelta(days=offset_days, hours=hour)
    return {
        "start": {"dateTime": start.strftime(_LOCAL), "timeZone": "UTC"},
        "end": {
            "dateTime": (start + timedelta(minutes=minutes)).strftime(_LOCAL),
            "timeZone": "UTC",
        },
    }


def add_sample_events(sandbox: MicrosoftSandbox, email: str) -> None:
    """A weekly stand-up (Monday, Wednesday, Friday) and a few meetings in the coming days."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    recurrence = {
        "pattern": {
            "type": "weekly",
            "interval": 1,
            "daysOfWeek": ["monday", "wednesday", "friday"],
            "firstDayOfWeek": "monday",
        },
        "range": {"type": "noEnd", "startDate": today.date().isoformat()},
    }
    sandbox.put_event(
        email, {"subject": "Stand-up", **_slot(today, 0, 9, 15), "recurrence": recurrence}
    )
    meetings = [(1, 13, "Lunch with Sam"), (2, 15, "Design review"), (4, 10, "1:1")]
    for offset_days, hour, subject in meetings:
        sandbox.put_event(email, {"subject": subject, **_slot(today, offset_days, hour)})


def _arguments(argv):
    parser = argparse.ArgumentParser(
        prog="python -m sync.sandbox.microsoft",
        description="An in-memory Microsoft identity platform + Graph v1.0 calendar sandbox.",
    )
    options = [
        ("--host", {"default": "127.0.0.1"}),
        ("--port", {"type": int, "default": 8766, "help": "0 picks a free port"}),
        ("--client-id", {}),
        ("--client-secret", {}),
        ("--redirect-uri", {"action": "append", "default": [], "help": "repeatable"}),
        ("--user", {"action": "append", "default": [], "help": "repeatable"}),
        ("--auto-approve-as", {"help": "skip the consent page as this user"}),
        ("--no-concurrency-limit", {"action": "store_true"}),
        ("--sample", {"action": "store_true", "help": "a series and a few events per user"}),
        ("--verbose", {"action": "store_true", "help": "log every request"}),
    ]
    for flag, settings in options:
        parser.add_argument(flag, **settings)
    return parser.parse_args(argv)


def build(args) -> MicrosoftSandbox:
    """The sandbox the command line describes, not started yet."""
    sandbox = MicrosoftSandbox(
        args.host,
        args.port,
        max_concurrent_per_mailbox=None if args.no_concurrency_limit else 4,
        auto_approve_as=args.auto_approve_as,
        verbose=args.verbose,
    )
    if args.client_id:
        sandbox.add_client(args.client_id, args.client_secret, args.redirect_uri)
    emails = args.user or ["user@example.com"]
    users = [sandbox.add_user(email) for email in emails]
    for user in users if args.sample else ():
        add_sample_events(sandbox, user.email)
    return sandbox


def main(argv: list[str] | None = None) -> int:
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with build(_arguments(argv)) as sandbox:
        print(sandbox.url, flush=True)
        sys.stderr.write(f"MICROSOFT_LOGIN_URL={sandbox.url} MICROSOFT_GRAPH_URL={sandbox.url}\n")
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
