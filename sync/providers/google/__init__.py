"""Google Calendar (API v3): OAuth 2.0 credentials, sync tokens, push channels, writes with our
own event ids."""

from sync.providers.google.adapter import GoogleProvider

__all__ = ["GoogleProvider"]
