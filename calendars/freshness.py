"""How fresh the cache of a calendar is: the one definition every read, the availability
engine and the support console share (docs/api.md, Freshness).

The sync app owns the bookkeeping (its per-calendar sync state), and `calendars` may not
import it, so the figures come through the callable named in `CALENDAR_FRESHNESS_READER`:
`(calendar_pks: list[int], now: datetime) -> dict[int, Freshness]`, one query for all.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.ids import format_utc

OK = "ok"
LAGGING = "lagging"  # no successful sync within three poll intervals (or never yet)
FAILING = "failing"  # the last sync attempt failed
DISCONNECTED = "disconnected"  # the profile lost its authorization: nothing will sync
STATES = (OK, LAGGING, FAILING, DISCONNECTED)

PUSH = "push"  # the provider tells us of changes (a live push subscription); polls are a net
POLL = "poll"  # we find changes by polling every poll interval

# A calendar is lagging once its last success is older than this many poll intervals.
LAGGING_AFTER_INTERVALS = 3


@dataclass(frozen=True)
class Freshness:
    state: str
    source: str
    last_synced_at: datetime | None
    lag_seconds: int | None  # seconds since last_synced_at; None if it never synced

    @property
    def is_trustworthy(self) -> bool:
        """Whether an answer from this calendar's cache may be given as current."""
        return self.state == OK

    def to_payload(self) -> dict:
        return {
            "state": self.state,
            "source": self.source,
            "last_synced_at": (format_utc(self.last_synced_at) if self.last_synced_at else None),
            "lag_seconds": self.lag_seconds,
        }


def classify(
    *,
    connected: bool,
    consecutive_failures: int,
    last_synced_at: datetime | None,
    interval_seconds: int,
    source: str,
    now: datetime,
) -> Freshness:
    """The rule, in one place: disconnected, then failing, then lagging, else ok."""
    lag = int((now - last_synced_at).total_seconds()) if last_synced_at else None
    if not connected:
        state = DISCONNECTED
    elif consecutive_failures > 0:
        state = FAILING
    elif lag is None or lag > LAGGING_AFTER_INTERVALS * interval_seconds:
        state = LAGGING
    else:
        state = OK
    return Freshness(state=state, source=source, last_synced_at=last_synced_at, lag_seconds=lag)


NEVER_SYNCED = Freshness(state=LAGGING, source=POLL, last_synced_at=None, lag_seconds=None)


def freshness_of(calendar_pks: Iterable[int], *, now: datetime | None = None) -> dict:
    """{calendar pk: Freshness} for each of these calendars; one the sync engine has not yet
    started on is lagging, never synced."""
    pks = list(dict.fromkeys(calendar_pks))
    if not pks:
        return {}
    found = import_string(settings.CALENDAR_FRESHNESS_READER)(pks, now or timezone.now())
    return {pk: found.get(pk, NEVER_SYNCED) for pk in pks}
