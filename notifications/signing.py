"""Cronofy's push signature: `Cronofy-HMAC-SHA256` (cronofy-api.md §5)."""

import base64
import hashlib
import hmac
from collections.abc import Iterable

HEADER = "Cronofy-HMAC-SHA256"


def signature(body: bytes, secret: str) -> str:
    """Standard Base64 (with padding) of HMAC-SHA256(key=secret, msg=the exact body bytes)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def header_value(body: bytes, secrets: Iterable[str]) -> str:
    """One signature per active client secret, joined by `,` without spaces."""
    return ",".join(signature(body, secret) for secret in secrets)
