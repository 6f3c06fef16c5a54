"""HTTP to Microsoft Graph v1.0: one session, the headers every call needs, Graph's error
envelope mapped onto our error hierarchy
(https://learn.microsoft.com/graph/errors, https://learn.microsoft.com/graph/throttling)."""

from __future__ import annotations

from collections.abc import Iterator

import requests

from sync.providers import rest
from sync.providers.base import (
    AuthExpired,
    Conflict,
    CursorInvalid,
    NotFound,
    PermanentError,
    RateLimited,
    TemporaryError,
)
from sync.providers.retry_after import parse_retry_after

# Guard against a server that keeps sending next links.
MAX_PAGES = 10_000
# On every call: times in UTC (the original zone is still in originalStartTimeZone), and ids
# that do not change when an item moves between folders (the default ids do).
PREFER = 'outlook.timezone="UTC", IdType="ImmutableId"'
PAGE_SIZE = 500


class GraphClient:
    def __init__(self, *, graph_url: str, access_token: str, session: requests.Session | None):
        self.base = graph_url.rstrip("/") + "/v1.0"
        self.session = session or requests.Session()
        self.headers = {"Authorization": f"Bearer {access_token}", "Prefer": PREFER}

    def call(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict | None = None,
        json: dict | None = None,
        headers: dict | None = None,
        what: str,
    ) -> dict:
        """One request (a path under /v1.0, or a next/delta link verbatim); the JSON answer
        ({} for 202/204). Raises our errors, never with the token in the message."""
        url = path_or_url if path_or_url.startswith("http") else self.base + path_or_url
        return rest.send(
            self.session,
            method,
            url,
            provider="Microsoft",
            translate=translate,
            what=what,
            params=params,
            json=json,
            headers={**self.headers, **(headers or {})},
        )

    def pages(
        self, path: str, params: dict | None, *, what: str, page_size: int = PAGE_SIZE
    ) -> Iterator[dict]:
        """Every page of a listing, following @odata.nextLink verbatim."""
        headers = {"Prefer": f"{PREFER}, odata.maxpagesize={page_size}"}
        link, query = path, params
        for _page in range(MAX_PAGES):
            page = self.call("GET", link, params=query, headers=headers, what=what)
            yield page
            link, query = page.get("@odata.nextLink"), None
            if not link:
                return
        raise PermanentError(f"{what}: Microsoft kept sending next links")


def error_code(response: requests.Response) -> str:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return ""
    return str(error.get("code", "")) if isinstance(error, dict) else str(error)


def translate(response: requests.Response, what: str) -> Exception:
    status, code = response.status_code, error_code(response)
    text = f"{what}: Microsoft answered {status} {code}".rstrip()
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 401:
        return AuthExpired(text)
    if status == 429 or (status == 503 and retry_after):
        return RateLimited(text, retry_after=retry_after)
    if status == 410:
        # Gone: a delta or next link whose sync state Graph dropped (SyncStateNotFound,
        # resyncRequired, and spellings we have not met): start a new round.
        return CursorInvalid(text)
    if status == 404:
        return NotFound(text)
    if status == 412:
        return Conflict(text)
    if status >= 500:
        return TemporaryError(text)
    return PermanentError(text)
