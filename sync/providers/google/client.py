"""HTTP to Google's Calendar API v3: one session, Google's error envelope mapped onto our error
hierarchy (https://developers.google.com/calendar/api/guides/errors)."""

from __future__ import annotations

from collections.abc import Iterator

import requests

from sync.providers import rest
from sync.providers.base import (
    AlreadyExists,
    AuthExpired,
    Conflict,
    CursorInvalid,
    NotFound,
    PermanentError,
    RateLimited,
    TemporaryError,
    WriteQuotaExceeded,
)
from sync.providers.retry_after import parse_retry_after

# Guard against a server that keeps sending page tokens.
MAX_PAGES = 10_000
# 403 reasons that mean "slow down", not "forbidden".
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
# Google's anti-abuse limit on writes per user ("Calendar usage limits exceeded"): it lifts
# after hours, not seconds, so retrying sooner only extends it.
QUOTA_RETRY_AFTER_SECONDS = 3 * 3600


class GoogleClient:
    def __init__(self, *, api_url: str, access_token: str, session: requests.Session | None):
        self.base = api_url.rstrip("/")
        self.session = session or requests.Session()
        self.headers = {"Authorization": f"Bearer {access_token}"}

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: dict | None = None,
        headers: dict | None = None,
        what: str,
    ) -> dict:
        """One request; the JSON answer ({} for 204). Raises our errors (never with the
        token in the message)."""
        return rest.send(
            self.session,
            method,
            self.base + path,
            provider="Google",
            translate=translate,
            what=what,
            params=params,
            json=json,
            headers={**self.headers, **(headers or {})},
        )

    def pages(self, path: str, params: dict, *, what: str) -> Iterator[dict]:
        """Every page of a listing, following nextPageToken (same parameters each time, as
        Google requires). Raises PermanentError when the pages never end."""
        page_token = None
        for _page in range(MAX_PAGES):
            query = {**params, "pageToken": page_token} if page_token else params
            page = self.call("GET", path, params=query, what=what)
            yield page
            page_token = page.get("nextPageToken")
            if not page_token:
                return
        raise PermanentError(f"{what}: Google kept sending page tokens")


def error_reason(response: requests.Response) -> tuple[str, str]:
    """(first reason, message) of Google's error envelope; ('', '') when there is none."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return str(error), ""
    errors = error.get("errors") or [{}]
    return str(errors[0].get("reason", "")), str(error.get("message", ""))[:200]


def translate(response: requests.Response, what: str) -> Exception:
    status = response.status_code
    reason, message = error_reason(response)
    text = f"{what}: Google answered {status} {reason}".rstrip()
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 401:
        return AuthExpired(text)
    if status == 403 and reason == "quotaExceeded":
        return WriteQuotaExceeded(
            text, retry_after=max(retry_after or 0, QUOTA_RETRY_AFTER_SECONDS)
        )
    if status == 429 or (status == 403 and reason in _RATE_REASONS):
        return RateLimited(text, retry_after=retry_after)
    if status == 410 and reason == "fullSyncRequired":
        return CursorInvalid(text)
    if status in (404, 410):
        return NotFound(text)
    if status == 409 and reason == "duplicate":
        return AlreadyExists(text, resource_id="")
    if status == 412:
        return Conflict(text)
    if status >= 500:
        return TemporaryError(text)
    return PermanentError(f"{text}: {message}" if message else text)
