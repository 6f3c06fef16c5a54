"""The HTTP session for end-users' URLs: ICS feeds and CalDAV servers, at connect and at every
poll (docs/operations.md, Outbound requests).

Every request the session sends, each redirect hop included (the session follows redirects by
calling the adapter again), goes through `GuardedAdapter.send`, which checks the URL's shape
with outbound.addresses, and through `GuardedResolver`, the only name resolution the connection
uses: it refuses internal addresses, so the socket goes to an address that was checked (a name
that resolves public-then-private, DNS rebinding, gets nowhere). An origin named in
CONNECT_ALLOWED_ORIGINS skips the address check, for self-hosted servers on private networks.

Bounds: at most MAX_REDIRECTS hops, each hop's body read up to MAX_RESPONSE_BYTES within
DEADLINE_SECONDS (one slow read may overrun it by a read timeout). No proxies, no .netrc.
"""

import ipaddress
import logging
import socket
import time
from collections.abc import Iterable

import niquests
from django.conf import settings
from niquests._compat import HAS_LEGACY_URLLIB3
from niquests.adapters import HTTPAdapter

# niquests runs on urllib3-future, installed as `urllib3` unless a plain urllib3 (requests
# needs one) took that name back; then it is `urllib3_future`. Take the resolver from the one
# niquests uses, as niquests itself decides.
if HAS_LEGACY_URLLIB3:
    from urllib3_future.contrib.resolver.system import SystemResolver
else:
    from urllib3.contrib.resolver.system import SystemResolver

from outbound.addresses import Origin, UrlRejected, is_blocked, parse_origins, parse_url

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
DEADLINE_SECONDS = 60.0
_CHUNK = 64 * 1024


class OutboundRefused(niquests.exceptions.ConnectionError):
    """A request the policy refused before any byte was sent, or a response over the bounds.

    A ConnectionError on purpose: adapters already turn those into TemporaryError, so a refusal
    looks to the end-user exactly like an unreachable server (no port scanner).
    """


class GuardedResolver(SystemResolver):
    """System DNS whose answers must all be public unless (host, port) is allowed."""

    def __init__(self, allowed: Iterable[Origin]):
        super().__init__()
        self.allowed_endpoints = frozenset((o.host, o.port) for o in allowed)

    def getaddrinfo(self, host, port, family, type, proto=0, flags=0, **kwargs):
        infos = super().getaddrinfo(host, port, family, type, proto, flags, **kwargs)
        name = host.decode() if isinstance(host, bytes) else str(host)
        endpoint = (name.lower().rstrip("."), int(port) if port is not None else None)
        if endpoint in self.allowed_endpoints:
            return infos
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if is_blocked(address):
                logger.warning("outbound request refused: %s resolves to %s", name, address)
                raise socket.gaierror(f"{name} resolves to a blocked address")
        return infos


class GuardedAdapter(HTTPAdapter):
    """Checks every request's URL, then reads the body within the size and time bounds."""

    def __init__(self, allowed: frozenset[Origin], resolver: GuardedResolver):
        super().__init__(max_retries=0, resolver=resolver)
        self.allowed = allowed

    def send(self, request, stream=False, timeout=None, **kwargs):
        check_url(request.url, self.allowed)
        started = time.monotonic()
        # Read here even when the caller asked to stream: the bounds hold for every caller,
        # and the caller then iterates over the body already read.
        response = super().send(request, stream=True, timeout=timeout, **kwargs)
        _read_bounded(response, started)
        return response


def check_url(url: str, allowed: frozenset[Origin]) -> None:
    """Raises OutboundRefused for a URL of the wrong shape (scheme, credentials, localhost,
    obfuscated IPv4) or an allowed host:port asked for with another scheme."""
    try:
        target = parse_url(url)
    except UrlRejected as exc:
        logger.warning("outbound request refused: %s", exc.message)
        raise OutboundRefused(exc.message) from None
    if target.origin in allowed:
        return
    if any((o.host, o.port) == (target.host, target.port) for o in allowed):
        raise OutboundRefused(f"{target.scheme} is not the allowed scheme for this origin")


def _read_bounded(response: niquests.Response, started: float) -> None:
    body = bytearray()
    for chunk in response.iter_content(_CHUNK):
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            response.close()
            raise OutboundRefused(f"the response is larger than {MAX_RESPONSE_BYTES} bytes")
        if time.monotonic() - started > DEADLINE_SECONDS:
            response.close()
            raise OutboundRefused(f"the response took longer than {DEADLINE_SECONDS:g}s")
    response._content = bytes(body)
    response._content_consumed = True


def allowed_origins() -> frozenset[Origin]:
    """CONNECT_ALLOWED_ORIGINS, parsed (ValueError names a malformed entry)."""
    return parse_origins(settings.CONNECT_ALLOWED_ORIGINS)


def guarded_session(allowed: frozenset[Origin] | None = None) -> niquests.Session:
    """A session for end-user URLs; `allowed` defaults to CONNECT_ALLOWED_ORIGINS."""
    allowed = allowed_origins() if allowed is None else allowed
    resolver = GuardedResolver(allowed)
    session = niquests.Session(resolver=resolver)
    session.trust_env = False  # no proxy from the environment, no .netrc credentials
    session.max_redirects = MAX_REDIRECTS
    # Mounted adapters do not inherit the session's resolver: give ours to the adapter itself.
    adapter = GuardedAdapter(allowed, resolver)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
