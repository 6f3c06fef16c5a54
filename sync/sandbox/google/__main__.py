"""python -m sync.sandbox.google [--port 8765] [--client-id ... --client-secret ...
[--redirect-uri ...]] [--user email ...] [--auto-approve-as email]: run the sandbox."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta

from sync.sandbox.google.sandbox import GoogleSandbox


def add_sample_events(sandbox: GoogleSandbox, email: str) -> None:
    """A weekly stand-up and a few meetings over the next days, so a demo has something."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def at(days: int, hour: int, minutes: int = 60) -> dict:
        start = today + timedelta(days=days, hours=hour)
        end = start + timedelta(minutes=minutes)
        return {
            "start": {"dateTime": start.strftime(_STAMP), "timeZone": "UTC"},
            "end": {"dateTime": end.strftime(_STAMP), "timeZone": "UTC"},
        }

    sandbox.put_event(
        email,
        "primary",
        {"summary": "Stand-up", **at(0, 9, 15), "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR"]},
    )
    for days, hour, summary in (
        (1, 13, "Lunch with Sam"),
        (2, 15, "Design review"),
        (4, 10, "1:1"),
    ):
        sandbox.put_event(email, "primary", {"summary": summary, **at(days, hour)})


_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sync.sandbox.google",
        description="An in-memory Google OAuth 2.0 + Calendar API v3 sandbox.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--redirect-uri", action="append", default=[], help="repeatable")
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        help="an account (repeatable; default user@example.com)",
    )
    parser.add_argument("--auto-approve-as", help="skip the consent page as this user")
    parser.add_argument("--rotate-refresh-tokens", action="store_true")
    parser.add_argument(
        "--sample", action="store_true", help="give each user a week of sample events"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    sandbox = GoogleSandbox(
        args.host,
        args.port,
        auto_approve_as=args.auto_approve_as,
        rotate_refresh_tokens=args.rotate_refresh_tokens,
        verbose=args.verbose,
    )
    if args.client_id:
        sandbox.add_client(args.client_id, args.client_secret, args.redirect_uri)
    for email in args.user or ["user@example.com"]:
        sandbox.add_user(email)
        if args.sample:
            add_sample_events(sandbox, email)
    sandbox.start()
    print(sandbox.url, flush=True)
    print(
        f"GOOGLE_ACCOUNTS_URL={sandbox.url} GOOGLE_OAUTH2_URL={sandbox.url} "
        f"GOOGLE_APIS_URL={sandbox.url}",
        file=sys.stderr,
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
