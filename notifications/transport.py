"""SSRF-safe HTTP POST to integrators' callback URLs.

Pure networking: no models, no settings (callers pass the allow-list and limits).

Defences (docs/api.md, Channels):
- the URL and address rules of outbound.addresses, shared with end-users' calendar URLs;
- the name is resolved once per attempt and the connection goes to the address that was checked
  (TLS still verifies the certificate against the name, and Host keeps the name), so a name that
  resolves public-then-private (DNS rebinding) cannot reach an internal host;
- a total deadline enforced by a watchdog that shuts the socket, redirects never followed, the
  response body read up to a cap.
"""

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from outbound.addresses import (
    MAX_URL_LENGTH,
    IPAddress,
    IPNetwork,
    Target,
    UrlRejected,
    is_blocked,
    parse_networks,
    parse_url,
    resolve,
)

__all__ = [
    "MAX_URL_LENGTH",
    "IPNetwork",
    "PostResult",
    "Target",
    "UrlRejected",
    "is_blocked",
    "parse_callback_url",
    "parse_networks",
    "post",
    "resolve",
    "validate_callback_url",
]


@dataclass
class PostResult:
    status_code: int | None = None
    body: bytes = b""
    error: str = ""
    remote_ip: str = ""
    duration_ms: int = 0
    retry_after: str | None = None

    @property
    def is_success(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def parse_callback_url(url: str) -> Target:
    """Check the URL's shape (no network). Raises UrlRejected."""
    return parse_url(url, name="callback_url")


def validate_callback_url(url: str, allowed: Sequence[IPNetwork] = ()) -> Target:
    """Shape check plus resolution check, as done when a channel is created."""
    target = parse_callback_url(url)
    resolve(target, allowed)
    return target


class _Pinned:
    """Mixin: connect to a given, already checked address instead of resolving the host."""

    _address: IPAddress
    _raw: socket.socket | None = None
    _aborted = False

    def _open_socket(self) -> socket.socket:
        family = socket.AF_INET6 if self._address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        self._raw = sock
        if self._aborted:
            sock.close()
            raise TimeoutError("deadline reached before connecting")
        sock.settimeout(self.timeout)
        sock.connect((str(self._address), self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def abort(self) -> None:
        """Called by the watchdog at the deadline: unblock any pending socket operation."""
        self._aborted = True
        raw = self._raw
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)


class _PinnedHTTPConnection(_Pinned, http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: IPAddress, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = self._open_socket()


class _PinnedHTTPSConnection(_Pinned, http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: IPAddress, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = self._open_socket()
        # The certificate is verified against the name, while the socket goes to the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    allowed: Sequence[IPNetwork] = (),
    max_response_bytes: int = 4096,
) -> PostResult:
    """POST `body` to `url` once. Never raises for network or policy problems: the result says.

    `timeout` bounds the whole exchange (resolution excluded, connect to last byte read).
    3xx responses are results like any other: Location is never followed.
    """
    started = time.monotonic()
    result = PostResult()
    try:
        target = parse_callback_url(url)
        address = resolve(target, allowed)[0]
    except UrlRejected as exc:
        result.error = f"blocked: {exc.message}" if exc.code == "blocked_address" else exc.message
        result.duration_ms = int((time.monotonic() - started) * 1000)
        return result
    result.remote_ip = str(address)
    cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = cls(target.host, target.port, address, timeout)
    watchdog = threading.Timer(max(timeout - (time.monotonic() - started), 0.0), conn.abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", target.path, body=body, headers=dict(headers))
        response = conn.getresponse()
        result.status_code = response.status
        result.retry_after = response.getheader("Retry-After")
        result.body = response.read(max_response_bytes)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # Once the status line has arrived it decides; a body cut short does not matter.
        if result.status_code is None:
            result.error = _describe(exc, aborted=conn._aborted, timeout=timeout)
    finally:
        watchdog.cancel()
        conn.close()
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _describe(exc: BaseException, *, aborted: bool, timeout: float) -> str:
    if aborted or isinstance(exc, TimeoutError):
        return f"timeout after {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | http.client.RemoteDisconnected | BrokenPipeError):
        return "connection reset by the receiver"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc}"
    return f"{type(exc).__name__}: {exc}"
