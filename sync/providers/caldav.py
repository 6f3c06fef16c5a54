"""CalDAV adapter (RFC 4791 / 6578) on the `caldav` library: iCloud, Fastmail, Nextcloud…"""

from __future__ import annotations

from urllib.parse import urlsplit

import caldav
from caldav.elements import dav, ical
from caldav.lib import error as caldav_error

from sync.providers.base import (
    AuthExpired,
    CalDAVCredentials,
    PermanentError,
    Provider,
    ProviderAccount,
    ProviderCalendar,
    ProviderError,
    TemporaryError,
)

ICLOUD_URL = "https://caldav.icloud.com/"
TIMEOUT_SECONDS = 30


def _translate(exc: Exception) -> ProviderError:
    """Map caldav/HTTP failures onto our error hierarchy (credentials never in messages)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, caldav_error.AuthorizationError):
        return AuthExpired("the CalDAV server rejected the username or password")
    if isinstance(exc, caldav_error.NotFoundError):
        return PermanentError("the CalDAV server has no calendar home at that address")
    if isinstance(exc, caldav_error.DAVError):
        return TemporaryError(f"CalDAV error: {type(exc).__name__}")
    if isinstance(exc, OSError | ValueError):
        # niquests' ConnectionError/Timeout derive from OSError; bad URLs raise ValueError.
        return TemporaryError(f"cannot reach the CalDAV server ({type(exc).__name__})")
    return TemporaryError(f"CalDAV failure ({type(exc).__name__})")


class CalDAVProvider(Provider):
    key = "caldav"

    def __init__(self, credentials: CalDAVCredentials, session=None):
        self.credentials = credentials
        self._client = caldav.DAVClient(
            url=credentials.url,
            username=credentials.username,
            password=credentials.password,
            timeout=TIMEOUT_SECONDS,
        )
        self._principal = None

    def principal(self):
        """Discover the principal (well-known redirects, current-user-principal)."""
        if self._principal is None:
            try:
                self._principal = self._client.principal()
            except Exception as exc:  # noqa: BLE001 - translated into our hierarchy
                raise _translate(exc) from exc
        return self._principal

    def describe_account(self) -> ProviderAccount:
        principal = self.principal()
        host = urlsplit(str(principal.url)).hostname or ""
        service = "icloud" if host.endswith("icloud.com") else "caldav"
        return ProviderAccount(
            provider_account_id=str(principal.url),
            profile_name=f"{self.credentials.username}@{host}"
            if "@" not in self.credentials.username
            else self.credentials.username,
            provider_service=service,
        )

    def list_calendars(self) -> list[ProviderCalendar]:
        try:
            calendars = self.principal().calendars()
            return [self._describe_calendar(cal) for cal in calendars if _holds_events(cal)]
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated into our hierarchy
            raise _translate(exc) from exc

    def _describe_calendar(self, calendar) -> ProviderCalendar:
        props = calendar.get_properties([dav.DisplayName(), ical.CalendarColor()])
        url = str(calendar.url)
        name = props.get(dav.DisplayName.tag) or url.rstrip("/").rsplit("/", 1)[-1]
        return ProviderCalendar(
            provider_calendar_id=url,
            name=name,
            color=(props.get(ical.CalendarColor.tag) or "")[:7],
        )


def _holds_events(calendar) -> bool:
    """Skip task-only / journal-only collections (supported-calendar-component-set)."""
    try:
        components = calendar.get_supported_components()
    except Exception:  # noqa: BLE001 - servers without the property hold events
        return True
    return not components or "VEVENT" in components
