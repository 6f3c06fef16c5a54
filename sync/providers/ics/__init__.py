"""ICS feeds: a published iCalendar URL (webcal:// accepted), read-only."""

from sync.providers.ics.adapter import IcsProvider, normalize_feed_url

__all__ = ["IcsProvider", "normalize_feed_url"]
