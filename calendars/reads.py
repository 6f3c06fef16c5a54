"""Reading the cached schedule: GET /v1/events and /v1/free_busy (docs/api.md, Reading events).

`parse_event_query` turns request parameters into an `EventQuery`; `read_page` returns one page
of rows in (start, id) order using keyset paging over the (account, start, id) index, its scan
bounded on start from both sides (the window's few long events are read apart, see _parts).

Snapshot semantics of paging: the first page fixes a snapshot time. Later pages never show
events created after it, show events changed after it in their current state, and omit events
deleted since (unless include_deleted). An event unchanged while paging appears exactly once;
so does an event whose change keeps its start (new title, attendees, status...). An event moved
across the page boundary between two page reads is shown where it is now, so it can appear
twice or be missed by that read; the change itself is always reported by the next
`last_modified` read, as with Cronofy's change notifications.
"""

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import F, Q
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan
from django.http import Http404
from django.utils import timezone

from accounts.models import Account
from accounts.rest import CronofyValidationError
from calendars.models import SERIES_MASTER, Calendar, Event
from calendars.paging import PageState
from calendars.parsing import (
    get_list,
    parse_bool,
    parse_tzid,
    start_of_day,
    window_boundary,
)
from calendars.writes import is_clean_id

# Fixed page size of /v1/events and /v1/free_busy (Cronofy does not document its own).
PAGE_SIZE = 100
# pages.total is exact while at most this many pages follow the current one (see _count_pages).
COUNT_AHEAD_PAGES = 10
# Default window when from/to are omitted (Cronofy: 42 days back, 201 days ahead).
DEFAULT_PAST_DAYS = 42
DEFAULT_FUTURE_DAYS = 201
# All-day rows are indexed at 00:00 UTC; in the caller's zone a day starts up to 14 hours
# earlier (UTC+14) or 12 hours later (UTC-12). Widening the indexed range by this much and
# then comparing dates exactly keeps the index usable.
_ALL_DAY_PAD = timedelta(hours=14)

EVENT_FIELDS = (
    "id",
    "event_uid",
    "calendar_id",
    "calendar__public_id",
    "provider_key",
    "ical_uid",
    "summary",
    "description",
    "location_description",
    "location_lat",
    "location_long",
    "meeting_url",
    "start",
    "end",
    "is_all_day",
    "start_date",
    "end_date",
    "tzid",
    "status",
    "transparency",
    "extended_transparency",
    "participation_status",
    "attendees",
    "organizer",
    "categories",
    "is_recurring",
    "original_start",
    "is_private",
    "provider_created_at",
    "provider_updated_at",
    "created_at",
    "updated_at",
    "is_deleted",
    "application_id",
    "event_id",
)
FREE_BUSY_FIELDS = (
    "id",
    "event_uid",
    "calendar_id",
    "calendar__public_id",
    "start",
    "end",
    "is_all_day",
    "start_date",
    "end_date",
    "tzid",
    "status",
    "transparency",
    "participation_status",
    "is_deleted",
    "application_id",
    "event_id",
)


@dataclass(frozen=True)
class EventQuery:
    """The normalized parameters of an events or free/busy read."""

    tzid: str
    start: datetime | None  # window from (UTC); None: unbounded
    end: datetime | None  # window to (UTC, exclusive); None: unbounded
    last_modified: datetime | None = None
    include_deleted: bool = False
    include_moved: bool = False
    include_managed: bool = False
    only_managed: bool = False
    localized_times: bool = False
    include_geo: bool = False
    calendar_ids: tuple[str, ...] = ()
    # free/busy only (the .NET SDK sends them)
    include_free: bool = False
    include_ids: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tzid)

    def to_payload(self) -> dict:
        data = asdict(self)
        for name in ("start", "end", "last_modified"):
            if data[name] is not None:
                data[name] = data[name].isoformat()
        data["calendar_ids"] = list(self.calendar_ids)
        return data

    @classmethod
    def from_payload(cls, data: dict) -> "EventQuery":
        values = dict(data)
        for name in ("start", "end", "last_modified"):
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        values["calendar_ids"] = tuple(values.get("calendar_ids", ()))
        return cls(**values)


