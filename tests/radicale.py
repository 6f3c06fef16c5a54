"""A real Radicale CalDAV server for tests (pytest plugin, loaded by tests/conftest.py).

`radicale_server` (session): one server on 127.0.0.1:<free port> with temporary storage and two
users (alice, bob; plain htpasswd). `caldav_calendar` (function): a fresh empty calendar of
alice's, with helpers to put/delete iCalendar resources directly on the server.
"""

import itertools
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

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

    def session(self, user: str = "alice") -> requests.Session:
        session = requests.Session()
        session.auth = (user, USERS[user])
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

    def put_event(self, calendar_url: str, uid: str, ics: str, user: str = "alice") -> str:
        """PUT one iCalendar resource named <uid>.ics; returns its URL."""
        url = f"{calendar_url}{uid}.ics"
        response = self.session(user).put(
            url, data=ics.encode(), headers={"Content-Type": "text/calendar"}, timeout=30
        )
        response.raise_for_status()
        return url

    def delete_event(self, calendar_url: str, uid: str, user: str = "alice") -> None:
        response = self.session(user).delete(f"{calendar_url}{uid}.ics", timeout=30)
        response.raise_for_status()


_ports = itertools.count()


@pytest.fixture(scope="session")
def radicale_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("radicale")
    htpasswd = root / "users"
    htpasswd.write_text("".join(f"{user}:{password}\n" for user, password in USERS.items()))
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radicale",
            "--server-hosts",
            f"127.0.0.1:{port}",
            "--storage-filesystem-folder",
            str(root / "collections"),
            "--auth-type",
            "htpasswd",
            "--auth-htpasswd-filename",
            str(htpasswd),
            "--auth-htpasswd-encryption",
            "plain",
            "--rights-type",
            "owner_only",
            "--logging-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RadicaleServer(base_url=f"http://127.0.0.1:{port}", process=process)
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(server.base_url, timeout=1)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("Radicale did not start") from None
            time.sleep(0.1)
    yield server
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def caldav_calendar(radicale_server) -> str:
    """URL of a fresh, empty calendar owned by alice."""
    return radicale_server.make_calendar("alice")
