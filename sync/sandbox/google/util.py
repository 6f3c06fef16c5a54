"""Small helpers: ids, opaque tokens, RFC 3339 / RFC 1123 times, time zones."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import re
import secrets
from datetime import UTC, date, datetime, timedelta, tzinfo

try:  # zoneinfo is stdlib, but its database (system tzdata or the tzdata wheel) may be absent
    import zoneinfo

    _HAVE_ZONES = bool(zoneinfo.available_timezones())
except ImportError:  # pragma: no cover - Python < 3.9
    zoneinfo = None
    _HAVE_ZONES = False

# Google event ids use base32hex in lower case ("characters allowed in the ID are those used in
# base32hex encoding, i.e. lowercase letters a-v and digits 0-9").
BASE32HEX = "0123456789abcdefghijklmnopqrstuv"
EVENT_ID_RE = re.compile(r"^[a-v0-9]{5,1024}$")


def new_id(length: int = 26) -> str:
    return "".join(secrets.choice(BASE32HEX) for _ in range(length))


def random_token(prefix: str, nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def opaque(payload: dict) -> str:
    """An opaque, URL-safe token (page and sync tokens) carrying `payload`."""
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unopaque(token: str) -> dict:
    """The payload of an `opaque` token; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError("not a sandbox token") from exc
    if not isinstance(payload, dict):
        raise ValueError("not a sandbox token")
    return payload


def digest(*parts: object, length: int = 16) -> str:
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# --- times ---
def get_zone(name: str | None) -> tzinfo | None:
    """The IANA zone `name`, or None when unknown (or when no zone database is installed)."""
    if not name or zoneinfo is None:
        return None
    if name.upper() in ("UTC", "ETC/UTC", "GMT", "Z"):
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def zone_is_known(name: str) -> bool:
    """Whether `name` is a valid IANA zone (always True when no database can tell)."""
    return not _HAVE_ZONES or get_zone(name) is not None


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 timestamp with a mandatory offset ('Z' or ±hh:mm) -> aware datetime."""
    if not isinstance(value, str) or "T" not in value.upper():
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    parsed = datetime.fromisoformat(value.strip().replace("z", "Z").replace("t", "T"))
    if parsed.tzinfo is None:
        raise ValueError(f"RFC 3339 date-time without offset: {value!r}")
    return parsed


def parse_naive_or_aware(value: str) -> datetime:
    """A date-time that may lack its offset (an event's dateTime next to a timeZone)."""
    if not isinstance(value, str) or "T" not in value.upper():
        raise ValueError(f"not a date-time: {value!r}")
    return datetime.fromisoformat(value.strip().replace("z", "Z").replace("t", "T"))


def parse_date(value: str) -> date:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"not a date: {value!r}")
    return date.fromisoformat(value)


def format_ms(epoch: float) -> str:
    """RFC 3339 in UTC with milliseconds, as Google writes `created` and `updated`."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def format_dt(moment: datetime) -> str:
    """RFC 3339 with the moment's own offset ('Z' for UTC), whole seconds."""
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def rfc1123(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


def epoch_of(value: date | datetime, zone: tzinfo) -> float:
    """A start or end as seconds since the epoch; an all-day date starts at midnight in `zone`."""
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime(value.year, value.month, value.day, tzinfo=zone).timestamp()


def utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


DAY = timedelta(days=1)
