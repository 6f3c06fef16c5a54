"""ICS feed adapter: a published iCalendar URL (webcal:// accepted), read-only."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

import icalendar
import niquests

from sync.providers.base import (
    AuthExpired,
    ChangeSet,
    IcsCredentials,
    NormalizedResource,
    PermanentError,
    Provider,
    ProviderAccount,
    ProviderCalendar,
    ProviderResource,
    RateLimited,
    ReadContext,
    TemporaryError,
    Window,
)
from sync.providers.icalendar import normalize as ical_normalize
from sync.providers.retry_after import parse_retry_after

MAX_FEED_BYTES = 10 * 1024 * 1024
TIMEOUT_SECONDS = 30
# A feed is one calendar, so its id needs to be unique within the profile only. The URL would
# do, but it is the credential and must not be stored outside the encrypted credentials.
FEED_CALENDAR_ID = "feed"


def normalize_feed_url(url: str) -> str:
    """webcal:// and webcals:// are https:// (RFC-less convention of every calendar app)."""
    url = url.strip()
    scheme, _, rest = url.partition("://")
    if scheme.lower() in ("webcal", "webcals"):
        return f"https://{rest}"
    return url


# Calendar-level properties copied into every per-UID resource (X-WR-TIMEZONE decides the zone
# of floating times in Google's and Outlook's published feeds).
_CALENDAR_PROPERTIES = ("VERSION", "PRODID", "CALSCALE", "X-WR-TIMEZONE", "X-WR-CALNAME")


class IcsProvider(Provider):
    key = "ics"
    identity_is_secret = True  # whoever knows the feed URL reads the calendar

    def __init__(self, credentials: IcsCredentials, session: niquests.Session | None = None):
        self.url = normalize_feed_url(credentials.url)
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise PermanentError("a feed URL must start with https://, http:// or webcal://")
        self.session = session or niquests.Session()

    def fetch(self, headers: dict[str, str] | None = None) -> niquests.Response:
        """GET the feed (size-capped). Raises AuthExpired, RateLimited, TemporaryError,
        PermanentError."""
        try:
            response = self.session.get(
                self.url, headers=headers or {}, timeout=TIMEOUT_SECONDS, stream=True
            )
            body = _read_capped(response, MAX_FEED_BYTES + 1)
        except niquests.RequestException as exc:
            raise TemporaryError(f"cannot fetch the feed ({type(exc).__name__})") from exc
        if len(body) > MAX_FEED_BYTES:
            raise PermanentError("the feed is larger than 10 MB")
        response._content = body
        if response.status_code in (401, 403):
            raise AuthExpired(f"the feed answered {response.status_code}")
        if response.status_code in (429, 503):
            raise RateLimited(retry_after=parse_retry_after(response.headers.get("Retry-After")))
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
        return [
            ProviderCalendar(provider_calendar_id=FEED_CALENDAR_ID, name=name, is_readonly=True)
        ]

    def fetch_changes(
        self,
        calendar_id: str,
        cursor: str | None,
        *,
        known_versions=None,
        known_payloads=None,
        window=None,
    ) -> ChangeSet:
        """GET the feed (the URL of the credentials; `calendar_id` is FEED_CALENDAR_ID) with
        If-None-Match/If-Modified-Since from `cursor`; 304 or an identical
        body (servers without validators) is `unchanged`. Otherwise the whole feed is returned
        as a full snapshot, one resource per UID (href = UID, etag = hash of its components):
        a UID absent from the feed is deleted. Raises AuthExpired (401/403, HTML page instead of
        a feed), RateLimited, TemporaryError, PermanentError (404/410, too big, not iCalendar).
        """
        previous = json.loads(cursor) if cursor else {}
        headers = {}
        if previous.get("etag"):
            headers["If-None-Match"] = previous["etag"]
        if previous.get("last_modified"):
            headers["If-Modified-Since"] = previous["last_modified"]
        response = self.fetch(headers)
        if response.status_code == 304 and cursor:
            return ChangeSet(cursor=cursor, unchanged=True)
        body = response.content
        digest = hashlib.sha256(body).hexdigest()
        new_cursor = json.dumps(
            {
                "etag": response.headers.get("ETag", ""),
                "last_modified": response.headers.get("Last-Modified", ""),
                "hash": digest,
            },
            sort_keys=True,
        )
        if cursor and previous.get("hash") == digest:
            return ChangeSet(cursor=new_cursor, unchanged=True)
        calendar = self.parse(body)
        return ChangeSet(cursor=new_cursor, resources=_split_by_uid(calendar), is_full=True)

    @classmethod
    def normalize(
        cls, resource: ProviderResource, *, window: Window, context: ReadContext
    ) -> NormalizedResource:
        return ical_normalize.normalize(resource, window=window, context=context)


def _read_capped(response: niquests.Response, limit: int) -> bytes:
    """At most `limit` bytes of the body (a session that already read it hands them over)."""
    body = bytearray()
    for chunk in response.iter_content(64 * 1024):
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


def _split_by_uid(calendar: icalendar.Calendar) -> list[ProviderResource]:
    """One small VCALENDAR per UID (master + overrides + every VTIMEZONE), so that an unchanged
    UID is recognised by its hash and skipped without parsing."""
    header = "".join(
        f"{name}:{calendar[name].to_ical().decode()}\r\n"
        for name in _CALENDAR_PROPERTIES
        if name in calendar
    )
    timezones = "".join(tz.to_ical().decode() for tz in calendar.walk("VTIMEZONE"))
    groups: dict[str, list[str]] = {}
    for event in calendar.walk("VEVENT"):
        uid = str(event.get("UID", "")).strip()
        if uid:
            groups.setdefault(uid, []).append(event.to_ical().decode())
    resources = []
    for uid, events in groups.items():
        body = "".join(events)
        ical = f"BEGIN:VCALENDAR\r\n{header}{timezones}{body}END:VCALENDAR\r\n"
        etag = hashlib.sha256((header + body).encode()).hexdigest()
        resources.append(ProviderResource(resource_id=uid, version=etag, payload=ical))
    return resources