def parse_event_query(params, *, kind: str, now: datetime | None = None) -> EventQuery:
    """Query parameters of GET /v1/events (kind "events") or /v1/free_busy ("free_busy").

    Unknown parameters are ignored; bad values are a 422 naming the parameter.
    """
    tz = parse_tzid(params.get("tzid"))
    now = now or timezone.now()
    only_managed = kind == "events" and parse_bool(params.get("only_managed"), "only_managed")
    today = now.astimezone(tz).date()

    raw_from, raw_to = params.get("from"), params.get("to")
    if raw_from:
        start = window_boundary(raw_from, "from", tz=tz)
    elif only_managed:
        start = None  # Cronofy: the from/to defaults do not apply to managed events
    else:
        start = start_of_day(today - timedelta(days=DEFAULT_PAST_DAYS), tz)
    if raw_to:
        end = window_boundary(raw_to, "to", tz=tz)
    elif only_managed:
        end = None
    else:
        end = start_of_day(today + timedelta(days=DEFAULT_FUTURE_DAYS), tz)
    if start is not None and end is not None and end <= start:
        raise CronofyValidationError.single(
            "to", "errors.must_be_after_from", "to must be after from"
        )

    last_modified = None
    if params.get("last_modified"):
        last_modified = window_boundary(params["last_modified"], "last_modified", tz=UTC)

    flags = {
        name: parse_bool(params.get(name), name)
        for name in ("include_deleted", "include_managed", "localized_times")
    }
    if kind == "events":
        flags |= {
            name: parse_bool(params.get(name), name) for name in ("include_moved", "include_geo")
        }
        flags["only_managed"] = only_managed
    else:
        flags |= {
            name: parse_bool(params.get(name), name) for name in ("include_free", "include_ids")
        }
    return EventQuery(
        tzid=tz.key,
        start=start,
        end=end,
        last_modified=last_modified,
        calendar_ids=tuple(get_list(params, "calendar_ids")),
        **flags,
    )


def _window(query: EventQuery) -> Q:
    """Events overlapping [start, end): timed ones by instant, all-day ones by date in tzid."""
    tz = query.zone
    timed, all_day, coarse = Q(is_all_day=False), Q(is_all_day=True), Q()
    if query.start is not None:
        timed &= Q(end__gt=query.start)
        # An all-day event ends (exclusive) at the start of end_date in tz: after `start` iff
        # end_date is after start's local date.
        all_day &= Q(end_date__gt=query.start.astimezone(tz).date())
        coarse &= Q(end__gt=query.start - _ALL_DAY_PAD)
    if query.end is not None:
        timed &= Q(start__lt=query.end)
        local_end = query.end.astimezone(tz)
        last_day = (
            local_end.date() if local_end.time() == time.min else local_end.date() + timedelta(1)
        )
        all_day &= Q(start_date__lt=last_day)
        coarse &= Q(start__lt=query.end + _ALL_DAY_PAD)
    return coarse & (timed | all_day)


def calendar_pks(account: Account, public_ids: tuple[str, ...]) -> list[int] | None:
    """Internal ids of the requested calendars; 404 if one is unknown or another account's."""
    if not public_ids:
        return None
    if not all(is_clean_id(public_id) for public_id in public_ids):
        raise Http404("unknown calendar")  # a NUL would be a DataError on PostgreSQL
    found = dict(
        Calendar.objects.for_account(account)
        .filter(public_id__in=public_ids)
        .values_list("public_id", "pk")
    )
    if len(found) != len(set(public_ids)):
        raise Http404("unknown calendar")
    return list(found.values())


def _base_queryset(account: Account, application, query: EventQuery, kind: str, cal_pks):
    # A managed series is read as its instances, never as its master row (see
    # calendars.services.managed_events).
    qs = Event.objects.filter(account=account).filter(~SERIES_MASTER)
    if cal_pks is not None:
        qs = qs.filter(calendar_id__in=cal_pks)
    if not query.include_deleted:
        qs = qs.filter(is_deleted=False)
    managed = Q(application=application, event_id__isnull=False)
    if query.only_managed:
        qs = qs.filter(managed)
    elif not query.include_managed:
        qs = qs.exclude(managed)
    window = _window(query)
    if query.last_modified is not None:
        qs = qs.filter(updated_at__gte=query.last_modified)
        if query.include_moved:
            # Without per-event history, "ever overlapped the window" is approximated by "changed
            # since last_modified": a superset that includes every event moved out of it.
            window = window | Q(updated_at__gte=query.last_modified)
    qs = qs.filter(window)
    if kind == "free_busy" and not query.include_free:
        qs = qs.busy()
    return qs


@dataclass
class Page:
    rows: list[dict]
    current: int
    total: int
    next_state: PageState | None


