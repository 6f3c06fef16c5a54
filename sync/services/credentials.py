"""Fresh credentials for adapters: the one place that refreshes OAuth access tokens and the only
code that decides a grant is dead.

Google and Microsoft access tokens live about an hour. Before an adapter is built for an OAuth
profile, a token that expires within REFRESH_MARGIN_SECONDS is refreshed; a provider's 401 forces
one refresh before it counts (call_with_fresh_credentials). One refresh runs at a time per
profile, across threads, workers and machines: a lease on the profile's sync state, claimed by a
conditional UPDATE, so that no database lock is held during the HTTP call (on SQLite that would
hold the one write lock). Whoever waits for the lease then reads the token the holder stored.
A rotated refresh token is stored at once (encrypted, as every credential). A transient failure
is retried a few times, then raised as TemporaryError (the caller backs off); only a definite
invalid_grant disconnects the profile, which tells integrators once (profile_disconnected).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Profile
from sync.models import ProfileSyncState
from sync.outbound import pooled_session
from sync.providers import base
from sync.providers.ics import normalize_feed_url
from sync.providers.oauth import OAuthClient, refresh_access_token
from sync.providers.registry import provider_class
from sync.services import activity
from sync.services.governor import provider_slot

log = logging.getLogger(__name__)

OAUTH_PROVIDERS = frozenset({Profile.Provider.GOOGLE, Profile.Provider.MICROSOFT})
REFRESH_MARGIN_SECONDS = 300
# Longer than the worst refresh (3 attempts of a 15 s request, plus the pauses), so that a slow
# holder keeps its lease; a waiter waits a little longer than a crashed holder's lease.
LEASE_SECONDS = 120
WAIT_SECONDS = 130
TRANSIENT_RETRY_DELAYS = (0.5, 1.5)  # seconds before the 2nd and 3rd attempt

T = TypeVar("T")


def is_oauth(profile: Profile) -> bool:
    return profile.provider in OAUTH_PROVIDERS


def oauth_client(provider_key: str) -> OAuthClient:
    """Our client at the provider's token endpoint (settings; the sandbox overrides the URL)."""
    if provider_key == Profile.Provider.GOOGLE:
        return OAuthClient(
            settings.GOOGLE_TOKEN_URL,
            settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY,
            settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET,
        )
    return OAuthClient(
        settings.MICROSOFT_TOKEN_URL,
        settings.SOCIAL_AUTH_MICROSOFT_GRAPH_KEY,
        settings.SOCIAL_AUTH_MICROSOFT_GRAPH_SECRET,
    )


def build_provider(provider_key: str, credentials: dict) -> base.Provider:
    """An adapter for a credentials dict. Raises PermanentError for unknown/missing data."""
    try:
        cls = provider_class(provider_key)
    except KeyError:
        raise base.PermanentError(f"no sync support for provider {provider_key!r}") from None
    credentials = credentials or {}
    try:
        if provider_key == Profile.Provider.CALDAV:
            creds = base.CalDAVCredentials(
                url=credentials["url"],
                username=credentials["username"],
                password=credentials["password"],
            )
        elif provider_key == Profile.Provider.ICS:
            creds = base.IcsCredentials(url=credentials["url"])
        else:
            creds = base.OAuthCredentials(
                access_token=credentials["access_token"],
                refresh_token=credentials.get("refresh_token", ""),
                expires_at=credentials.get("expires_at"),
            )
    except KeyError as exc:
        raise base.PermanentError(f"stored credentials lack {exc.args[0]!r}") from None
    return cls(creds, **adapter_options(provider_key, url=credentials.get("url", "")))


