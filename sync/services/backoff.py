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
    fraction) so that many failing calendars or writes drift apart. A RateLimited error with
    a Retry-After is the provider telling us when: we wait that long, later only by the
    jitter, and never sooner; our own doubling does not apply (Graph and Google both ask for
    it to be honoured exactly, and a 5-minute base would turn a 2-second ask into minutes).
    """
    if isinstance(error, base.RateLimited) and error.retry_after:
        # Bounded: an adapter's number is never trusted without limit.
        asked = float(error.retry_after) * random.uniform(1, 1 + jitter)
        return timedelta(seconds=min(asked, max(cap_seconds, 24 * 3600)))
    delay = min(base_seconds * 2 ** max(attempt - 1, 0), cap_seconds)
    delay *= random.uniform(1 - jitter, 1 + jitter)
    return timedelta(seconds=delay)
