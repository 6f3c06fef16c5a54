"""Provider identities as the database keeps them (Profile.provider_account_id).

Most identities are stored as the provider gives them: a Google or Microsoft user id, a CalDAV
principal URL (the password, not the URL, is the secret there). An ICS feed URL is different:
whoever knows it reads the calendar, so it is the credential itself. It lives only in the
profile's encrypted credentials, and the identity column holds its keyed hash
(accounts.crypto.keyed_hash): connecting or relinking the same feed still finds the same
profile, and the column tells nothing to whoever reads the database or a backup.
"""

import logging
from dataclasses import dataclass

from accounts import crypto
from accounts.models import Profile
from sync.providers.base import ProviderError
from sync.providers.registry import PROVIDERS
from sync.services.credentials import build_provider

log = logging.getLogger(__name__)

HASH_PURPOSE = "accounts.Profile.provider_account_id"


def stored_identity(provider_key: str, provider_account_id: str) -> str:
    """What Profile.provider_account_id holds for this identity (new and relinked rows)."""
    if not _is_secret(provider_key):
        return provider_account_id
    return crypto.keyed_hash(provider_account_id, purpose=HASH_PURPOSE)


def identity_lookup(provider_key: str, provider_account_id: str) -> list[str]:
    """Every stored form of this identity, for `provider_account_id__in`: a secret identity
    hashed under any key of IDENTITY_HASH_KEYS (rows written before a rotation still match)."""
    if not _is_secret(provider_key):
        return [provider_account_id]
    return crypto.keyed_hashes(provider_account_id, purpose=HASH_PURPOSE)


@dataclass
class RehashReport:
    scanned: int = 0
    rehashed: int = 0
    unreadable: int = 0  # no usable credentials to recompute the identity from


def rehash_secret_identities(*, batch_size: int = 500) -> RehashReport:
    """Re-hash every secret identity under the first key of IDENTITY_HASH_KEYS, so that the
    other keys can be dropped. The identity is recomputed from the encrypted credentials (the
    adapter's describe_account, which for an ICS feed needs no network). Batched by primary
    key and idempotent: run it again after an interruption."""
    report = RehashReport()
    secret = [key for key in PROVIDERS if _is_secret(key)]
    last_pk = 0
    while True:
        batch = list(
            Profile.objects.filter(provider__in=secret, pk__gt=last_pk).order_by("pk")[:batch_size]
        )
        if not batch:
            return report
        for profile in batch:
            report.scanned += 1
            outcome = _rehash(profile)
            report.rehashed += outcome == "rehashed"
            report.unreadable += outcome == "unreadable"
        last_pk = batch[-1].pk


def _rehash(profile: Profile) -> str:
    try:
        adapter = build_provider(profile.provider, profile.credentials)
        identity = adapter.describe_account().provider_account_id
    except (ProviderError, crypto.DecryptionError):
        log.warning("profile %s: no credentials to re-hash its identity from", profile.public_id)
        return "unreadable"
    stored = stored_identity(profile.provider, identity)
    if stored == profile.provider_account_id:
        return "current"
    if profile.provider_account_id not in identity_lookup(profile.provider, identity):
        log.warning("profile %s: identity does not match its credentials", profile.public_id)
        return "unreadable"
    # Conditional: a relink that re-hashed the row meanwhile wins.
    Profile.objects.filter(pk=profile.pk, provider_account_id=profile.provider_account_id).update(
        provider_account_id=stored
    )
    return "rehashed"


def _is_secret(provider_key: str) -> bool:
    provider = PROVIDERS.get(provider_key)
    return provider is not None and provider.identity_is_secret