def adapter_options(provider_key: str, *, url: str = "") -> dict:
    """Where an adapter finds its provider (settings; tests and the demo point them at the
    provider sandbox). Adapters read no settings themselves. `url`: the end-user's server or
    feed, whose origin picks the process's shared session (connections kept alive between
    polls)."""
    if provider_key == Profile.Provider.GOOGLE:
        return {"api_url": settings.GOOGLE_APIS_URL}
    if provider_key == Profile.Provider.MICROSOFT:
        return {"graph_url": settings.MICROSOFT_GRAPH_URL}
    if provider_key in (Profile.Provider.CALDAV, Profile.Provider.ICS):
        # End-users chose these URLs: the session refuses internal addresses.
        return {"session": pooled_session(normalize_feed_url(url))}
    return {}


def provider_for(profile: Profile, *, force_refresh: bool = False) -> base.Provider:
    """An adapter for a stored profile, with fresh credentials (see fresh_credentials)."""
    provider_class(profile.provider)  # no adapter: fail before asking for a token
    return build_provider(profile.provider, fresh_credentials(profile, force_refresh=force_refresh))


def call_with_fresh_credentials(profile: Profile, call: Callable[[base.Provider], T]) -> T:
    """`call(adapter)`, holding one of the profile's request slots where its provider caps
    concurrent requests (sync.services.governor; raises ProfileBusy when none frees up).

    When an OAuth provider answers AuthExpired (a 401: the token may have been revoked early
    or the clock be off), refresh once and call again. A second AuthExpired is the caller's to
    handle; an AuthExpired from the refresh itself is never retried."""
    with provider_slot(profile):
        return _call_refreshing_once(profile, call)


def _call_refreshing_once(profile: Profile, call: Callable[[base.Provider], T]) -> T:
    credentials = fresh_credentials(profile)
    provider = build_provider(profile.provider, credentials)
    try:
        return call(provider)
    except base.AuthExpired:
        if not is_oauth(profile):
            raise
        log.info("provider refused the access token of %s: refreshing it", profile.public_id)
    rejected = credentials.get("access_token", "")
    retried = fresh_credentials(profile, force_refresh=True, rejected_access_token=rejected)
    return call(build_provider(profile.provider, retried))


def fresh_credentials(
    profile: Profile, *, force_refresh: bool = False, rejected_access_token: str = ""
) -> dict:
    """The profile's stored credentials; for OAuth, with an access token valid for at least
    REFRESH_MARGIN_SECONDS (refreshed first if needed, or with `force_refresh` unless the
    stored token is no longer `rejected_access_token`: someone refreshed it meanwhile).

    Raises AuthExpired (the grant is dead; the profile is disconnected, or already was),
    RateLimited, TemporaryError (try later; the profile stays connected), PermanentError.
    """
    if not is_oauth(profile):
        return profile.credentials or {}  # nothing refreshes them: the loaded row will do
    credentials, connected = _stored(profile)
    if not connected:
        raise base.AuthExpired("the profile is disconnected: the end-user must relink it")
    current = credentials.get("access_token", "")
    stale = force_refresh and current == (rejected_access_token or current)
    if not stale and not _expires_soon(credentials):
        return credentials
    return _refresh(profile, seen_access_token=current)


def parting_credentials(profile: Profile) -> dict:
    """Credentials for the last calls made for a profile that is going away, connected or not
    (an erasure stopping its push channels): the stored ones, with an expired access token
    refreshed and stored. A refused or failed refresh returns what is stored; nothing here
    disconnects anything."""
    credentials, _ = _stored(profile)
    if not is_oauth(profile) or not _expires_soon(credentials):
        return credentials
    try:
        tokens = _call_token_endpoint(profile, credentials.get("refresh_token", ""))
    except base.ProviderError as exc:
        log.info("last refresh for %s refused: %s", profile.public_id, type(exc).__name__)
        return credentials
    refreshed = {
        **credentials,
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at,
    }
    row = Profile.objects.get(pk=profile.pk)
    row.credentials = refreshed  # a bound, encrypted field: saved through its row
    row.save(update_fields=["credentials", "updated_at"])
    return refreshed


def _stored(profile: Profile) -> tuple[dict, bool]:
    """The credentials as committed now (another worker may have refreshed them), and whether
    the profile is connected."""
    row = Profile.objects.only("credentials", "status").get(pk=profile.pk)
    return row.credentials or {}, row.status == Profile.Status.CONNECTED


