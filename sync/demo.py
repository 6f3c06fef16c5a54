"""A local Radicale with a sample calendar, so a newcomer can try the whole loop offline.

Used by `manage.py serve`. Not for production: plain-text htpasswd, fixed demo password.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from oauth2_provider.models import get_application_model

from accounts.models import Account, Profile
from accounts.oauth_services import create_application, issue_tokens
from accounts.services import create_account
from sync.services import connect_profile

Application = get_application_model()

DEMO_USER = "demo"
DEMO_PASSWORD = "demo"  # noqa: S105 - a local demo server on 127.0.0.1
DEMO_CALENDAR = "sample"
DEMO_EMAIL = "demo@localhost"
DEMO_APPLICATION = "Demo integrator"


def start_radicale(root: Path, *, host: str = "127.0.0.1", port: int = 5232) -> subprocess.Popen:
    """Start Radicale with storage under `root` and wait until it answers."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "users").write_text(f"{DEMO_USER}:{DEMO_PASSWORD}\n")
    config = root / "config"
    config.write_text(
        "[auth]\ntype = htpasswd\n"
        f"htpasswd_filename = {root / 'users'}\nhtpasswd_encryption = plain\n"
        "[rights]\ntype = owner_only\n"
        f"[storage]\nfilesystem_folder = {root / 'collections'}\n"
        "[logging]\nlevel = warning\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radicale",
            "--config",
            str(config),
            "--server-hosts",
            f"{host}:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            requests.get(f"http://{host}:{port}/", timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"Radicale did not start on {host}:{port}")


def sample_events(today: datetime) -> list[tuple[str, str]]:
    """(uid, VEVENT) pairs: a few dozen timed, all-day and recurring events around today."""
    base = today.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)

    def stamp(value: datetime) -> str:
        return value.strftime("%Y%m%dT%H%M%SZ")

    events = []
    topics = ["Design review", "1:1", "Customer call", "Lunch", "Planning", "Interview"]
    for n in range(30):
        start = base + timedelta(days=n - 7, hours=9 + n % 7)
        uid = f"demo-{n}@calsync"
        events.append(
            (
                uid,
                f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:{stamp(base)}\r\nDTSTART:{stamp(start)}\r\n"
                f"DTEND:{stamp(start + timedelta(minutes=45))}\r\n"
                f"SUMMARY:{topics[n % len(topics)]}\r\nEND:VEVENT\r\n",
            )
        )
    standup = base + timedelta(days=-14, hours=8, minutes=30)
    events.append(
        (
            "demo-standup@calsync",
            "BEGIN:VEVENT\r\nUID:demo-standup@calsync\r\nDTSTAMP:20260101T000000Z\r\n"
            "DTSTART;TZID=Europe/London:" + standup.strftime("%Y%m%dT%H%M%S") + "\r\n"
            "DURATION:PT15M\r\nRRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR\r\n"
            "SUMMARY:Stand-up\r\nEND:VEVENT\r\n",
        )
    )
    events.append(
        (
            "demo-retro@calsync",
            "BEGIN:VEVENT\r\nUID:demo-retro@calsync\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART:{stamp(base + timedelta(days=2, hours=15))}\r\nDURATION:PT1H\r\n"
            "RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=10\r\nSUMMARY:Retrospective\r\nEND:VEVENT\r\n",
        )
    )
    for n, (days, length, summary) in enumerate(
        [(3, 1, "Public holiday"), (10, 3, "Conference"), (20, 5, "Vacation")]
    ):
        start = (base + timedelta(days=days)).date()
        end = start + timedelta(days=length)
        events.append(
            (
                f"demo-allday-{n}@calsync",
                f"BEGIN:VEVENT\r\nUID:demo-allday-{n}@calsync\r\nDTSTAMP:20260101T000000Z\r\n"
                f"DTSTART;VALUE=DATE:{start:%Y%m%d}\r\nDTEND;VALUE=DATE:{end:%Y%m%d}\r\n"
                f"SUMMARY:{summary}\r\nTRANSP:TRANSPARENT\r\nEND:VEVENT\r\n",
            )
        )
    return events


def seed_sample_calendar(base_url: str) -> str:
    """Create the demo user's sample calendar with sample events, unless it exists."""
    session = requests.Session()
    session.auth = (DEMO_USER, DEMO_PASSWORD)
    url = f"{base_url}/{DEMO_USER}/{DEMO_CALENDAR}/"
    if session.request("PROPFIND", url, headers={"Depth": "0"}, timeout=10).status_code == 207:
        return url
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
        "<D:displayname>Sample calendar</D:displayname></D:prop></D:set></C:mkcalendar>"
    )
    session.request("MKCALENDAR", url, data=body, timeout=10).raise_for_status()
    for uid, vevent in sample_events(datetime.now(UTC)):
        ical = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync demo//EN\r\n"
            f"{vevent}END:VCALENDAR\r\n"
        )
        session.put(
            f"{url}{uid}.ics",
            data=ical.encode(),
            headers={"Content-Type": "text/calendar"},
            timeout=10,
        ).raise_for_status()
    return url


@dataclass(frozen=True)
class DemoAccess:
    account_id: str
    profile_id: str
    client_id: str
    client_secret: str  # only when the application was created just now; "" afterwards
    access_token: str


def ensure_demo_access(base_url: str, *, redirect_uri: str) -> DemoAccess:
    """The demo account with the sample calendar connected (first run only: later runs keep
    what the user did with it), the "Demo integrator" application, and a fresh access token
    of that application for the demo account."""
    account = Account.objects.filter(email=DEMO_EMAIL).order_by("pk").first()
    account = account or create_account(email=DEMO_EMAIL, name="Demo user")
    profile = account.profiles.filter(provider=Profile.Provider.CALDAV).first()
    if profile is None:
        profile = connect_profile(
            account=account,
            provider_key=Profile.Provider.CALDAV,
            credentials_dict={
                "url": f"{base_url}/",
                "username": DEMO_USER,
                "password": DEMO_PASSWORD,
            },
        )
    application = Application.objects.filter(name=DEMO_APPLICATION).first()
    secret = ""
    if application is None:
        created = create_application(name=DEMO_APPLICATION, redirect_uris=[redirect_uri])
        application, secret = created.application, created.client_secret
    tokens = issue_tokens(account=account, application=application, scope="read_write")
    return DemoAccess(
        account_id=account.public_id,
        profile_id=profile.public_id,
        client_id=application.client_id,
        client_secret=secret,
        access_token=tokens.access_token,
    )
