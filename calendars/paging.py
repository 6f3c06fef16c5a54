"""Opaque page tokens for /v1/events and /v1/free_busy (docs/api.md, Paging).

SDKs fetch `next_page` verbatim, without the original parameters, so a token carries the whole
query, the snapshot time, the keyset cursor and the page numbers. It is encrypted and
authenticated (Fernet via accounts.crypto, the same rotatable keys as secrets at rest): it cannot
be forged or altered, and the cursor's database id never leaves the server in clear. A token is
bound to the account and application it was issued to; any other use is a 404.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from accounts import crypto

_PURPOSE = "calendars.page_token"
# Page links stay valid this long; SDKs follow them within seconds.
TOKEN_MAX_AGE = timedelta(hours=24)


class InvalidPageToken(Exception):
    """Unknown, tampered, expired or foreign token: the API answers 404."""


@dataclass(frozen=True)
class PageState:
    kind: str  # "events" | "free_busy"
    account: str  # acc_ public id
    application: str  # client_id
    query: dict  # EventQuery.to_payload()
    snapshot_at: datetime
    cursor_start: datetime
    cursor_id: int
    page: int  # the page this token leads to
    total: int  # pages.total as last counted
    total_exact: bool = True  # False: total is a lower bound, recounted on the next page


def encode_page_token(state: PageState) -> str:
    payload = {
        "k": state.kind,
        "a": state.account,
        "p": state.application,
        "q": state.query,
        "s": state.snapshot_at.isoformat(),
        "c": [state.cursor_start.isoformat(), state.cursor_id],
        "n": state.page,
        "t": state.total,
        "x": state.total_exact,
        "i": timezone.now().isoformat(),
    }
    return crypto.encrypt(json.dumps(payload, separators=(",", ":")), purpose=_PURPOSE)


def decode_page_token(token: str, *, kind: str, account: str, application: str) -> PageState:
    """Raises InvalidPageToken unless the token was issued by us, for this endpoint, account and
    application, within TOKEN_MAX_AGE."""
    try:
        payload = json.loads(crypto.decrypt(token, purpose=_PURPOSE))
        issued = datetime.fromisoformat(payload["i"])
        state = PageState(
            kind=payload["k"],
            account=payload["a"],
            application=payload["p"],
            query=payload["q"],
            snapshot_at=datetime.fromisoformat(payload["s"]),
            cursor_start=datetime.fromisoformat(payload["c"][0]),
            cursor_id=int(payload["c"][1]),
            page=int(payload["n"]),
            total=int(payload["t"]),
            total_exact=bool(payload["x"]),
        )
    except (crypto.DecryptionError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InvalidPageToken("not a page token") from exc
    if (state.kind, state.account, state.application) != (kind, account, application):
        raise InvalidPageToken("token issued for another endpoint, account or application")
    if timezone.now() - issued > TOKEN_MAX_AGE:
        raise InvalidPageToken("token expired")
    return state