def _expires_soon(credentials: dict) -> bool:
    expires_at = credentials.get("expires_at")
    return not expires_at or float(expires_at) - time.time() < REFRESH_MARGIN_SECONDS


def _refresh(profile: Profile, *, seen_access_token: str) -> dict:
    token = uuid.uuid4().hex
    ProfileSyncState.objects.get_or_create(profile=profile)
    deadline = time.monotonic() + WAIT_SECONDS
    pause = 0.1
    while not _claim(profile, token):
        credentials, _ = _stored(profile)
        if credentials.get("access_token", "") != seen_access_token:
            return credentials  # the lease holder refreshed it
        if time.monotonic() > deadline:
            raise base.TemporaryError("the access token is being refreshed elsewhere")
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
    try:
        credentials, _ = _stored(profile)
        if credentials.get("access_token", "") != seen_access_token:
            return credentials  # refreshed between our read and our claim
        sent = credentials.get("refresh_token", "")
        try:
            tokens = _call_token_endpoint(profile, sent)
        except base.AuthExpired as exc:
            activity.record_token_refresh(profile_id=profile.pk, outcome="refused", error=str(exc))
            return _grant_refused(profile, credentials, exc)
        except base.ProviderError as exc:
            activity.record_token_refresh(profile_id=profile.pk, outcome="failed", error=str(exc))
            raise
        refreshed = {
            **credentials,
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at,
        }
        with transaction.atomic():
            locked = Profile.objects.select_for_update(no_key=True).get(pk=profile.pk)
            if _replaced(locked, credentials):
                # A relink stored new credentials while we asked: theirs win.
                return locked.credentials
            locked.credentials = refreshed
            locked.save(update_fields=["credentials", "updated_at"])
        log.info("access token of %s refreshed", profile.public_id)
        activity.record_token_refresh(profile_id=profile.pk, outcome="refreshed")
        return refreshed
    finally:
        ProfileSyncState.objects.filter(profile=profile, credentials_lock_token=token).update(
            credentials_locked_until=None, credentials_lock_token=""
        )


def _replaced(locked: Profile, read: dict) -> bool:
    """Whether the stored tokens are no longer those we read (a relink, which always brings a
    new access token even when the provider sent no new refresh token)."""
    stored = locked.credentials or {}
    return any(stored.get(k, "") != read.get(k, "") for k in ("access_token", "refresh_token"))


def _grant_refused(profile: Profile, read: dict, exc: base.AuthExpired) -> dict:
    """The token endpoint declared the refresh token dead: disconnect the profile, unless a
    relink replaced the tokens meanwhile (then the new credentials are returned)."""
    with transaction.atomic():
        locked = Profile.objects.select_for_update(no_key=True).get(pk=profile.pk)
        if _replaced(locked, read):
            return locked.credentials
        log.info("refresh token of %s refused: disconnecting it", profile.public_id)
        account_services.disconnect_profile(profile=locked, reason=str(exc)[:255])
    raise exc


def _claim(profile: Profile, token: str) -> bool:
    now = timezone.now()
    return bool(
        ProfileSyncState.objects.filter(profile=profile)
        .filter(Q(credentials_locked_until__isnull=True) | Q(credentials_locked_until__lt=now))
        .update(
            credentials_locked_until=now + timedelta(seconds=LEASE_SECONDS),
            credentials_lock_token=token,
        )
    )


def _call_token_endpoint(profile: Profile, refresh_token: str):
    client = oauth_client(profile.provider)
    for delay in (*TRANSIENT_RETRY_DELAYS, None):
        try:
            return refresh_access_token(client, refresh_token)
        except base.TemporaryError as exc:
            if delay is None:
                raise
            log.info("refreshing the token of %s failed (%s): retrying", profile.public_id, exc)
            time.sleep(delay)
    raise AssertionError("unreachable")
