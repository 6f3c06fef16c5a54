"""Push signatures.

- Cronofy's `Cronofy-HMAC-SHA256`: what Cronofy's SDKs verify.
- Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`):
  the signature also covers the delivery id and the time of the attempt, so a receiver that
  checks the timestamp can refuse a replayed request. The key is the client secret's UTF-8
  bytes (the same key as Cronofy's scheme; there is no `whsec_` encoding).
"""

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


WEBHOOK_ID = "webhook-id"
WEBHOOK_TIMESTAMP = "webhook-timestamp"
WEBHOOK_SIGNATURE = "webhook-signature"


def standard_signature(delivery_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """`v1,` + Base64 HMAC-SHA256 over `{id}.{timestamp}.{body}` (Standard Webhooks)."""
    return "v1," + signature(f"{delivery_id}.{timestamp}.".encode() + body, secret)


def standard_headers(
    delivery_id: str, timestamp: int, body: bytes, secrets: Iterable[str]
) -> dict[str, str]:
    """The three Standard Webhooks headers; one space-separated signature per active secret."""
    return {
        WEBHOOK_ID: delivery_id,
        WEBHOOK_TIMESTAMP: str(timestamp),
        WEBHOOK_SIGNATURE: " ".join(
            standard_signature(delivery_id, timestamp, body, secret) for secret in secrets
        ),
    }
