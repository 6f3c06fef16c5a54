"""django-q2 entry points: take ids, call one service, idempotent."""

from accounts import erasure, oauth_services


def purge_expired_authorizations() -> int:
    """Daily: drop expired tokens, grants and old redeemed-code records."""
    return oauth_services.purge_expired_authorizations().issued_codes


def resume_erasures() -> int:
    """Every 5 minutes: finish the account erasures that can be finished."""
    return erasure.resume_erasures()
