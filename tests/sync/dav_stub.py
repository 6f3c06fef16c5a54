"""A small CalDAV-shaped HTTP/1.1 server on 127.0.0.1 that counts what a client costs it: TCP
connections, requests and 401s. Tests and bench/caldav_noop_poll.py use it where Radicale
cannot tell (its built-in server closes the connection after every request).

It answers PROPFIND with the ctag and sync token of its collections (`members`: path ->
{"ctag", "token"}; a missing key is a 404 propstat), GET with a small iCalendar body, and asks
for Basic or Digest credentials (`scheme`; None asks for none). `refuse_depth_one` makes a
Depth 1 PROPFIND answer that status instead.
"""

import base64
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//stub//EN\r\nEND:VCALENDAR\r\n"


@dataclass
class Counts:
    connections: int = 0
    requests: int = 0
    challenges: int = 0  # 401 answers
    authorizations: list[str] = field(default_factory=list)  # scheme sent, "" for none
    cookies: list[str] = field(default_factory=list)


class DavStub:
    def __init__(self, *, username="alice", password="alice-pw", scheme="basic"):
        self.username, self.password, self.scheme = username, password, scheme
        self.members: dict[str, dict[str, str]] = {}
        self.refuse_depth_one: int | None = None
        self.status_override: int | None = None
        self.redirect_to: str | None = None  # every request answered 301 to this URL
        self.counts = Counts()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return self.origin + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _count(self, **increments) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self.counts, name, getattr(self.counts, name) + value)

    def _authorized(self, header: str) -> bool:
        if self.scheme is None:
            return True
        if self.scheme == "basic":
            pair = f"{self.username}:{self.password}".encode()
            return header == "Basic " + base64.b64encode(pair).decode()
        # Digest: the stub checks who asks, not the hash (niquests computes it).
        return header.startswith("Digest ") and f'username="{self.username}"' in header

    def _challenge(self) -> str:
        if self.scheme == "basic":
            return 'Basic realm="stub"'
        return 'Digest realm="stub", nonce="n0nce", qop="auth", algorithm=MD5'

    def _multistatus(self, paths) -> bytes:
        responses = "".join(_response(path, self.members[path]) for path in paths)
        return (
            '<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:" '
            f'xmlns:CS="http://calendarserver.org/ns/">{responses}</D:multistatus>'
        ).encode()

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as hosted CalDAV servers do
            wbufsize = 64 * 1024  # head and body in one segment (no delayed-ACK stall)

            def setup(self):
                super().setup()
                stub._count(connections=1)

            def _reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stub._count(requests=1)
                header = self.headers.get("Authorization", "")
                stub.counts.authorizations.append(header.split(" ", 1)[0])
                stub.counts.cookies.append(self.headers.get("Cookie", ""))
                if stub.redirect_to:
                    return self._reply(301, headers=[("Location", stub.redirect_to)])
                if not stub._authorized(header):
                    stub._count(challenges=1)
                    return self._reply(401, headers=[("WWW-Authenticate", stub._challenge())])
                if stub.status_override:
                    return self._reply(stub.status_override, headers=[("Retry-After", "7")])
                if self.command == "GET":
                    headers = [("Content-Type", "text/calendar"), ("Set-Cookie", "sid=alice")]
                    return self._reply(200, ICS, headers)
                return self._propfind()

            def _propfind(self):
                path = self.path
                depth = self.headers.get("Depth", "0")
                if depth == "1" and stub.refuse_depth_one:
                    return self._reply(stub.refuse_depth_one)
                if depth == "1":
                    paths = [p for p in stub.members if p.startswith(path)]
                elif path in stub.members:
                    paths = [path]
                else:
                    return self._reply(404)
                body = stub._multistatus(paths)
                self._reply(207, body, [("Content-Type", "application/xml; charset=utf-8")])

            do_GET = do_PROPFIND = do_REPORT = _serve

            def log_message(self, *args):
                pass

        return Handler


def _response(path: str, props: dict[str, str]) -> str:
    found = "".join(
        f"<{tag}>{escape(props[key])}</{tag}>"
        for key, tag in (("ctag", "CS:getctag"), ("token", "D:sync-token"))
        if key in props
    )
    missing = "".join(
        f"<{tag}/>"
        for key, tag in (("ctag", "CS:getctag"), ("token", "D:sync-token"))
        if key not in props
    )
    propstats = f"<D:propstat><D:prop>{found}</D:prop><D:status>HTTP/1.1 200 OK</D:status>"
    propstats += "</D:propstat>"
    if missing:
        propstats += f"<D:propstat><D:prop>{missing}</D:prop>"
        propstats += "<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>"
    return f"<D:response><D:href>{escape(path)}</D:href>{propstats}</D:response>"
