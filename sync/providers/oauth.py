"""Refreshing an OAuth 2.0 access token (RFC 6749 §6), as Google and Microsoft both do it.

Pure: the caller (sync.services.credentials) passes the client and the token endpoint, and
decides what each error means; nothing here sleeps, retries or stores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import requests

from sync.providers.base import AuthExpired, PermanentError, RateLimited, TemporaryError
from sync.providers.retry_after import parse_retry_after

TIMEOUT_SECONDS = 15
# What the token endpoint says when the grant itself is dead (expired, revoked, the user
# removed our access or changed their password): only then is the profile disconnected.
DEAD_GRANT_ERRORS = {"invalid_grant"}


@dataclass(frozen=True)
class OAuthClient:
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class OAuthTokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float | None  # unix time


def refresh_access_token(
    client: OAuthClient,
    refresh_token: str,
    *,
    session: requests.Session | None = None,
    now: float | None = None,
) -> OAuthTokens:
    """New tokens for a refresh token. A provider that rotates refresh tokens returns a new
    one (to be stored at once); one that does not leaves the old one valid.

    Raises AuthExpired (the grant is dead: invalid_grant), RateLimited, TemporaryError
    (network, 5xx) and PermanentError (our client is refused or the answer is unusable).
    """
    if not refresh_token:
        raise AuthExpired("no refresh token stored: the end-user must connect again")
    try:
        response = (session or requests).post(
            client.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": client.client_id,
                "client_secret": client.client_secret,
            },
            headers={"Accept": "application/json"},
            timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise TemporaryError(f"token endpoint unreachable ({type(exc).__name__})") from None
    if response.status_code == 429:
        raise RateLimited(
            "token endpoint rate limited",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if response.status_code >= 500:
        raise TemporaryError(f"token endpoint answered {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200:
        error = body.get("error", "") if isinstance(body, dict) else ""
        if error in DEAD_GRANT_ERRORS:
            raise AuthExpired(f"the provider refused the refresh token ({error})")
        raise PermanentError(f"token endpoint answered {response.status_code} {error}".strip())
    access_token = body.get("access_token") if isinstance(body, dict) else None
    if not access_token:
        raise TemporaryError("token endpoint answered without an access token")
    expires_in = body.get("expires_in")
    issued_at = time.time() if now is None else now
    return OAuthTokens(
        access_token=access_token,
        refresh_token=body.get("refresh_token") or refresh_token,
        expires_at=issued_at + float(expires_in) if expires_in else None,
    )


def revoke_token(revoke_url: str, token: str, *, session: requests.Session | None = None) -> None:
    """Revoke a grant at the provider's revocation endpoint (RFC 7009 as Google has it: revoking
    a refresh token ends the whole grant). Returns quietly when the provider answers 200, or
    400 for a token it no longer knows (already revoked or expired: nothing left to end).
    Raises TemporaryError (network, 5xx) and PermanentError (any other answer)."""
    try:
        response = (session or requests).post(
            revoke_url,
            data={"token": token},
            headers={"Accept": "application/json"},
            timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise TemporaryError(f"revocation endpoint unreachable ({type(exc).__name__})") from None
    if response.status_code == 200 or response.status_code == 400:
        return
    if response.status_code >= 500:
        raise TemporaryError(f"revocation endpoint answered {response.status_code}")
    raise PermanentError(f"revocation endpoint answered {response.status_code}")
