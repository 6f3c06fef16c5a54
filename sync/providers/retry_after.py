"""The one Retry-After parser of the adapters (RFC 9110 §10.2.3): seconds or an HTTP date."""

import time
from email.utils import parsedate_to_datetime

# A provider that asks for more than this is not taken at its word (nor is a hostile one).
MAX_SECONDS = 24 * 3600


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait, between 0 and MAX_SECONDS; None when absent or unreadable (the value
    is delay-seconds, digits only, or an HTTP date)."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(min(int(value), MAX_SECONDS))
    try:
        moment = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None
    seconds = moment - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_SECONDS)
