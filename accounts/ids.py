"""Public identifiers with Cronofy's prefixes; database primary keys never leave the server."""

import secrets


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
