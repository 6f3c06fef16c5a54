"""A real HTTP receiver on 127.0.0.1 and helpers for push tests.

The receiver is reachable only because the `allow_loopback` fixture puts 127.0.0.1/32 in
PUSH_CALLBACK_ALLOWED_NETWORKS; without it the default settings block it (test_transport.py).
"""

import hashlib
import json
import secrets as secrets_module
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from accounts.models import ApplicationSecret
from notifications import services
from tests.factories import make_application

SECRETS = ("pDY0Oi7TJSP2hfNmZNkm5", "opposable thumbs")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when the request was read

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def delivery_id(self) -> str:
        return self.headers.get("X-Delivery-Id", "")


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0  # seconds before answering
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # read the request, then reset the connection (RST)


class Receiver:
    """Threaded HTTP server; `script(received) -> Reply` decides each answer."""

    def __init__(self):
        self.requests: list[Received] = []
        self.script = lambda received: Reply()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                received = Received(self.path, dict(self.headers.items()), body, time.monotonic())
                with receiver._lock:
                    receiver.requests.append(received)
                reply = receiver.script(received)
                if reply.delay:
                    receiver._stop.wait(reply.delay)
                if reply.reset:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the sender gave up (timeout) and closed the socket
                self.close_connection = True

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # the default backlog of 5 resets concurrent senders

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def of_type(self, type_: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.json["notification"]["type"] == type_]

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _no_task_queue(settings):
    # The outbox row is the truth; tests call the dispatcher directly instead of a broker.
    settings.PUSH_ENQUEUE_ON_COMMIT = False


@pytest.fixture
def allow_loopback(settings):
    settings.PUSH_CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    return settings


def add_secret(application, secret: str, *, is_active: bool = True) -> ApplicationSecret:
    return ApplicationSecret.objects.create(
        application=application,
        secret=secret,
        secret_checksum=hashlib.sha256(secret.encode()).hexdigest(),
        secret_hash="not-used-here",
        is_active=is_active,
    )


def make_integrator(*, secrets=None, name: str = "Integrator"):
    """An application with active client secrets (two unique ones unless given)."""
    application = make_application(name=name)
    if secrets is None:
        secrets = [secrets_module.token_urlsafe(24) for _ in range(2)]
    for secret in secrets:
        add_secret(application, secret)
    return application


def open_channel(account, application, url: str, **filters):
    return services.create_channel(
        account=account, application=application, callback_url=url, **filters
    )


def deliver_all():
    """Run the dispatcher until nothing is due (what the on-commit task does)."""
    return services.dispatch_due()
