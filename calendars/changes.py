"""GET /v1/changes: the account's change log as a feed (docs/api.md, "The change feed").

A cursor names a position in one account's log (the last sequence read) and is bound to the
account and the application it was issued to by an HMAC of the settings' key: another caller's
cursor, or an altered one, is a 422. Sequence order is commit order (record_changes allocates
sequences on the locked account row), and a page reads the account's head first and then only
entries up to it, so every entry up to the head is committed and visible: walking pages from
any cursor yields each change exactly once, in order, and restarting from the last cursor
after a crash skips nothing.

A cursor stays valid while the entry right after it is kept; once the retention purge has
removed it the cursor is expired (410 cursor_expired), and the integrator resynchronises from a
snapshot: `cursor=now`, then a full read of /v1/events.
"""

import base64
import hmac
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils.crypto import salted_hmac

from accounts.models import Account, Profile
from accounts.rest import CronofyValidationError
from calendars.models import Calendar, ChangeLogEntry, Event
from calendars.parsing import get_list, parse_bool
from calendars.reads import EVENT_FIELDS, calendar_pks
from calendars.wakeups import wakeups

_CURSOR_SALT = "calendars.changes.cursor"
_CURSOR_PREFIX = "chg_"
_MAC_BYTES = 16
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# The `wait` parameter's cap (seconds); CHANGES_MAX_WAIT_SECONDS may lower it further.
MAX_WAIT_SECONDS = 30

Kind = ChangeLogEntry.Kind
EVENT_KINDS = (Kind.EVENT_CREATED, Kind.EVENT_UPDATED, Kind.EVENT_DELETED)


class InvalidCursor(Exception):
    """Not a cursor we issued to this account and application: 422."""


class CursorExpired(Exception):
    """The entries after the cursor were purged (older than the retention): 410 with BODY,
    which says how to resynchronise (GET /v1/changes and the channel replay answer it)."""

    BODY = {
        "error": "cursor_expired",
        "description": "the changes after this cursor are older than the change log keeps "
        "(CHANGE_LOG_RETENTION_DAYS): get a fresh cursor with cursor=now, then read "
        "/v1/events in full, then follow the changes from that cursor",
    }


# --- cursors ---------------------------------------------------------------------------------


def _mac(account_id: int, application_id: int, sequence: int, key: str) -> bytes:
    message = f"{account_id}:{application_id}:{sequence}"
    return salted_hmac(_CURSOR_SALT, message, secret=key, algorithm="sha256").digest()[:_MAC_BYTES]


def encode_cursor(*, account_id: int, application_id: int, sequence: int) -> str:
    """The opaque cursor of `sequence` in the account's log, for this application only."""
    mac = _mac(account_id, application_id, sequence, settings.SECRET_KEY)
    raw = sequence.to_bytes(8, "big") + mac
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, *, account_id: int, application_id: int) -> int:
    """The sequence a cursor names; InvalidCursor unless we issued it to this pair (under the
    current SECRET_KEY or one of SECRET_KEY_FALLBACKS)."""
    if not cursor.startswith(_CURSOR_PREFIX) or len(cursor) > 64:
        raise InvalidCursor
    try:
        body = cursor[len(_CURSOR_PREFIX) :]
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError as exc:
        raise InvalidCursor from exc
    if len(raw) != 8 + _MAC_BYTES:
        raise InvalidCursor
    sequence = int.from_bytes(raw[:8], "big")
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if not any(
        hmac.compare_digest(raw[8:], _mac(account_id, application_id, sequence, key))
        for key in keys
    ):
        raise InvalidCursor
    return sequence


# --- the query -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeQuery:
    after: int  # the sequence the cursor names
    limit: int
    wait: float  # seconds, already capped
    calendar_pks: list[int] | None
    only_managed: bool


