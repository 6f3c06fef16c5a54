"""Connecting an end-user's calendar account: verify the credentials by discovery, then create or
relink the Profile and its Calendars in one transaction.

Discovery (network) always runs before the transaction, so a wrong password, an unreachable
server or an unparsable feed raises a ProviderError and leaves nothing behind.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from accounts.models import Account, Profile
from accounts.services import create_account
from calendars.models import Calendar, ChangeLogEntry
from calendars.services import record_changes
from sync.providers.base import (
    CalDAVCredentials,
    IcsCredentials,
    PermanentError,
    Provider,
    ProviderAccount,
    ProviderCalendar,
)
from sync.providers.registry import PROVIDERS


@dataclass(frozen=True)
class Discovery:
    provider_account: ProviderAccount
    calendars: list[ProviderCalendar]


def adapter_for(provider_key: str, credentials: dict) -> Provider:
    """Build the adapter for stored credentials. Raises PermanentError for an unknown key."""
    if provider_key == Profile.Provider.CALDAV:
        return PROVIDERS[provider_key](
            CalDAVCredentials(
                url=credentials["url"],
                username=credentials["username"],
                password=credentials["password"],
            )
        )
    if provider_key == Profile.Provider.ICS:
        return PROVIDERS[provider_key](IcsCredentials(url=credentials["url"]))
    raise PermanentError(f"no adapter builds from credentials for {provider_key!r}")


def discover(provider_key: str, credentials: dict) -> Discovery:
    """Who the credentials belong to and their calendars. Raises ProviderError (AuthExpired
    for rejected credentials, TemporaryError for an unreachable server, PermanentError…)."""
    provider = adapter_for(provider_key, credentials)
    account = provider.describe_account()
    return Discovery(provider_account=account, calendars=provider.list_calendars())


def connect_profile(
    *,
    account: Account,
    provider_key: str,
    credentials: dict,
    provider_account: ProviderAccount,
    calendars: Sequence[ProviderCalendar] | None = None,
) -> Profile:
    """Create the Profile, or relink the existing one (same account, provider and provider
    identity: status connected, credentials replaced), and upsert its Calendars.

    `calendars` defaults to a fresh list_calendars() through the adapter (before the
    transaction); pass [] when no adapter exists yet and the first sync will find them.
    Writes a calendar_created change-log entry per new calendar. Raises ProviderError from
    discovery, before anything is written.
    """
    if calendars is None:
        calendars = adapter_for(provider_key, credentials).list_calendars()
    with transaction.atomic():
        profile, created = Profile.objects.select_for_update().get_or_create(
            account=account,
            provider=provider_key,
            provider_account_id=provider_account.provider_account_id,
            defaults={
                "profile_name": provider_account.profile_name,
                "provider_service": provider_account.provider_service,
                "credentials": credentials,
            },
        )
        if not created:
            profile.status = Profile.Status.CONNECTED
            profile.disconnected_reason = ""
            profile.disconnected_at = None
            profile.credentials = credentials
            profile.profile_name = provider_account.profile_name
            profile.provider_service = provider_account.provider_service
            profile.save()
        _upsert_calendars(account, profile, calendars)
    return profile


def _upsert_calendars(
    account: Account, profile: Profile, calendars: Sequence[ProviderCalendar]
) -> None:
    existing = {c.provider_calendar_id: c for c in profile.calendars.all()}
    changes = []
    for found in calendars:
        fields = {
            "name": found.name[:255],
            "is_readonly": found.is_readonly,
            "is_primary": found.is_primary,
            "color": found.color[:16],
            "is_deleted": False,
        }
        calendar = existing.get(found.provider_calendar_id)
        if calendar is None:
            calendar = Calendar.objects.create(
                profile=profile, provider_calendar_id=found.provider_calendar_id, **fields
            )
            changes.append((ChangeLogEntry.Kind.CALENDAR_CREATED, calendar, None))
        elif any(getattr(calendar, name) != value for name, value in fields.items()):
            for name, value in fields.items():
                setattr(calendar, name, value)
            calendar.save()
            changes.append((ChangeLogEntry.Kind.CALENDAR_UPDATED, calendar, None))
    record_changes(account=account, changes=changes)


def connect_with_credentials(
    *,
    account: Account | None,
    provider_key: str,
    credentials: dict,
    relink: Profile | None = None,
    sign_in_existing: bool = True,
) -> Profile:
    """The connect form's service: verify `credentials` by discovery, then connect them.

    - `account` None (nobody signed in): the account that already owns this provider identity
      if `sign_in_existing` (CalDAV proves ownership with the password; never for ICS feeds,
      whose public URLs anyone may know), else a new account.
    - `relink`: the disconnected profile being repaired; the credentials must belong to the
      same provider identity (PermanentError otherwise), and no new account is created.

    Raises ProviderError (nothing is created then).
    """
    found = discover(provider_key, credentials)
    identity = found.provider_account.provider_account_id
    if relink is not None:
        if relink.provider != provider_key or relink.provider_account_id != identity:
            raise PermanentError("these credentials belong to another calendar account")
        account = relink.account
    with transaction.atomic():
        if account is None and sign_in_existing:
            owner = (
                Profile.objects.filter(provider=provider_key, provider_account_id=identity)
                .select_related("account")
                .order_by("-updated_at")
                .first()
            )
            account = owner.account if owner else None
        if account is None:
            email = found.provider_account.profile_name
            account = create_account(email=email if "@" in email else "")
        return connect_profile(
            account=account,
            provider_key=provider_key,
            credentials=credentials,
            provider_account=found.provider_account,
            calendars=found.calendars,
        )


def connect_oauth_profile(
    *,
    account: Account | None,
    provider_key: str,
    credentials: dict,
    provider_account: ProviderAccount,
) -> Profile:
    """Google / Microsoft after their OAuth dance (sync.pipeline): the provider already proved
    who the user is, so with nobody signed in the account owning this identity signs in (else a
    new account). A re-consent without a refresh token keeps the stored one.

    Calendars are left to the first sync (the Google/Graph adapters need an authorized HTTP
    session, which the sync engine builds); no network call happens here.
    """
    identity = provider_account.provider_account_id
    with transaction.atomic():
        existing = (
            Profile.objects.filter(provider=provider_key, provider_account_id=identity)
            .select_related("account")
            .order_by("-updated_at")
        )
        if account is None:
            owner = existing.first()
            account = owner.account if owner else None
        if account is None:
            email = provider_account.profile_name
            account = create_account(email=email if "@" in email else "")
        previous = existing.filter(account=account).first()
        if previous and not credentials.get("refresh_token") and previous.credentials:
            kept = previous.credentials.get("refresh_token", "")
            credentials = {**credentials, "refresh_token": kept}
        return connect_profile(
            account=account,
            provider_key=provider_key,
            credentials=credentials,
            provider_account=provider_account,
            calendars=[],
        )
