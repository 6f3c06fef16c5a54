"""Rate limits: fixed windows counted in Django's cache, failing open.

One helper, `seconds_until_allowed`, serves every limit we keep: the per-application API
limits (Cronofy: 50 requests/second and 500/minute by default), /oauth/token per client and
per address, and the hosted connect forms per address and per session (docs/configuration.md,
"Rate limits"). With several server processes the cache must be shared (set REDIS_URL); the
in-process default only limits each process on its own.

A limit protects the service; it is not worth an outage. When the cache cannot be reached the
request goes through unchecked, the failure is counted in this process (not in the cache that
just failed) for /health, logged at most once a minute, and the cache is left alone for
CACHE_RETRY_SECONDS so that a dead Redis costs one failed call, not one per request.
"""

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from accounts.oauth_services import Application, authenticate_client

logger = logging.getLogger(__name__)

# After a cache error, requests go unchecked this long before the cache is tried again.
CACHE_RETRY_SECONDS = 5.0
# At most one warning per this many seconds per process while the cache keeps failing.
LOG_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class Limit:
    """At most `count` requests per `period` seconds for one `subject` (a client_id, an
    address, a session) of one kind of limit (`name`). A count of 0 or less disables it."""

    name: str
    subject: str
    count: int
    period: int = 60

    def cache_key(self, window: int) -> str:
        # Hashed: subjects come from requests (any length, any character) or are secrets
        # (session keys), and cache keys are readable by whoever can read the cache.
        digest = hashlib.sha256(self.subject.encode("utf-8", "replace")).hexdigest()[:32]
        return f"ratelimit:{self.name}:{digest}:{self.period}:{window}"


class CacheHealth:
    """What the limiter's cache failures look like from this process (shown at /health)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.cache_errors = 0
            self.unchecked_requests = 0
            self.last_cache_error_at: datetime | None = None
            self._retry_at = 0.0
            self._logged_at: float | None = None

    def cache_usable(self) -> bool:
        return time.monotonic() >= self._retry_at

    def record_unchecked(self) -> None:
        with self._lock:
            self.unchecked_requests += 1

    def record_cache_error(self, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self.cache_errors += 1
            self.last_cache_error_at = datetime.now(UTC)
            self._retry_at = now + CACHE_RETRY_SECONDS
            should_log = self._logged_at is None or now - self._logged_at >= LOG_INTERVAL_SECONDS
            if should_log:
                self._logged_at = now
            errors = self.cache_errors
        if should_log:
            # The exception names the cache's address, never a request's token or subject.
            logger.warning(
                "rate limits unchecked: the cache failed (%s: %s); letting requests through "
                "and retrying in %.0f s (%d cache errors in this process so far)",
                type(exc).__name__,
                str(exc)[:200],
                CACHE_RETRY_SECONDS,
                errors,
            )

    def snapshot(self) -> dict:
        with self._lock:
            failing = time.monotonic() < self._retry_at
            return {
                "state": "failing_open" if failing else "ok",
                "cache_errors": self.cache_errors,
                "unchecked_requests": self.unchecked_requests,
                "last_cache_error_at": (
                    self.last_cache_error_at.isoformat().replace("+00:00", "Z")
                    if self.last_cache_error_at
                    else None
                ),
            }


cache_health = CacheHealth()


def seconds_until_allowed(limits: list[Limit]) -> float:
    """Count this request against each limit in turn; 0 if every one has room, otherwise the
    seconds until the first exceeded window ends (later limits are then not counted).

    Never raises for a cache failure: the request is then allowed (see the module docstring).
    """
    active = [limit for limit in limits if limit.count > 0]
    if not active:
        return 0
    if not cache_health.cache_usable():
        cache_health.record_unchecked()
        return 0
    now = time.time()
    try:
        for limit in active:
            window = int(now // limit.period)
            if _hit(limit.cache_key(window), limit.period) > limit.count:
                return max((window + 1) * limit.period - now, 0.001)
    except Exception as exc:  # any cache backend error: fail open, never a 500
        cache_health.record_cache_error(exc)
        cache_health.record_unchecked()
    return 0


def _hit(key: str, period: int) -> int:
    """Count one request in the window `key`; returns the count including it."""
    if cache.add(key, 1, timeout=period + 1):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: this request opens a new window
        cache.set(key, 1, timeout=period + 1)
        return 1


def client_address(request) -> str:
    """The caller's IP address: REMOTE_ADDR, or with TRUST_X_FORWARDED_FOR the last address in
    X-Forwarded-For (the one our own proxy appended; earlier ones are the client's say-so)."""
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR", "")


def retry_after_header(seconds: float) -> str:
    """Whole seconds for Retry-After, rounded up so that a retry at that time succeeds."""
    return str(max(int(-(-seconds // 1)), 1))


def oauth_token_wait(request, params: dict[str, str]) -> float:
    """Count a request to /oauth/token: against its address always, and against its client
    only once the client authenticates, so that nobody can spend an integrator's budget by
    naming its client_id. Returns the seconds to wait, 0 when allowed."""
    wait = seconds_until_allowed(
        [
            Limit(
                "oauth-token-address",
                client_address(request),
                settings.OAUTH_TOKEN_RATE_LIMIT_PER_ADDRESS,
            )
        ]
    )
    if wait or settings.OAUTH_TOKEN_RATE_LIMIT_PER_CLIENT <= 0:
        return wait
    client_id = params.get("client_id") or ""
    secret = params.get("client_secret") or ""
    application = authenticate_client(client_id=client_id, client_secret=secret)
    if application is None:
        return 0  # the token endpoint answers invalid_client
    # A public client authenticates with its client_id alone, which anyone may send: its
    # budget is kept per address too, or strangers could hold its users' refreshes at 429.
    key = client_id
    if application.client_type == Application.CLIENT_PUBLIC and not secret:
        key = f"{client_id}:{client_address(request)}"
    return seconds_until_allowed(
        [Limit("oauth-token-client", key, settings.OAUTH_TOKEN_RATE_LIMIT_PER_CLIENT)]
    )


def connect_form_wait(request) -> float:
    """Count a submission of a hosted connect form (each makes us fetch the URL it names)
    against its address and, once the browser has a session, against that session."""
    limits = [
        Limit("connect-address", client_address(request), settings.CONNECT_RATE_LIMIT_PER_ADDRESS)
    ]
    session_key = request.session.session_key
    if session_key:
        limits.append(
            Limit("connect-session", session_key, settings.CONNECT_RATE_LIMIT_PER_SESSION)
        )
    return seconds_until_allowed(limits)


class ApplicationRateThrottle(BaseThrottle):
    """429 with Retry-After once an application exceeds API_RATE_LIMIT_PER_SECOND or
    API_RATE_LIMIT_PER_MINUTE (a limit of 0 disables that window)."""

    def __init__(self):
        self._wait = 1.0

    def allow_request(self, request, view) -> bool:
        application = getattr(request.auth, "application", None)
        if application is None:
            return True
        client_id = application.client_id
        self._wait = seconds_until_allowed(
            [
                Limit("api", client_id, settings.API_RATE_LIMIT_PER_SECOND, period=1),
                Limit("api", client_id, settings.API_RATE_LIMIT_PER_MINUTE, period=60),
            ]
        )
        return self._wait == 0

    def wait(self) -> float:
        return self._wait