def _after(qs, start: datetime, pk: int):
    """Keyset: rows after (start, id), written as one row comparison so that PostgreSQL seeks
    the (account, start, id) index to the cursor and reads it in order. Spelled as
    `start > x OR id > y`, its rows were misestimated (88 for 4,449 in a 3-month window) and
    the planner chose a bitmap scan of the whole rest of the window and a sort (EXPLAIN
    ANALYZE: 8.7 ms instead of 0.7 ms; bench/read_events.py's api_quarter_next, 28 -> 19 ms).
    Tuple lookups are Django's own (5.2, not yet documented); tests/calendars'
    test_a_later_page_seeks_the_index_to_its_cursor_and_reads_in_order checks the plan.
    SQLite gets the OR form (Django's fallback), seeking by the redundant start__gte."""
    after = TupleGreaterThan(Tuple(F("start"), F("id")), (start, pk))
    return qs.filter(start__gte=start).filter(after)


def _parts(qs, query: EventQuery) -> list:
    """The querysets a read takes its rows from in turn, their rows in (start, id) order.

    A window with a start is split by reach (EventQuerySet.split_by_reach): the few long events
    still running at the window's start, then the rest, whose scan is bounded on start from
    both sides, so that history before the window is never read. With include_moved and
    last_modified an event may match far outside the window, so the read stays one query."""
    if query.start is None or (query.include_moved and query.last_modified is not None):
        return [qs]
    return list(qs.split_by_reach(query.start - _ALL_DAY_PAD))


def _rows(parts: list, fields, limit: int) -> list[dict]:
    rows: list[dict] = []
    for part in parts:
        if len(rows) >= limit:
            break
        rows.extend(part.order_by("start", "id").values(*fields)[: limit - len(rows)])
    return rows


def _to_count_after(parts: list, query: EventQuery, start: datetime, pk: int) -> list:
    """The parts' rows after (start, id), for the count. A long part holds only events starting
    before the window (less the all-day pad), so it has nothing to count after a cursor at or
    past that. (A page reads every part all the same: one query more or less would make the
    number of queries of a page depend on where it starts.)"""
    if len(parts) > 1 and start >= query.start - _ALL_DAY_PAD:
        parts = parts[1:]
    return [_after(part, start, pk) for part in parts]


def _count_pages(remaining_parts: list, current: int) -> tuple[int, bool]:
    """(pages.total, exact?) counting at most COUNT_AHEAD_PAGES pages after the current one.

    Counting every row of a wide window costs more than reading the page (a 3-month window of
    a busy account holds ~19,000 events), so the count seeks to the cursor and stops early. When
    more than that remains, total is a lower bound (current + COUNT_AHEAD_PAGES + 1) refined
    on later pages; SDKs only compare current < total or follow next_page, so they read all.
    """
    cap = COUNT_AHEAD_PAGES * PAGE_SIZE
    remaining = 0
    for part in remaining_parts:
        remaining += part.order_by()[: cap + 1 - remaining].count()
        if remaining > cap:
            return current + COUNT_AHEAD_PAGES + 1, False
    return current + max(1, -(-remaining // PAGE_SIZE)), True


def read_page(
    *,
    account: Account,
    application,
    query: EventQuery,
    kind: str,
    state: PageState | None = None,
) -> Page:
    """One page of event rows (dicts of EVENT_FIELDS or FREE_BUSY_FIELDS) in (start, id) order.

    `state` is the decoded token of a later page; None reads the first page and fixes the
    snapshot. Raises Http404 for an unknown calendar id. Queries, whatever the page size: the
    page (two when the window's long events come first, see _parts), a capped count while
    pages.total is not known exactly, and the calendar ids if given.
    """
    cal_pks = calendar_pks(account, query.calendar_ids)
    qs = _base_queryset(account, application, query, kind, cal_pks)
    if state is None:
        snapshot_at, current = timezone.now(), 1
        parts = _parts(qs, query)
        page_parts = parts
    else:
        snapshot_at, current = state.snapshot_at, state.page
        parts = _parts(qs.filter(created_at__lte=snapshot_at), query)
        page_parts = [_after(part, state.cursor_start, state.cursor_id) for part in parts]
    fields = EVENT_FIELDS if kind == "events" else FREE_BUSY_FIELDS
    rows = _rows(page_parts, fields, PAGE_SIZE + 1)
    has_more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if not has_more:
        return Page(rows=rows, current=current, total=current, next_state=None)

    last = rows[-1]
    if state is not None and state.total_exact:
        total, exact = max(state.total, current + 1), True
    else:
        remaining = _to_count_after(parts, query, last["start"], last["id"])
        total, exact = _count_pages(remaining, current)
    next_state = PageState(
        kind=kind,
        account=account.public_id,
        application=application.client_id,
        query=query.to_payload(),
        snapshot_at=snapshot_at,
        cursor_start=last["start"],
        cursor_id=last["id"],
        page=current + 1,
        total=total,
        total_exact=exact,
    )
    return Page(rows=rows, current=current, total=total, next_state=next_state)
