"""A CalDAV server stand-in for polling at scale (bench/poll_scale.py and the two-worker test):
many accounts whose calendars never change, answered from memory, counting what is asked.

Account p is user `u<p>` (password `pw`, Basic auth, a 401 challenge when a request carries
none); its principal and calendar home are both /u<p>/, and its calendars /u<p>/c<i>/, each
with a fixed ctag and sync-token. It answers PROPFIND Depth 0 (a calendar's ctag and token,
the home's principal properties), PROPFIND Depth 1 on a home (every calendar's), and REPORT
(sync-collection and calendar-query: no resources). Standard library only.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PASSWORD = "pw"
_NS = 'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/"'


def home_url(base_url: str, profile: int) -> str:
    return f"{base_url}/u{profile}/"


def calendar_url(base_url: str, profile: int, calendar: int) -> str:
    return f"{base_url}/u{profile}/c{calendar}/"


def ctag(profile: int, calendar: int) -> str:
    return f"ctag-p{profile}c{calendar}"


def sync_token(profile: int, calendar: int) -> str:
    return f"http://standin.invalid/sync/p{profile}c{calendar}"


class StandIn:
    """The server and its counters. `delay` seconds are spent in every authenticated answer,
    so that two concurrent polls of one calendar would overlap visibly (`max_in_flight`)."""

    def __init__(self, *, profiles: int, per_profile: int, delay: float = 0.0):
        self.profiles, self.per_profile, self.delay = profiles, per_profile, delay
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # "PROPFIND 0", "PROPFIND 1", "REPORT", "401"
        self.full_reports = 0  # sync-collection from an empty token: a full fetch
        self.polls: dict[str, list[float]] = defaultdict(list)  # calendar path -> when asked
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.request_queue_size = 1024
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> StandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def total_requests(self) -> int:
        with self.lock:
            return sum(self.requests.values())

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_PROPFIND(self):
                self._answer("PROPFIND")

            def do_REPORT(self):
                self._answer("REPORT")

            def _answer(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                user = self._user()
                if user is None:
                    standin._count("401")
                    self._send(401, b"", {"WWW-Authenticate": 'Basic realm="standin"'})
                    return
                depth = self.headers.get("Depth", "0")
                parts = [p for p in self.path.split("/") if p]
                if not parts or parts[0] != user:
                    self._send(403, b"")
                    return
                standin._count(f"{method} {depth}" if method == "PROPFIND" else method)
                profile = int(user[1:])
                key = self.path
                standin._enter(key)
                try:
                    if standin.delay:
                        time.sleep(standin.delay)
                    if method == "REPORT":
                        answer = standin._report(self.path, body)
                    elif len(parts) == 1:
                        answer = standin._home(profile, self.path, depth)
                    else:
                        answer = standin._calendar(profile, self.path)
                finally:
                    standin._leave(key)
                if answer is None:
                    self._send(404, b"")
                    return
                self._send(207, answer.encode(), {"Content-Type": "application/xml"})

            def _user(self) -> str | None:
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return None
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return user if password == PASSWORD else None

            def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _count(self, what: str) -> None:
        with self.lock:
            self.requests[what] += 1

    def _enter(self, key: str) -> None:
        with self.lock:
            self.in_flight[key] += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight[key])

    def _leave(self, key: str) -> None:
        with self.lock:
            self.in_flight[key] -= 1

    def _polled(self, paths: list[str]) -> None:
        now = time.time()
        with self.lock:
            for path in paths:
                self.polls[path].append(now)

    def _calendar_props(self, profile: int, calendar: int) -> str:
        return (
            f"<D:response><D:href>/u{profile}/c{calendar}/</D:href><D:propstat><D:prop>"
            "<D:resourcetype><D:collection/><C:calendar/></D:resourcetype>"
            f"<D:displayname>Calendar {calendar}</D:displayname>"
            f"<CS:getctag>{ctag(profile, calendar)}</CS:getctag>"
            f"<D:sync-token>{sync_token(profile, calendar)}</D:sync-token>"
            '<C:supported-calendar-component-set><C:comp name="VEVENT"/>'
            "</C:supported-calendar-component-set>"
            "<D:current-user-privilege-set><D:privilege><D:read/></D:privilege>"
            "<D:privilege><D:write/></D:privilege></D:current-user-privilege-set>"
            "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        )

    def _home(self, profile: int, path: str, depth: str) -> str:
        home = (
            f"<D:response><D:href>{path}</D:href><D:propstat><D:prop>"
            "<D:resourcetype><D:collection/></D:resourcetype>"
            f"<D:current-user-principal><D:href>/u{profile}/</D:href></D:current-user-principal>"
            f"<C:calendar-home-set><D:href>/u{profile}/</D:href></C:calendar-home-set>"
            f"<D:displayname>u{profile}</D:displayname>"
            "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        )
        calendars = ""
        if depth == "1":
            calendars = "".join(self._calendar_props(profile, i) for i in range(self.per_profile))
            self._polled([f"/u{profile}/c{i}/" for i in range(self.per_profile)])
        return _multistatus(home + calendars)

    def _calendar(self, profile: int, path: str) -> str | None:
        name = path.strip("/").split("/")[1]
        if not name.startswith("c") or not name[1:].isdigit() or int(name[1:]) >= self.per_profile:
            return None
        self._polled([path])
        props = self._calendar_props(profile, int(name[1:]))
        return _multistatus(props)

    def _report(self, path: str, body: bytes) -> str:
        text = body.decode(errors="replace")
        if "sync-collection" in text:
            token = text.split("<D:sync-token>", 1)[-1].split("</D:sync-token>", 1)[0]
            if "<D:sync-token>" not in text or not token.strip():
                with self.lock:
                    self.full_reports += 1
            parts = path.strip("/").split("/")
            profile, calendar = int(parts[0][1:]), int(parts[1][1:])
            return _multistatus(f"<D:sync-token>{sync_token(profile, calendar)}</D:sync-token>")
        return _multistatus("")


def _multistatus(body: str) -> str:
    return f'<?xml version="1.0" encoding="utf-8"?><D:multistatus {_NS}>{body}</D:multistatus>'
