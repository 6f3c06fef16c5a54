"""The HTTP session for end-users' URLs: ICS feeds and CalDAV servers, at connect and at every
poll (docs/operations.md, Outbound requests).

Every request the session sends, each redirect hop included (the session follows redirects by
calling the adapter again), goes through `GuardedAdapter.send`, which checks the URL's shape
with outbound.addresses, and through `GuardedResolver`, the only name resolution the connection
uses: it refuses internal addresses, so the socket goes to an address that was checked (a name
that resolves public-then-private, DNS rebinding, gets nowhere). An origin named in
CONNECT_ALLOWED_ORIGINS skips the address check, for self-hosted servers on private networks.

Bounds: at most MAX_REDIRECTS hops, each hop's body read up to MAX_RESPONSE_BYTES within
DEADLINE_SECONDS of its head (one slow read may overrun it by a read timeout; the wait for the
head is the caller's read timeout). No proxies, no .netrc.

`pooled_session(url)` hands out one such session per origin and policy per process, so that
polls of one server reuse its kept-alive connections instead of opening one per poll. A pooled
session stores no cookies: it serves every end-user of that origin.
"""

import ipaddress
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from http.cookiejar import DefaultCookiePolicy

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
# Origins whose session a process keeps; past that the least recently used one is dropped
# (its connections close once the last adapter using it is gone).
POOLED_ORIGINS = 256
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
        # Read here even when the caller asked to stream: the bounds hold for every caller,
        # and the caller then iterates over the body already read.
        response = super().send(request, stream=True, timeout=timeout, **kwargs)
        # The deadline runs from the response's head: the wait for it is the caller's read
        # timeout (a CalDAV server may think for minutes over a big calendar), the deadline
        # bounds a body that trickles in under that timeout.
        _read_bounded(response, time.monotonic())
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


class _SessionPool:
    """Guarded sessions by (origin, allowed origins); thread-safe (gunicorn's threads share it;
    niquests' sessions are themselves thread-safe)."""

    def __init__(self, size: int):
        self.size = size
        self._lock = threading.Lock()
        self._sessions: OrderedDict[tuple, niquests.Session] = OrderedDict()

    def get(self, origin: Origin, allowed: frozenset[Origin]) -> niquests.Session:
        key = (origin, allowed)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = _cookieless(guarded_session(allowed))
                while len(self._sessions) > self.size:
                    self._sessions.popitem(last=False)
            self._sessions.move_to_end(key)
            return session

    def clear(self) -> None:
        # No close(): another thread may be in the middle of a request on one of them.
        with self._lock:
            self._sessions.clear()


def _cookieless(session: niquests.Session) -> niquests.Session:
    """A session shared by every end-user of an origin must not carry one user's cookies (a
    server's login session) into another's requests."""
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


_POOL = _SessionPool(POOLED_ORIGINS)
# A forked worker (django-q) must not share its parent's sockets.
os.register_at_fork(after_in_child=_POOL.clear)


def pooled_session(url: str) -> niquests.Session:
    """The process's guarded session for the origin of `url` (CONNECT_ALLOWED_ORIGINS as the
    policy), shared by every adapter of that origin in this process. A URL that does not parse
    gets a session of its own, which refuses it at the first request as guarded_session does."""
    allowed = allowed_origins()
    try:
        origin = parse_url(url).origin
    except UrlRejected:
        return guarded_session(allowed)
    return _POOL.get(origin, allowed)
