"""A real Radicale CalDAV server for tests (pytest plugin, loaded by tests/conftest.py).

`radicale_server` (session): one server on 127.0.0.1:<free port> with temporary storage and two
users (alice, bob; plain htpasswd). `own_radicale_server` (function): a private one that a test
may stop and restart. `caldav_calendar` (function): a fresh empty calendar of
alice's, with helpers to put/delete iCalendar resources directly on the server.
"""

import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

USERS = {"alice": "alice-pw", "bob": "bob-pw"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RadicaleServer:
    base_url: str
    process: subprocess.Popen
    root: Path | None = None

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def restart(self) -> None:
        """Start again on the same port and storage (after stop())."""
        self.process = start_radicale(self.root, self.port).process

    def password(self, user: str) -> str:
        return USERS.get(user) or f"{user}-pw"

    def make_user(self) -> str:
        """A new user with an empty calendar home (the htpasswd file is re-read per login)."""
        user = f"u{uuid.uuid4().hex[:10]}"
        with (self.root / "users").open("a") as users:
            users.write(f"{user}:{self.password(user)}\n")
        return user

    def session(self, user: str = "alice") -> requests.Session:
        session = requests.Session()
        session.auth = (user, self.password(user))
        return session

    def make_calendar(self, user: str = "alice", name: str | None = None) -> str:
        """Create a calendar collection and return its absolute URL (ending with '/')."""
        slug = uuid.uuid4().hex[:12]
        url = f"{self.base_url}/{user}/{slug}/"
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:set><D:prop><D:displayname>{name or slug}</D:displayname>"
            '<C:supported-calendar-component-set><C:comp name="VEVENT"/>'
            "</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"
        )
        response = self.session(user).request("MKCALENDAR", url, data=body.encode(), timeout=30)
        response.raise_for_status()
        return url

    @staticmethod
    def owner(calendar_url: str) -> str:
        return calendar_url.split("://", 1)[1].split("/")[1]

    def put_event(self, calendar_url: str, uid: str, ics: str, user: str | None = None) -> str:
        """PUT one iCalendar resource named <uid>.ics (as the calendar's owner); returns its URL."""
        url = f"{calendar_url}{uid}.ics"
        response = self.session(user or self.owner(calendar_url)).put(
            url, data=ics.encode(), headers={"Content-Type": "text/calendar"}, timeout=30
        )
        response.raise_for_status()
        return url

    def delete_event(self, calendar_url: str, uid: str, user: str | None = None) -> None:
        response = self.session(user or self.owner(calendar_url)).delete(
            f"{calendar_url}{uid}.ics", timeout=30
        )
        response.raise_for_status()


def write_config(root: Path, *, max_expand_occurrence: int = 100000) -> Path:
    """Radicale config with htpasswd users; max_expand_occurrence raised so that big test
    calendars can be fetched (it caps VEVENTs per REPORT: docs/providers.md, Server quirks)."""
    htpasswd = root / "users"
    htpasswd.write_text("".join(f"{user}:{password}\n" for user, password in USERS.items()))
    config = root / "config"
    config.write_text(
        # max_connections: Radicale refuses connections past 8 by default; a hosted CalDAV
        # service takes dozens (the load tests connect 40 end-users at once).
        "[server]\nmax_connections = 64\n"
        # delay = 0: no pause after a failed login (the wrong-password tests would wait 1 s).
        "[auth]\ntype = htpasswd\ndelay = 0\n"
        f"htpasswd_filename = {htpasswd}\nhtpasswd_encryption = plain\n"
        "[rights]\ntype = owner_only\n"
        f"[storage]\nfilesystem_folder = {root / 'collections'}\n"
        f"[reporting]\nmax_expand_occurrence = {max_expand_occurrence}\n"
        "[logging]\nlevel = warning\n"
    )
    return config


def start_radicale(root: Path, port: int | None = None) -> RadicaleServer:
    """Start Radicale on 127.0.0.1 (a free port unless given) with storage under `root`."""
    config = root / "config"
    if not config.exists():
        write_config(root)
    port = port or free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radicale",
            "--config",
            str(config),
            "--server-hosts",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RadicaleServer(base_url=f"http://127.0.0.1:{port}", process=process, root=root)
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(server.base_url, timeout=1)
            return server
        except requests.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("Radicale did not start") from None
            time.sleep(0.05)


@pytest.fixture(scope="session")
def radicale_server(tmp_path_factory):
    server = start_radicale(tmp_path_factory.mktemp("radicale"))
    yield server
    server.stop()


@pytest.fixture
def own_radicale_server(tmp_path):
    """A private Radicale that a test may stop and restart (server-down scenarios)."""
    server = start_radicale(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def caldav_calendar(radicale_server) -> str:
    """URL of a fresh, empty calendar owned by alice."""
    return radicale_server.make_calendar("alice")
