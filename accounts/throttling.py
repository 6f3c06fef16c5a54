"""Per-application API rate limits (Cronofy: 50 requests/second and 500/minute by default).

Fixed windows counted in Django's cache, keyed by the calling application's client_id (so every
end-user token of one integrator shares its budget). With several server processes the cache
must be shared (set REDIS_URL); the in-process default only limits each process on its own.
"""

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle


class ApplicationRateThrottle(BaseThrottle):
    """429 with Retry-After once an application exceeds API_RATE_LIMIT_PER_SECOND or
    API_RATE_LIMIT_PER_MINUTE (a limit of 0 disables that window)."""

    def __init__(self):
        self._wait = 1.0

    def allow_request(self, request, view) -> bool:
        application = getattr(request.auth, "application", None)
        if application is None:
            return True
        now = time.time()
        limits = (
            (1, settings.API_RATE_LIMIT_PER_SECOND),
            (60, settings.API_RATE_LIMIT_PER_MINUTE),
        )
        for period, limit in limits:
            if limit <= 0:
                continue
            window = int(now // period)
            if _hit(f"ratelimit:{application.client_id}:{period}:{window}", period) > limit:
                self._wait = max((window + 1) * period - now, 0.001)
                return False
        return True

    def wait(self) -> float:
        return self._wait


def _hit(key: str, period: int) -> int:
    """Count one request in the window `key`; returns the count including it."""
    if cache.add(key, 1, timeout=period + 1):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: this request opens a new window
        cache.set(key, 1, timeout=period + 1)
        return 1
