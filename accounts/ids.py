"""Public identifiers with Cronofy's prefixes (database primary keys never leave the server),
and the one wire format of a moment."""

import secrets
from datetime import UTC, datetime


def make_public_id(prefix: str, nbytes: int = 12) -> str:
    """`prefix` + 2*nbytes lowercase hex characters (96 random bits by default)."""
    return f"{prefix}{secrets.token_hex(nbytes)}"


def new_account_id() -> str:
    return make_public_id("acc_")


def new_profile_id() -> str:
    return make_public_id("pro_")


def new_calendar_id() -> str:
    return make_public_id("cal_")


def new_external_event_uid() -> str:
    return make_public_id("evt_external_")


def new_channel_id() -> str:
    return make_public_id("chn_")


def format_utc(moment: datetime) -> str:
    """A moment as Cronofy writes it: UTC, whole seconds, "Z" (2026-12-03T09:00:00Z)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
