"""The one backoff policy of the sync app: polls after a failed sync, retries of writes."""

import random
from datetime import timedelta

from sync.providers import base


def backoff_delay(
    *,
    attempt: int,
    base_seconds: float,
    cap_seconds: float,
    jitter: float,
    error: Exception | None = None,
) -> timedelta:
    """How long to wait after the `attempt`-th consecutive failure (1 = the first).

    `base_seconds` doubling per attempt, capped at `cap_seconds`, spread by ±`jitter` (a
    fraction) so that many failing calendars or writes drift apart; never shorter than a
    RateLimited error's Retry-After, which the provider asked for.
    """
    delay = min(base_seconds * 2 ** max(attempt - 1, 0), cap_seconds)
    delay *= random.uniform(1 - jitter, 1 + jitter)
    if isinstance(error, base.RateLimited) and error.retry_after:
        # A floor, bounded: an adapter's number is never trusted without limit.
        delay = max(delay, min(float(error.retry_after), max(cap_seconds, 24 * 3600)))
    return timedelta(seconds=delay)
