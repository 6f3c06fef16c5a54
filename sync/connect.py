"""Connecting an end-user's calendar account from the hosted pages: verify the credentials by
discovery, pick the account to sign in, then store the connection (sync.services).

Discovery (network) always runs before the transaction, so a wrong password, an unreachable
server or an unparsable feed raises a ProviderError and leaves nothing behind.
"""

from dataclasses import dataclass

from django.db import transaction

from accounts.models import Account, Profile
from accounts.services import create_account
from sync.providers.base import PermanentError, ProviderAccount, ProviderCalendar
from sync.services import build_provider, store_connected_profile
from sync.services.identity import identity_lookup


class IdentityMismatch(PermanentError):
    """A relink's credentials work but belong to another provider identity."""


@dataclass(frozen=True)
class Discovery:
    provider_account: ProviderAccount
    calendars: list[ProviderCalendar]


def discover(provider_key: str, credentials: dict) -> Discovery:
    """Who the credentials belong to and their calendars. Raises ProviderError (AuthExpired
    for rejected credentials, TemporaryError for an unreachable server, PermanentError…)."""
    provider = build_provider(provider_key, credentials)
    account = provider.describe_account()
    return Discovery(provider_account=account, calendars=provider.list_calendars())


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
      same provider identity (IdentityMismatch otherwise), and no new account is created.

    Raises ProviderError (nothing is created then).
    """
    found = discover(provider_key, credentials)
    identity = identity_lookup(provider_key, found.provider_account.provider_account_id)
    if relink is not None:
        if relink.provider != provider_key or relink.provider_account_id not in identity:
            raise IdentityMismatch("These details belong to another calendar account.")
        account = relink.account
    with transaction.atomic():
        if account is None and sign_in_existing:
            owner = (
                Profile.objects.filter(provider=provider_key, provider_account_id__in=identity)
                .select_related("account")
                .order_by("-updated_at")
                .first()
            )
            account = owner.account if owner else None
        if account is None:
            email = found.provider_account.profile_name
            account = create_account(email=email if "@" in email else "")
        return store_connected_profile(
            account=account,
            provider_key=provider_key,
            credentials=credentials,
            provider_account=found.provider_account,
            provider_calendars=found.calendars,
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
    identity = identity_lookup(provider_key, provider_account.provider_account_id)
    with transaction.atomic():
        existing = (
            Profile.objects.filter(provider=provider_key, provider_account_id__in=identity)
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
        return store_connected_profile(
            account=account,
            provider_key=provider_key,
            credentials=credentials,
            provider_account=provider_account,
            provider_calendars=None,
        )


def relink_prefill(profile: Profile) -> dict:
    """What the relink form may show before anyone has proved who they are: anybody who knows
    the profile id can open the page. A CalDAV server and user name help the end-user and
    grant nothing without the password; an ICS feed URL is itself the credential, so it is
    never shown."""
    if profile.provider != Profile.Provider.CALDAV:
        return {}
    credentials = profile.credentials or {}
    return {"server_url": credentials.get("url"), "username": credentials.get("username")}
