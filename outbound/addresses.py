"""Which URLs and addresses the server may connect to on a user's or an integrator's behalf.

Pure policy (standard library, no network except `resolve`): integrators' push callbacks
(notifications.transport) and end-users' ICS feeds and CalDAV servers (sync.outbound) share
these rules, so that an address refused in one place is refused everywhere
(docs/operations.md, Outbound requests):

- only http(s), no userinfo, no `localhost`, no obfuscated numeric IPv4 (`2130706433`,
  `0x7f000001`, `017700000001`, `127.1`), no IPv6 zone, at most 1024 characters;
- every address a name resolves to must be public (IPv4-mapped/compatible IPv6 is judged by its
  IPv4 address) unless an allow-list names it: networks for push callbacks
  (PUSH_CALLBACK_ALLOWED_NETWORKS), origins for end-user URLs (CONNECT_ALLOWED_ORIGINS).
"""

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
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
        "fc00::/7",  # ULA, AWS's metadata address fd00:ec2::254 among them
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)

_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


class UrlRejected(ValueError):
    """The URL may not be used; `code` is a short machine-readable reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str  # lower-case name or IP literal, without brackets
    port: int


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower-case name or IP literal, without brackets
    port: int
    path: str  # path and query, never empty
    literal: IPAddress | None  # set when the host is an IP literal

    @property
    def origin(self) -> Origin:
        return Origin(self.scheme, self.host, self.port)


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR strings (as in PUSH_CALLBACK_ALLOWED_NETWORKS) to networks; ValueError if invalid."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values if value)


def parse_origins(values: Iterable[str]) -> frozenset[Origin]:
    """`scheme://host:port` strings (as in CONNECT_ALLOWED_ORIGINS) to origins; ValueError if one
    is not exactly that (a path, credentials or a missing port are mistakes, not wildcards)."""
    origins = set()
    for value in values:
        value = value.strip()
        if not value:
            continue
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.port is None
            or parts.path not in ("", "/")
            or parts.query
            or "@" in parts.netloc
        ):
            raise ValueError(f"{value!r} is not an origin of the form scheme://host:port")
        origins.add(Origin(parts.scheme, parts.hostname.rstrip("."), parts.port))
    return frozenset(origins)


def parse_url(url: str, *, name: str = "url") -> Target:
    """Check the URL's shape (no network). Raises UrlRejected; messages start with `name`."""
    if not isinstance(url, str) or not url:
        raise UrlRejected("invalid_url", f"{name} must be a URL")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRejected("too_long", f"{name} must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UrlRejected("invalid_url", f"{name} must not contain whitespace")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRejected("invalid_url", f"{name} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRejected("invalid_scheme", f"{name} must be an http or https URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlRejected("credentials", f"{name} must not contain credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRejected("invalid_url", f"{name} must name a host")
    if host == "localhost" or host.endswith(".localhost"):
        raise UrlRejected("blocked_address", f"{name} must not point to localhost")
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host)
    except ValueError:
        literal = None
        if all(_NUMERIC_LABEL.fullmatch(label) for label in host.split(".")):
            # 2130706433, 0x7f000001, 017700000001, 127.1: resolvers read these as IPv4.
            raise UrlRejected(
                "invalid_url", f"{name} must not use a non-standard IP address form"
            ) from None
    if literal is not None and "%" in host:
        raise UrlRejected("invalid_url", f"{name} must not use an IPv6 zone")
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
    """True if `ip` is internal (private, loopback, link-local, metadata, CGNAT, ULA, …) and no
    allowed network contains it."""
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
    if any(is_blocked(ip, allowed) for ip in addresses):
        raise UrlRejected("blocked_address", f"{target.host} resolves to a blocked address")
    return addresses
