"""social-auth pipeline for connecting Google and Microsoft calendars.

We keep no UserSocialAuth rows: their extra_data would hold the provider tokens in plaintext.
The provider tokens go, encrypted, into Profile.credentials, and the Profile's provider identity
(Google `sub`, Graph user `id`) is what signs the end-user in next time.
"""

import time
from dataclasses import dataclass

from social_core.exceptions import AuthPolicyError

from accounts import pending as pending_authorization
from accounts.models import Account, Profile
from sync.connect import connect_oauth_profile
from sync.providers.base import ProviderAccount

BACKEND_PROVIDERS = {
    "google-oauth2": Profile.Provider.GOOGLE,
    "microsoft-graph": Profile.Provider.MICROSOFT,
}
PERSONAL_MICROSOFT_DOMAINS = ("outlook.com", "hotmail.com", "live.com", "msn.com")
# The scope without which we cannot sync: the end-user may untick it on Google's consent page.
CALENDAR_SCOPES = {
    "google-oauth2": "https://www.googleapis.com/auth/calendar",
    "microsoft-graph": "Calendars.ReadWrite",
}


class MissingCalendarAccess(AuthPolicyError):
    """The end-user signed in but did not grant access to their calendars."""


def require_calendar_access(backend, response, *args, **kwargs):
    """Stop before anything is stored when the grant lacks the calendar scope (the granted
    scopes come back in the token response, space-separated)."""
    wanted = CALENDAR_SCOPES[backend.name].lower()
    granted = [scope.lower() for scope in str(response.get("scope") or "").split()]
    # Microsoft may name it fully (https://graph.microsoft.com/Calendars.ReadWrite).
    if granted and not any(s == wanted or s.endswith("/" + wanted) for s in granted):
        raise MissingCalendarAccess(backend)


@dataclass(frozen=True)
class ConnectedIdentity:
    """Stands in for UserSocialAuth where social-auth wants one (login bookkeeping only)."""

    provider: str
    uid: str

    def expiration_datetime(self):
        return None  # our session length does not follow the provider's token lifetime


def _provider_account(
    provider_key: str, uid: str, details: dict, response: dict
) -> ProviderAccount:
    email = details.get("email") or response.get("mail") or response.get("userPrincipalName") or ""
    if provider_key == Profile.Provider.GOOGLE:
        service = "gsuite" if response.get("hd") else "google"
    else:
        domain = email.rsplit("@", 1)[-1].lower()
        service = "outlook_com" if domain in PERSONAL_MICROSOFT_DOMAINS else "office365"
    return ProviderAccount(
        provider_account_id=str(uid), profile_name=email or str(uid), provider_service=service
    )


def _credentials(response: dict) -> dict:
    expires_in = response.get("expires_in")
    return {
        "access_token": response.get("access_token", ""),
        "refresh_token": response.get("refresh_token", ""),
        "token_type": response.get("token_type", "Bearer"),
        "scope": response.get("scope", ""),
        "expires_at": time.time() + int(expires_in) if expires_in else None,
    }


def connect_calendar_account(strategy, backend, uid, details, response, user=None, *args, **kwargs):
    """Create or link the Account and the Profile, store the tokens encrypted, and hand the
    Account's user back to social-auth, which signs the browser in."""
    provider_key = BACKEND_PROVIDERS[backend.name]
    request = strategy.request
    pending = pending_authorization.load(request)
    account = None
    if user is not None and user.is_authenticated and not (pending and pending.avoid_linking):
        account = Account.objects.filter(user=user).first()
    profile = connect_oauth_profile(
        account=account,
        provider_key=provider_key,
        credentials=_credentials(response),
        provider_account=_provider_account(provider_key, uid, details, response),
    )
    pending_authorization.mark_connected(request, profile_id=profile.public_id)
    return {
        "user": profile.account.user,
        "profile": profile,
        "social": ConnectedIdentity(provider=backend.name, uid=str(uid)),
    }
