"""SSRF-safe HTTP POST to integrators' callback URLs.

Pure networking: no models, no settings (callers pass the allow-list and limits).

Defences (docs/api.md, Channels):
- only http(s), no userinfo, no `localhost`, no obfuscated numeric IPv4 (`2130706433`,
  `0x7f000001`, `017700000001`, `127.1`), at most 1024 characters;
- every address a name resolves to must be public (IPv4-mapped/compatible IPv6 is judged by its
  IPv4 address) unless an explicitly allowed network contains it;
- the name is resolved once per attempt and the connection goes to the address that was checked
  (TLS still verifies the certificate against the name, and Host keeps the name), so a name that
  resolves public-then-private (DNS rebinding) cannot reach an internal host;
- a total deadline enforced by a watchdog that shuts the socket, redirects never followed, the
  response body read up to a cap.
"""

import contextlib
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges `is_global` does not already exclude in every Python version, or that are global but
# tunnel to arbitrary IPv4 space (6to4, Teredo, NAT64) and so could reach internal addresses.
_ALWAYS_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "192.0.0.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",
        "::1/128",
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",
        "100::/64",  # discard
        "2001::/32",  # Teredo
        "2001:db8::/32",
        "2002::/16",  # 6to4
        "5f00::/16",  # SRv6
        "fc00::/7",  # ULA
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)

_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


class UrlRejected(ValueError):
    """The callback URL may not be used; `code` is a short machine-readable reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower-case name or IP literal, without brackets
    port: int
    path: str  # path and query, never empty
    literal: IPAddress | None  # set when the host is an IP literal


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


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR strings (as in PUSH_CALLBACK_ALLOWED_NETWORKS) to networks; ValueError if invalid."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values if value)


def parse_callback_url(url: str) -> Target:
    """Check the URL's shape (no network). Raises UrlRejected."""
    if not isinstance(url, str) or not url:
        raise UrlRejected("invalid_url", "callback_url must be a URL")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRejected("too_long", f"callback_url must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UrlRejected("invalid_url", "callback_url must not contain whitespace")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRejected("invalid_url", f"callback_url is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRejected("invalid_scheme", "callback_url must be an http or https URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlRejected("invalid_url", "callback_url must not contain credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRejected("invalid_url", "callback_url must name a host")
    if host == "localhost" or host.endswith(".localhost"):
        raise UrlRejected("blocked_address", "callback_url must not point to localhost")
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host)
    except ValueError:
        literal = None
        if all(_NUMERIC_LABEL.fullmatch(label) for label in host.split(".")):
            # 2130706433, 0x7f000001, 017700000001, 127.1: resolvers read these as IPv4.
            raise UrlRejected(
                "invalid_url", "callback_url must not use a non-standard IP address form"
            ) from None
    if literal is not None and "%" in host:
        raise UrlRejected("invalid_url", "callback_url must not use an IPv6 zone")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(
        scheme=scheme,
        host=host,
        port=port or (443 if scheme == "https" else 80),
        path=path,
        literal=literal,
    )


def is_blocked(ip: IPAddress, allowed: Sequence[IPNetwork] = ()) -> bool:
    """True if `ip` is internal (private, loopback, link-local, CGNAT, ULA, …) and not allowed."""
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        elif ip.packed[:12] == bytes(12) and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
            candidates.append(ipaddress.IPv4Address(ip.packed[12:]))
    judged = candidates[-1]
    if any(c in net for c in candidates for net in allowed if c.version == net.version):
        return False
    if not judged.is_global or judged.is_multicast or judged.is_reserved:
        return True
    return any(c in net for c in candidates for net in _ALWAYS_BLOCKED if c.version == net.version)


def resolve(target: Target, allowed: Sequence[IPNetwork] = ()) -> list[IPAddress]:
    """The addresses to connect to; every one must pass `is_blocked`. Raises UrlRejected.

    Resolves once: the caller connects to an address from this list, never to the name again.
    """
    if target.literal is not None:
        addresses = [target.literal]
    else:
        try:
            infos = socket.getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise UrlRejected(
                "unresolvable", f"{target.host} could not be resolved: {exc}"
            ) from None
        addresses = []
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise UrlRejected("unresolvable", f"{target.host} has no address")
    blocked = [ip for ip in addresses if is_blocked(ip, allowed)]
    if blocked:
        raise UrlRejected("blocked_address", f"{target.host} resolves to a blocked address")
    return addresses


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
