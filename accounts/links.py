"""Absolute links we hand to integrators (next_page, relink URLs)."""

from django.conf import settings
from django.urls import NoReverseMatch, reverse


def public_base_url(request) -> str:
    """settings.PUBLIC_BASE_URL, else the scheme and host the request came to."""
    return settings.PUBLIC_BASE_URL or f"{request.scheme}://{request.get_host()}"


def absolute_url(request, path: str) -> str:
    return f"{public_base_url(request)}{path}"


# The hosted page where an end-user reconnects a profile is served by the sync app under this
# URL name (accounts never imports sync; a URL name is the contract).
RELINK_URL_NAME = "sync-relink"


def profile_relink_url(request, profile_public_id: str) -> str | None:
    try:
        path = reverse(RELINK_URL_NAME, kwargs={"profile_id": profile_public_id})
    except NoReverseMatch:
        return None
    return absolute_url(request, path)
