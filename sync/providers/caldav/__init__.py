"""CalDAV (RFC 4791 / 6578): iCloud, Fastmail, Nextcloud, Radicale and any standard server."""

from sync.providers.caldav.adapter import ICLOUD_URL, CalDAVProvider

__all__ = ["ICLOUD_URL", "CalDAVProvider"]
