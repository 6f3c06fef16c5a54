"""The sync app's part of an account's erasure (accounts/erasure.py runs it): push
subscriptions stopped, provider grants revoked where the provider allows it, and the sync
bookkeeping that holds provider payloads, and the sync activity log, deleted in batches.

Revocation is best effort: whatever happens is recorded on the AccountErasure row (an outcome
per profile, never a token or an address) and erasure goes on. A profile already recorded is
not tried again when an interrupted erasure is resumed.
"""

import logging

from django.conf import settings

from accounts.batches import delete_in_batches
from accounts.models import Account, AccountErasure, Profile
from sync.models import SyncActivity, SyncedResource
from sync.providers import base
from sync.providers.oauth import revoke_token
from sync.services.push import stop_subscriptions_now

log = logging.getLogger(__name__)

REVOKED = "revoked"
NOT_SUPPORTED = {
    # Microsoft's identity platform has no token revocation endpoint for a client: the grant
    # ends when the end-user removes the app (account.microsoft.com, or an admin in Entra).
    Profile.Provider.MICROSOFT: "not supported by Microsoft; the end-user removes the app",
    # A CalDAV password is the end-user's own (often an app password they created).
    Profile.Provider.CALDAV: "nothing to revoke; the end-user revokes the password",
    Profile.Provider.ICS: "nothing to revoke",
}


def erase_account_sync_data(*, account: Account, erasure: AccountErasure) -> None:
    """settings.ACCOUNT_ERASURE_STEPS entry, run first: the grants still work here."""
    done = {entry.get("profile") for entry in erasure.revocations}
    for profile in Profile.objects.filter(account=account).order_by("pk"):
        stop_subscriptions_now(profile)
        if profile.public_id not in done:
            _record(erasure, profile, revoke_provider_grant(profile))
    delete_in_batches(SyncedResource.objects.filter(calendar__profile__account=account))
    delete_in_batches(SyncActivity.objects.filter(profile__account=account))


def revoke_provider_grant(profile: Profile) -> str:
    """End our access at the provider, if it allows it; returns the outcome recorded."""
    if profile.provider != Profile.Provider.GOOGLE:
        return NOT_SUPPORTED.get(profile.provider, "nothing to revoke")
    credentials = profile.credentials or {}
    token = credentials.get("refresh_token") or credentials.get("access_token")
    if not token:
        return "no token stored"
    try:
        revoke_token(settings.SOCIAL_AUTH_GOOGLE_OAUTH2_REVOKE_TOKEN_URL, token)
    except base.ProviderError as exc:
        log.warning("grant of %s not revoked at Google: %s", profile.public_id, exc)
        return f"failed: {exc}"[:200]
    return REVOKED


def _record(erasure: AccountErasure, profile: Profile, outcome: str) -> None:
    erasure.revocations = [
        *erasure.revocations,
        {"profile": profile.public_id, "provider": profile.provider, "outcome": outcome},
    ]
    erasure.save(update_fields=["revocations"])