def _bounded_int(params, name: str, *, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    # ASCII digits only ("²" is a digit to str.isdigit but not to int), and short.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not low <= int(raw) <= high:
        raise CronofyValidationError.single(
            name, "errors.invalid", f"{name} must be a whole number from {low} to {high}"
        )
    return int(raw)


def max_wait_seconds() -> int:
    return max(0, min(MAX_WAIT_SECONDS, settings.CHANGES_MAX_WAIT_SECONDS))


def parse_change_query(params, *, account: Account, application) -> ChangeQuery:
    """The parameters of GET /v1/changes: 422 for a missing or foreign cursor or a bad value,
    404 for an unknown calendar id, 410 (CursorExpired) for a purged position."""
    raw_cursor = params.get("cursor")
    if not raw_cursor:
        raise CronofyValidationError.single(
            "cursor", "errors.required", "cursor is required: `now`, or a next_cursor"
        )
    limit = _bounded_int(params, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    wait = _bounded_int(params, "wait", default=0, low=0, high=MAX_WAIT_SECONDS)
    only_managed = parse_bool(params.get("only_managed"), "only_managed")
    cal_pks = calendar_pks(account, tuple(get_list(params, "calendar_ids")))
    try:
        after = resolve_cursor(raw_cursor, account=account, application=application)
    except InvalidCursor:
        raise CronofyValidationError.single(
            "cursor", "errors.invalid_cursor", "not a cursor issued to this token"
        ) from None
    return ChangeQuery(
        after=after,
        limit=limit,
        wait=float(min(wait, max_wait_seconds())),
        calendar_pks=cal_pks,
        only_managed=only_managed,
    )


def resolve_cursor(cursor: str, *, account: Account, application) -> int:
    """The sequence after which to read: the head for `now`, else the cursor's own. Raises
    InvalidCursor (not ours for this pair) or CursorExpired (what follows it was purged)."""
    head = current_head(account)
    if cursor == "now":
        return head
    after = decode_cursor(cursor, account_id=account.pk, application_id=application.pk)
    if after < head and not _is_kept(account, after + 1):
        raise CursorExpired
    return min(after, head)


def current_head(account: Account) -> int:
    """The account's last committed sequence (read fresh: the caller's copy may be old)."""
    return Account.objects.filter(pk=account.pk).values_list("last_change_seq", flat=True).get()


def _is_kept(account: Account, sequence: int) -> bool:
    return ChangeLogEntry.objects.filter(account=account, sequence=sequence).exists()


# --- pages -----------------------------------------------------------------------------------


ENTRY_FIELDS = (
    "sequence",
    "kind",
    "changed_at",
    "application_id",
    "calendar_id",
    "event_id",
    "profile_id",
)


@dataclass
class ChangePage:
    entries: list[dict]  # rows of ENTRY_FIELDS, in sequence order
    calendars: dict[int, Calendar]  # the entries' calendars, with their profiles
    profiles: dict[int, Profile]  # the profiles of profile entries
    events: dict[int, dict]  # event pk -> row of calendars.reads.EVENT_FIELDS
    next_sequence: int
    has_more: bool


def _filtered(account: Account, application, query: ChangeQuery):
    qs = ChangeLogEntry.objects.filter(account=account)
    if query.calendar_pks is not None:
        qs = qs.filter(calendar_id__in=query.calendar_pks)
    if query.only_managed:
        qs = qs.filter(
            kind__in=EVENT_KINDS, event__application=application, event__event_id__isnull=False
        )
    return qs


def read_change_page(*, account: Account, application, query: ChangeQuery) -> ChangePage:
    """Entries after the cursor up to the head read first, at most `limit`, in order.

    Queries: the head, the entries, their calendars and profiles, the events' current rows.
    Plain rows, and profiles without their (encrypted) credentials: decrypting them per entry
    cost more than the rest of the page.
    """
    head = current_head(account)
    rows = list(
        _filtered(account, application, query)
        .filter(sequence__gt=query.after, sequence__lte=head)
        .order_by("sequence")
        .values(*ENTRY_FIELDS)[: query.limit + 1]
    )
    has_more = len(rows) > query.limit
    rows = rows[: query.limit]
    # Past the last entry shown when more follow; else the head (filtered-out entries up to it
    # need not be scanned again).
    next_sequence = rows[-1]["sequence"] if has_more else max(head, query.after)
    return ChangePage(
        entries=rows,
        calendars=_by_pk(
            Calendar.objects.select_related("profile").defer("profile__credentials"),
            {row["calendar_id"] for row in rows},
        ),
        profiles=_by_pk(Profile.objects.defer("credentials"), {row["profile_id"] for row in rows}),
        events={
            row["id"]: row
            for row in _only_some(Event.objects, {row["event_id"] for row in rows}).values(
                *EVENT_FIELDS
            )
        },
        next_sequence=next_sequence,
        has_more=has_more,
    )


def _only_some(manager, pks: set):
    return manager.filter(pk__in=pks - {None}) if pks - {None} else manager.none()


def _by_pk(manager, pks: set) -> dict:
    return {obj.pk: obj for obj in _only_some(manager, pks)}


def wait_for_changes(
    *, account: Account, application, query: ChangeQuery, max_waiters: int
) -> ChangePage:
    """Read a page; while it is empty and `query.wait` has time left, sleep until a change of
    the account commits and read again. Holds no database connection while asleep; when
    `max_waiters` long-polls already wait in this process, answers at once instead."""
    # A ticket before every read: a change committing after it ends the next wait at once.
    ticket = wakeups.ticket(account.pk)
    page = read_change_page(account=account, application=application, query=query)
    if page.entries or query.wait <= 0 or not wakeups.try_enter(max_waiters):
        return page
    deadline = time.monotonic() + query.wait
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            _release_connection()
            wakeups.wait(account.pk, ticket, remaining)
            ticket = wakeups.ticket(account.pk)
            page = read_change_page(account=account, application=application, query=query)
            if page.entries:
                break
    finally:
        wakeups.leave()
    return page


def _release_connection() -> None:
    # A sleeping long-poll must not pin a database connection; Django reconnects on the next
    # query. Inside a transaction (a test's, or ATOMIC_REQUESTS) the connection must stay.
    if not connection.in_atomic_block:
        connection.close()
