"""django-q2 entry points: take ids, call one service, idempotent."""

from accounts import oauth_services


def purge_expired_authorizations() -> int:
    """Daily: drop expired tokens, grants and old redeemed-code records."""
    return oauth_services.purge_expired_authorizations().issued_codes
