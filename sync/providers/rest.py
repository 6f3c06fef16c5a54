"""What the JSON-over-HTTPS adapters (Google, Microsoft) share: one request with our error
hierarchy around it, and RFC 3339 timestamps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import requests

from sync.providers.base import ProviderError, TemporaryError

TIMEOUT_SECONDS = 30


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    provider: str,
    translate: Callable[[requests.Response, str], ProviderError],
    what: str,
    **kwargs,
) -> dict:
    """One request; the JSON answer ({} for 202 and 204). A transport failure or a body that
    is not JSON is a TemporaryError; any other status is what `translate` makes of it.
    Messages name `what` and the status, never a token."""
    try:
        response = session.request(method, url, timeout=TIMEOUT_SECONDS, **kwargs)
    except requests.RequestException as exc:
        raise TemporaryError(f"{what}: cannot reach {provider} ({type(exc).__name__})") from exc
    if response.status_code in (200, 201):
        try:
            return response.json()
        except ValueError as exc:
            raise TemporaryError(f"{what}: {provider} answered with no JSON") from exc
    if response.status_code in (202, 204):
        return {}
    raise translate(response, what)


def timestamp(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp (Z or an offset, any fraction) as aware UTC; None if absent or
    unreadable (a provider's created/updated stamps are informational)."""
    if not value:
        return None
    main, _, rest = value.replace("Z", "+00:00").partition(".")
    fraction, offset = rest, ""
    for sign in ("+", "-"):
        if sign in rest:
            fraction, _, tail = rest.partition(sign)
            offset = sign + tail
    try:
        moment = datetime.fromisoformat(main + (f".{fraction[:6]}" if fraction else "") + offset)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
