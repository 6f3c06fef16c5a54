"""Encryption of secrets at rest with rotatable keys (MultiFernet over settings.ENCRYPTION_KEYS).

Each ciphertext is bound to a *purpose* (for fields: "app_label.Model.field") that is checked on
decryption, so a ciphertext copied into another column fails instead of leaking there.

Secrets that must also be found again (an ICS feed URL: the same feed connected twice is one
profile) are stored as a keyed hash too (`keyed_hash`). The hash keys are IDENTITY_HASH_KEYS, not
ENCRYPTION_KEYS: a hash cannot be re-encrypted, so rotating the encryption keys must leave it
alone.
"""

import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

_SEPARATOR = "\x00"


class DecryptionError(Exception):
    """The value was not encrypted by any configured key, or for another purpose."""


@lru_cache(maxsize=8)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def current_cipher() -> MultiFernet:
    return _cipher(tuple(settings.ENCRYPTION_KEYS))


def encrypt(plaintext: str, *, purpose: str) -> str:
    """Encrypt under the primary (first) key."""
    return current_cipher().encrypt(f"{purpose}{_SEPARATOR}{plaintext}".encode()).decode()


def decrypt(ciphertext: str, *, purpose: str) -> str:
    """Decrypt with any configured key. Raises DecryptionError."""
    try:
        raw = current_cipher().decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise DecryptionError("cannot decrypt with any configured key") from exc
    found_purpose, _, plaintext = raw.partition(_SEPARATOR)
    if found_purpose != purpose:
        raise DecryptionError("ciphertext belongs to another field")
    return plaintext


def is_encrypted_under_primary_key(ciphertext: str) -> bool:
    primary = Fernet(settings.ENCRYPTION_KEYS[0].encode())
    try:
        primary.decrypt(ciphertext.encode())
    except InvalidToken:
        return False
    return True


def reencrypt(ciphertext: str) -> str:
    """Re-encrypt under the primary key (keeps the plaintext and purpose)."""
    return current_cipher().rotate(ciphertext.encode()).decode()


KEYED_HASH_PREFIX = "hmac-sha256:"


def keyed_hash(value: str, *, purpose: str) -> str:
    """A lookup value for a secret, under the first key of IDENTITY_HASH_KEYS."""
    return _keyed_hash(settings.IDENTITY_HASH_KEYS[0], value, purpose)


def keyed_hashes(value: str, *, purpose: str) -> list[str]:
    """`value`'s hash under every key of IDENTITY_HASH_KEYS (first key first): a lookup matches
    rows hashed before the keys were rotated."""
    return [_keyed_hash(key, value, purpose) for key in settings.IDENTITY_HASH_KEYS]


def _keyed_hash(key: str, value: str, purpose: str) -> str:
    message = f"{purpose}{_SEPARATOR}{value}".encode()
    return KEYED_HASH_PREFIX + hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
