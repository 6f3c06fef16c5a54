"""The adapter interface, its dataclasses and its error hierarchy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


# --- Errors: the service decides what each one means (retry, backoff, disconnect, resync). ---
class ProviderError(Exception):
    """Base of every error an adapter raises. Messages never contain credentials."""


class AuthExpired(ProviderError):
    """Credentials rejected (401/403 on auth, invalid_grant): the profile must be relinked."""


class CursorInvalid(ProviderError):
    """The sync cursor was rejected (410, DAV:valid-sync-token): run a full resync."""


class RateLimited(ProviderError):
    """The provider asked us to slow down; `retry_after` seconds if it said so."""

    def __init__(self, message: str = "rate limited", *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class TemporaryError(ProviderError):
    """Network failure, timeout, 5xx: retry later with backoff."""


class PermanentError(ProviderError):
    """The request can never succeed as it is (404 calendar gone, 400, invalid data)."""


# --- Credentials ---
@dataclass(frozen=True)
class CalDAVCredentials:
    url: str
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class IcsCredentials:
    url: str = field(repr=False)  # secret feed URLs are credentials too


@dataclass(frozen=True)
class OAuthCredentials:
    access_token: str = field(repr=False)
    refresh_token: str = field(default="", repr=False)
    expires_at: float | None = None  # unix time


# --- Results ---
@dataclass(frozen=True)
class ProviderCalendar:
    provider_calendar_id: str
    name: str
    is_readonly: bool = False
    is_primary: bool = False
    color: str = ""
    # Cheap change indicators (CalDAV getctag / sync-token); empty when unknown.
    ctag: str = ""
    sync_token: str = ""


@dataclass(frozen=True)
class ProviderAccount:
    """Who the credentials belong to: a stable id (for relinking) and a display name."""

    provider_account_id: str
    profile_name: str
    provider_service: str = ""


class Provider(ABC):
    """One provider account, seen through its credentials."""

    key: str = ""

    @abstractmethod
    def describe_account(self) -> ProviderAccount:
        """Identity of the connected account. Raises AuthExpired, TemporaryError…"""

    @abstractmethod
    def list_calendars(self) -> list[ProviderCalendar]:
        """Every event calendar of the account. Raises AuthExpired, TemporaryError…"""
