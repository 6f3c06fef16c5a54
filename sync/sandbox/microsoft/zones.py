"""Windows time zone names (what Outlook stores and Graph echoes in originalStartTimeZone)
and their IANA equivalents (CLDR's windowsZones.xml, territory "001").

Graph accepts either form in a ``dateTimeTimeZone.timeZone`` and in ``Prefer:
outlook.timezone``; the sandbox resolves both, and writes the Windows name back where Graph
does.
"""

from __future__ import annotations

from datetime import UTC, tzinfo

from sync.sandbox.google.util import get_zone

WINDOWS_TO_IANA = {
    "Dateline Standard Time": "Etc/GMT+12",
    "UTC-11": "Etc/GMT+11",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time": "America/Denver",
    "Central America Standard Time": "America/Guatemala",
    "Central Standard Time": "America/Chicago",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Canada Central Standard Time": "America/Regina",
    "SA Pacific Standard Time": "America/Bogota",
    "Eastern Standard Time": "America/New_York",
    "US Eastern Standard Time": "America/Indiana/Indianapolis",
    "Atlantic Standard Time": "America/Halifax",
    "SA Western Standard Time": "America/La_Paz",
    "Newfoundland Standard Time": "America/St_Johns",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Argentina/Buenos_Aires",
    "Greenland Standard Time": "America/Nuuk",
    "UTC-02": "Etc/GMT+2",
    "Azores Standard Time": "Atlantic/Azores",
    "UTC": "Etc/UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "GTB Standard Time": "Europe/Bucharest",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "Israel Standard Time": "Asia/Jerusalem",
    "Egypt Standard Time": "Africa/Cairo",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Turkey Standard Time": "Europe/Istanbul",
    "Russian Standard Time": "Europe/Moscow",
    "Arab Standard Time": "Asia/Riyadh",
    "E. Africa Standard Time": "Africa/Nairobi",
    "Arabian Standard Time": "Asia/Dubai",
    "Iran Standard Time": "Asia/Tehran",
    "Pakistan Standard Time": "Asia/Karachi",
    "India Standard Time": "Asia/Kolkata",
    "Nepal Standard Time": "Asia/Kathmandu",
    "Bangladesh Standard Time": "Asia/Dhaka",
    "SE Asia Standard Time": "Asia/Bangkok",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "Taipei Standard Time": "Asia/Taipei",
    "W. Australia Standard Time": "Australia/Perth",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "New Zealand Standard Time": "Pacific/Auckland",
}
# IANA names that share a Windows zone with the one above (the territory-specific rows).
_MORE_IANA = {
    "W. Europe Standard Time": (
        "Europe/Amsterdam", "Europe/Rome", "Europe/Stockholm", "Europe/Vienna",
        "Europe/Zurich", "Europe/Oslo", "Europe/Luxembourg", "Europe/Monaco",
    ),
    "Romance Standard Time": ("Europe/Madrid", "Europe/Brussels", "Europe/Copenhagen"),
    "Central Europe Standard Time": ("Europe/Prague", "Europe/Bratislava", "Europe/Belgrade"),
    "Central European Standard Time": ("Europe/Zagreb", "Europe/Sarajevo", "Europe/Skopje"),
    "GMT Standard Time": ("Europe/Dublin", "Europe/Lisbon", "Atlantic/Canary"),
    "FLE Standard Time": ("Europe/Kyiv", "Europe/Helsinki", "Europe/Riga", "Europe/Vilnius"),
    "GTB Standard Time": ("Europe/Athens",),
    "Eastern Standard Time": ("America/Toronto", "America/Detroit"),
    "Pacific Standard Time": ("America/Vancouver", "America/Tijuana"),
    "Central Standard Time": ("America/Winnipeg",),
    "Mountain Standard Time": ("America/Edmonton",),
    "China Standard Time": ("Asia/Hong_Kong", "Asia/Macau"),
    "SE Asia Standard Time": ("Asia/Jakarta", "Asia/Ho_Chi_Minh"),
    "UTC": ("UTC", "Etc/GMT", "GMT", "Etc/UCT"),
    "India Standard Time": ("Asia/Calcutta",),
    "AUS Eastern Standard Time": ("Australia/Melbourne", "Australia/Canberra"),
}  # fmt: skip
IANA_TO_WINDOWS = {iana: windows for windows, iana in WINDOWS_TO_IANA.items()}
for _windows, _names in _MORE_IANA.items():
    for _name in _names:
        IANA_TO_WINDOWS.setdefault(_name, _windows)
# Spellings of UTC that Outlook itself writes.
_UTC_NAMES = {"utc", "etc/utc", "gmt", "z", "tzone://microsoft/utc", "coordinated universal time"}
_WINDOWS_BY_LOWER = {name.lower(): name for name in WINDOWS_TO_IANA}


def resolve(name: str | None) -> tzinfo | None:
    """The zone a Windows or IANA name stands for; None when unknown."""
    if not isinstance(name, str) or not name.strip():
        return None
    name = name.strip()
    if name.lower() in _UTC_NAMES:
        return UTC
    windows = _WINDOWS_BY_LOWER.get(name.lower())
    return get_zone(WINDOWS_TO_IANA[windows] if windows else name)


def windows_name(name: str) -> str:
    """The Windows name Graph reports in originalStartTimeZone ("UTC" for UTC)."""
    if name.strip().lower() in _UTC_NAMES:
        return "UTC"
    windows = _WINDOWS_BY_LOWER.get(name.strip().lower())
    return windows or IANA_TO_WINDOWS.get(name.strip(), name.strip())
