"""Provider keys -> adapter classes."""

from sync.providers.base import Provider
from sync.providers.caldav import CalDAVProvider
from sync.providers.google import GoogleProvider
from sync.providers.ics import IcsProvider
from sync.providers.microsoft import MicrosoftProvider

PROVIDERS: dict[str, type[Provider]] = {
    CalDAVProvider.key: CalDAVProvider,
    GoogleProvider.key: GoogleProvider,
    IcsProvider.key: IcsProvider,
    MicrosoftProvider.key: MicrosoftProvider,
}


def provider_class(key: str) -> type[Provider]:
    """The adapter class for a provider key; KeyError for an unknown key."""
    return PROVIDERS[key]
