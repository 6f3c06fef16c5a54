"""iCalendar builders for sync tests (dates relative to today, so inside the sync window)."""

from datetime import UTC, datetime, timedelta

from django.utils import timezone


def soon(days: int = 7, hour: int = 9) -> datetime:
    """A UTC datetime `days` from today at `hour`:00 — inside the sync window."""
    today = timezone.now().astimezone(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days)


def stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def vevent(uid: str, start: datetime, *, summary: str = "Meeting", minutes: int = 60, extra=""):
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20260101T000000Z",
        f"DTSTART:{stamp(start)}",
        f"DTEND:{stamp(start + timedelta(minutes=minutes))}",
        f"SUMMARY:{summary}",
    ]
    lines += [line for line in extra.splitlines() if line.strip()]
    lines.append("END:VEVENT")
    return "\r\n".join(lines) + "\r\n"


def vcalendar(*events: str, header: str = "") -> str:
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync tests//EN\r\n"
    head += "".join(line.strip() + "\r\n" for line in header.splitlines() if line.strip())
    return head + "".join(events) + "END:VCALENDAR\r\n"
