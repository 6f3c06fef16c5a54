"""Provider identities as the database keeps them (Profile.provider_account_id).

Most identities are stored as the provider gives them: a Google or Microsoft user id, a CalDAV
principal URL (the password, not the URL, is the secret there). An ICS feed URL is different:
whoever knows it reads the calendar, so it is the credential itself. It lives only in the
profile's encrypted credentials, and the identity column holds its keyed hash
(accounts.crypto.keyed_hash): connecting or relinking the same feed still finds the same
profile, and the column tells nothing to whoever reads the database or a backup.
"""

from accounts import crypto
from sync.providers.registry import PROVIDERS

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


def _is_secret(provider_key: str) -> bool:
    provider = PROVIDERS.get(provider_key)
    return provider is not None and provider.identity_is_secret
