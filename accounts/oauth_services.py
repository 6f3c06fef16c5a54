"""Writes of the OAuth 2.0 provider side: integrator applications, client secrets, revocation.

Client secrets live in ApplicationSecret rows (several may be active during a rotation): a
SHA-256 checksum that authenticates them (at /oauth/token and as API keys; the secrets are 256
random bits, so a slow hash would add nothing), a password-hasher hash kept from before
(unused for authentication), and an encrypted copy because push notifications are signed with
every active secret (Cronofy's scheme). The plaintext leaves this module exactly once, as the
return value of the function that created it.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import (
    AccessToken,
    RefreshToken,
    clear_expired,
    get_application_model,
    set_token_value,
)
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import generate_token

from accounts import scopes as scope_names
from accounts.models import Account, ApplicationSecret, IssuedCode

Application = get_application_model()

# 32 random bytes = 256 bits (RFC 6749 §10.10 asks for at most 2^-128 guessing probability).
CLIENT_SECRET_BYTES = 32


def checksum(value: str) -> str:
    """SHA-256 hex of a secret: what we store and look up instead of the secret itself."""
    return hashlib.sha256(value.encode()).hexdigest()


def generate_client_secret() -> str:
    return secrets.token_urlsafe(CLIENT_SECRET_BYTES)


@dataclass(frozen=True)
class NewApplication:
    application: Application
    client_secret: str  # shown once, never stored in plaintext


def create_application(
    *,
    name: str,
    redirect_uris: list[str],
    client_type: str = Application.CLIENT_CONFIDENTIAL,
) -> NewApplication:
    """Register an integrator application (authorization-code grant) with one client secret.

    Redirect URIs are matched exactly at /oauth/authorize. Raises django ValidationError for
    a redirect URI with a fragment or a scheme outside ALLOWED_REDIRECT_URI_SCHEMES.
    """
    secret = generate_client_secret()
    application = Application(
        name=name,
        client_type=client_type,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(redirect_uris),
        # DOT hashes this on save; ApplicationSecret below is what we authenticate against.
        client_secret=secret,
        algorithm="",
    )
    application.full_clean()
    with transaction.atomic():
        application.save()
        _store_secret(application, secret)
    return NewApplication(application=application, client_secret=secret)


def _store_secret(application: Application, secret: str) -> ApplicationSecret:
    return ApplicationSecret.objects.create(
        application=application,
        secret_hash=make_password(secret, hasher=oauth2_settings.CLIENT_SECRET_HASHER),
        secret_checksum=checksum(secret),
        secret=secret,
    )


def add_client_secret(*, application: Application, secret: str | None = None) -> str:
    """Add an active client secret (first step of a rotation) and return its plaintext.

    `secret` is for the admin's add form, which shows the generated value before saving.
    """
    secret = secret or generate_client_secret()
    _store_secret(application, secret)
    return secret


def retire_client_secret(*, client_secret: ApplicationSecret) -> None:
    """Stop accepting (and signing with) one secret; the last active one cannot be retired."""
    with transaction.atomic():
        active = ApplicationSecret.objects.select_for_update().filter(
            application_id=client_secret.application_id, is_active=True
        )
        if [s.pk for s in active] == [client_secret.pk]:
            raise ValueError("an application needs at least one active client secret")
        ApplicationSecret.objects.filter(pk=client_secret.pk).update(
            is_active=False, retired_at=timezone.now()
        )


def active_client_secrets(application: Application) -> list[str]:
    """Plaintext of every active secret, newest first (to sign push notifications)."""
    rows = ApplicationSecret.objects.filter(application=application, is_active=True)
    return [row.secret for row in rows.order_by("-created_at", "-pk")]


def verify_client_secret(*, application: Application, secret: str) -> bool:
    """True if `secret` is one of the application's active client secrets.

    Applications created before ApplicationSecret existed (or by DOT directly) fall back to
    DOT's own hashed `client_secret` column.
    """
    if not secret:
        return False
    # Matching the SHA-256 checksum proves knowledge of the secret: it is 256 random bits, so
    # a slow password hash adds no protection, only ~0.3 s of CPU per token request, spent
    # inside the token endpoint's transaction (on SQLite that holds the one write lock).
    if ApplicationSecret.objects.filter(
        application=application, is_active=True, secret_checksum=checksum(secret)
    ).exists():
        return True
    if ApplicationSecret.objects.filter(application=application).exists():
        return False
    return bool(application.client_secret) and check_password(secret, application.client_secret)


def authenticate_client(*, client_id: str, client_secret: str) -> Application | None:
    """The application these body credentials belong to, or None."""
    if not client_id:
        return None
    application = Application.objects.filter(client_id=client_id).first()
    if application is None:
        return None
    if application.client_type == Application.CLIENT_PUBLIC and not client_secret:
        return application
    if not verify_client_secret(application=application, secret=client_secret):
        return None
    return application


def revoke_authorization(*, application: Application, token: str = "", sub: str = "") -> int:
    """Revoke a whole authorization of `application` (docs/api.md, "The OAuth flow"; RFC 7009).

    `token` may be an access or a refresh token: every token of its refresh-token family
    (all rotations of that authorization) dies. `sub` (an account id) revokes every
    authorization the account gave this application. Tokens of other applications and
    unknown values are ignored (the endpoint answers 200 anyway). Returns the number of
    families revoked.
    """
    families: set = set()
    orphan_access_ids: set[int] = set()
    if token:
        digest = checksum(token)
        access = AccessToken.objects.filter(token_checksum=digest, application=application).first()
        if access is not None:
            rt = RefreshToken.objects.filter(access_token=access).first()
            source = access.source_refresh_token
            family = (rt and rt.token_family) or (source and source.token_family)
            if family:
                families.add(family)
            else:
                orphan_access_ids.add(access.pk)
        for rt in RefreshToken.objects.filter(token_checksum=digest, application=application):
            if rt.token_family:
                families.add(rt.token_family)
            elif rt.access_token_id:
                orphan_access_ids.add(rt.access_token_id)
    elif sub:
        account = Account.objects.filter(public_id=sub).first()
        if account is not None:
            families.update(
                RefreshToken.objects.filter(user_id=account.user_id, application=application)
                .exclude(token_family=None)
                .values_list("token_family", flat=True)
                .distinct()
            )
            orphan_access_ids.update(
                AccessToken.objects.filter(
                    user_id=account.user_id, application=application
                ).values_list("pk", flat=True)
            )
    with transaction.atomic():
        for family in families:
            RefreshToken.revoke_family(family)
        if orphan_access_ids:
            AccessToken.objects.filter(pk__in=orphan_access_ids).delete()
    return len(families)


# A redeemed code is remembered this long so that a late replay still revokes what it minted.
# Codes live 60 seconds; a week covers any client retrying a stale redirect.
ISSUED_CODE_RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class PurgeReport:
    issued_codes: int


def purge_expired_authorizations(*, now: datetime | None = None) -> PurgeReport:
    """Delete what can no longer authorize anything: expired access tokens, grants, revoked and
    idle-expired refresh tokens (django-oauth-toolkit's clear_expired, which keeps what its
    refresh-token reuse detection still needs), and IssuedCode records past their retention.
    Idempotent; run daily by the `accounts.purge_expired_authorizations` schedule."""
    clear_expired()
    cutoff = (now or timezone.now()) - ISSUED_CODE_RETENTION
    deleted, _ = IssuedCode.objects.filter(issued_at__lt=cutoff).delete()
    return PurgeReport(issued_codes=deleted)


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str


def issue_tokens(*, account: Account, application: Application, scope: str) -> IssuedTokens:
    """An access and a refresh token for `account` at `application`, as if the end-user had
    just allowed `scope` on the consent page (a developer's first token, without copying a
    60-second code out of a browser). They behave like any other: the refresh token rotates
    at /oauth/token with the application's client secret, revocation works, and only their
    checksums are stored.

    Raises ValueError for an unknown scope name.
    """
    names = scope.split()
    unknown = sorted(set(names) - scope_names.KNOWN)
    if not names or unknown:
        raise ValueError(f"unknown scope: {' '.join(unknown) or '(none given)'}")
    access_raw, refresh_raw = generate_token(), generate_token()
    expires_in = oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS
    with transaction.atomic():
        access = AccessToken(
            user=account.user,
            application=application,
            scope=" ".join(names),
            expires=timezone.now() + timedelta(seconds=expires_in),
        )
        set_token_value(access, access_raw)
        access.save()
        # A family of its own, as DOT gives a fresh grant: replaying a rotated refresh token
        # then revokes every token of the family (REFRESH_TOKEN_REUSE_PROTECTION).
        refresh = RefreshToken(
            user=account.user,
            application=application,
            access_token=access,
            token_family=uuid.uuid4(),
        )
        set_token_value(refresh, refresh_raw)
        refresh.save()
    return IssuedTokens(access_raw, refresh_raw, expires_in, access.scope)
