"""ICS feed adapter: a published iCalendar URL (webcal:// accepted), read-only."""

from __future__ import annotations

from urllib.parse import urlsplit

import icalendar
import requests

from sync.providers.base import (
    AuthExpired,
    IcsCredentials,
    PermanentError,
    Provider,
    ProviderAccount,
    ProviderCalendar,
    RateLimited,
    TemporaryError,
)

MAX_FEED_BYTES = 10 * 1024 * 1024
TIMEOUT_SECONDS = 30


def normalize_feed_url(url: str) -> str:
    """webcal:// and webcals:// are https:// (RFC-less convention of every calendar app)."""
    url = url.strip()
    scheme, _, rest = url.partition("://")
    if scheme.lower() in ("webcal", "webcals"):
        return f"https://{rest}"
    return url


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


class IcsProvider(Provider):
    key = "ics"

    def __init__(self, credentials: IcsCredentials, session: requests.Session | None = None):
        self.url = normalize_feed_url(credentials.url)
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise PermanentError("a feed URL must start with https://, http:// or webcal://")
        self.session = session or requests.Session()

    def fetch(self, headers: dict[str, str] | None = None) -> requests.Response:
        """GET the feed (size-capped). Raises AuthExpired, RateLimited, TemporaryError,
        PermanentError."""
        try:
            response = self.session.get(
                self.url, headers=headers or {}, timeout=TIMEOUT_SECONDS, stream=True
            )
            body = response.raw.read(MAX_FEED_BYTES + 1, decode_content=True)
        except requests.RequestException as exc:
            raise TemporaryError(f"cannot fetch the feed ({type(exc).__name__})") from exc
        if len(body) > MAX_FEED_BYTES:
            raise PermanentError("the feed is larger than 10 MB")
        response._content = body
        if response.status_code in (401, 403):
            raise AuthExpired(f"the feed answered {response.status_code}")
        if response.status_code in (429, 503):
            raise RateLimited(retry_after=_retry_after(response))
        if response.status_code == 404 or response.status_code == 410:
            raise PermanentError(f"the feed answered {response.status_code}")
        if response.status_code >= 500:
            raise TemporaryError(f"the feed answered {response.status_code}")
        if response.status_code not in (200, 304):
            raise PermanentError(f"the feed answered {response.status_code}")
        return response

    def parse(self, body: bytes) -> icalendar.Calendar:
        """Parse a feed body; an HTML page (a login page served as 200) is refused."""
        head = body.lstrip()[:200].lower()
        if head.startswith((b"<!doctype", b"<html")) or b"begin:vcalendar" not in head:
            raise AuthExpired("the feed URL returned a web page, not an iCalendar feed")
        try:
            return icalendar.Calendar.from_ical(body)
        except ValueError as exc:
            raise PermanentError("the feed is not valid iCalendar") from exc

    def describe_account(self) -> ProviderAccount:
        host = urlsplit(self.url).hostname or "feed"
        return ProviderAccount(
            provider_account_id=self.url, profile_name=host, provider_service="ics"
        )

    def list_calendars(self) -> list[ProviderCalendar]:
        calendar = self.parse(self.fetch().content)
        name = str(calendar.get("X-WR-CALNAME") or urlsplit(self.url).hostname or "Feed")
        return [ProviderCalendar(provider_calendar_id=self.url, name=name, is_readonly=True)]
