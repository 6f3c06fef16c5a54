"""Encryption of secrets at rest with rotatable keys (MultiFernet over settings.ENCRYPTION_KEYS).

Each ciphertext is bound to a *purpose* (for fields: "app_label.Model.field") that is checked on
decryption, so a ciphertext copied into another column fails instead of leaking there.
"""

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
