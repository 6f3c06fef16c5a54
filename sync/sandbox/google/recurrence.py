"""Expansion of an event's ``recurrence`` lines (RFC 5545 RRULE, RDATE, EXDATE).

Expansion runs on wall-clock ("naive local") datetimes in the series' own time zone, as
Google does: a 09:00 weekly meeting in Europe/Berlin stays at 09:00 across daylight saving.
The caller localizes the results.

Two engines give the same answers for the rules they both support:

- ``dateutil`` (python-dateutil's ``rrule``, full RFC 5545 RRULE) when it is importable;
- ``builtin``, the stdlib-only fallback that keeps the sandbox free of third-party packages:
  FREQ=DAILY/WEEKLY/MONTHLY/YEARLY with INTERVAL, COUNT, UNTIL, BYDAY (ordinals such as 2TU or
  -1FR for MONTHLY/YEARLY), BYMONTHDAY, BYMONTH, BYSETPOS and WKST. No BYHOUR/BYMINUTE/
  BYSECOND/BYYEARDAY/BYWEEKNO, and no SECONDLY/MINUTELY/HOURLY (a rule using them is
  rejected as invalid, as it would be by a client that cannot show it).

EXRULE (deprecated by RFC 5545, ignored by Google) is accepted and ignored.
"""

from __future__ import annotations

import calendar as _cal
import heapq
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo

from sync.sandbox.google.util import get_zone

try:
    from dateutil import rrule as _du_rrule
except ImportError:  # the sandbox runs without third-party packages
    _du_rrule = None

DEFAULT_ENGINE = "dateutil" if _du_rrule is not None else "builtin"
WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
BUILTIN_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH"}
BUILTIN_PARTS |= {"BYSETPOS", "WKST"}
# Stop a rule that can never match (BYMONTHDAY=31;BYMONTH=2) instead of looping forever.
MAX_EMPTY_PERIODS = 2000


class RecurrenceError(ValueError):
    """The recurrence lines cannot be read."""


def _parse_rule(value: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in value.strip().split(";"):
        if not item:
            continue
        key, sep, val = item.partition("=")
        if not sep or not val:
            raise RecurrenceError(f"bad RRULE part {item!r}")
        parts[key.strip().upper()] = val.strip().upper()
    if parts.get("FREQ") not in FREQS:
        raise RecurrenceError(f"unsupported FREQ in {value!r}")
    for key in ("INTERVAL", "COUNT"):
        if key in parts and (not parts[key].isdigit() or int(parts[key]) < 1):
            raise RecurrenceError(f"bad {key} in {value!r}")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("COUNT and UNTIL are exclusive")
    return parts


def _parse_byday(value: str) -> list[tuple[int | None, int]]:
    result = []
    for item in value.split(","):
        item = item.strip()
        code = item[-2:]
        if code not in WEEKDAYS:
            raise RecurrenceError(f"bad BYDAY {value!r}")
        ordinal = item[:-2]
        try:
            nth = int(ordinal) if ordinal not in ("", "+") else None
        except ValueError as exc:
            raise RecurrenceError(f"bad BYDAY {value!r}") from exc
        if nth == 0:
            raise RecurrenceError(f"bad BYDAY {value!r}")
        result.append((nth, WEEKDAYS.index(code)))
    return result


def _ints(value: str, name: str) -> list[int]:
    try:
        numbers = [int(v) for v in value.split(",")]
    except ValueError as exc:
        raise RecurrenceError(f"bad {name} {value!r}") from exc
    if any(n == 0 for n in numbers):
        raise RecurrenceError(f"bad {name} {value!r}")
    return numbers


def _ical_moment(value: str, params: dict[str, str], zone: tzinfo, all_day: bool):
    """One RDATE/EXDATE/UNTIL value -> naive wall-clock datetime in `zone` (all-day: 00:00),
    or a date for a VALUE=DATE value on a timed series."""
    value = value.strip().upper()
    try:
        if len(value) == 8:  # a DATE
            day = datetime.strptime(value, "%Y%m%d")
            return day if all_day else day.date()
        if value.endswith("Z"):
            moment = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            local = moment.astimezone(zone).replace(tzinfo=None)
        else:
            local = datetime.strptime(value, "%Y%m%dT%H%M%S")
            source = get_zone(params.get("TZID"))
            if source is not None and source is not zone:
                local = local.replace(tzinfo=source).astimezone(zone).replace(tzinfo=None)
    except ValueError as exc:
        raise RecurrenceError(f"bad date-time {value!r}") from exc
    if all_day:
        return datetime(local.year, local.month, local.day)
    return local


def _line_params(head: str) -> dict[str, str]:
    params = {}
    for item in head.split(";")[1:]:
        key, _, val = item.partition("=")
        params[key.strip().upper()] = val.strip()
    return params


class Series:
    """The occurrences of one recurring event.

    `start`: naive wall-clock start of the first instance in `zone` (00:00 for all-day);
    `lines`: the event's ``recurrence`` strings.
    """

    def __init__(
        self,
        lines: list[str],
        start: datetime,
        zone: tzinfo,
        *,
        all_day: bool,
        engine: str | None = None,
    ):
        self.start = start
        self.zone = zone
        self.all_day = all_day
        self.engine = engine or DEFAULT_ENGINE
        if self.engine == "dateutil" and _du_rrule is None:
            self.engine = "builtin"
        self.rules: list[dict[str, str]] = []
        self.rdates: set[datetime] = set()
        self.exdates: set[datetime] = set()
        self.exdays: set[date] = set()
        for line in lines:
            if not isinstance(line, str) or ":" not in line:
                raise RecurrenceError(f"bad recurrence line {line!r}")
            head, _, value = line.partition(":")
            name = head.split(";")[0].strip().upper()
            params = _line_params(head)
            if name == "RRULE":
                self.rules.append(self._normalize_until(_parse_rule(value)))
            elif name in ("RDATE", "EXDATE"):
                if params.get("VALUE", "").upper() == "PERIOD":
                    raise RecurrenceError("RDATE;VALUE=PERIOD is not supported")
                for item in value.split(","):
                    moment = _ical_moment(item, params, zone, all_day)
                    if isinstance(moment, date) and not isinstance(moment, datetime):
                        if name == "EXDATE":
                            self.exdays.add(moment)
                        else:
                            self.rdates.add(datetime.combine(moment, start.time()))
                    elif name == "EXDATE":
                        self.exdates.add(moment)
                    else:
                        self.rdates.add(moment)
            elif name == "EXRULE":
                continue
            else:
                raise RecurrenceError(f"unknown recurrence line {line!r}")
            if self.engine == "builtin" and self.rules and set(self.rules[-1]) - BUILTIN_PARTS:
                unsupported = sorted(set(self.rules[-1]) - BUILTIN_PARTS)
                raise RecurrenceError(f"RRULE parts {unsupported} need python-dateutil")

    def _normalize_until(self, parts: dict[str, str]) -> dict[str, str]:
        if "UNTIL" not in parts:
            return parts
        until = _ical_moment(parts["UNTIL"], {}, self.zone, self.all_day)
        if not isinstance(until, datetime):  # a DATE bound on a timed series: the whole day
            until = datetime.combine(until, datetime.max.time()).replace(microsecond=0)
        return {**parts, "UNTIL": until.strftime("%Y%m%dT%H%M%S")}

    def occurrences(self, bound: datetime) -> Iterator[datetime]:
        """Naive wall-clock starts in ascending order, none later than `bound`."""
        sources = [self._rule_iter(rule, bound) for rule in self.rules]
        sources.append(iter(sorted(r for r in self.rdates if r <= bound)))
        last = None
        for moment in heapq.merge(*sources):
            if moment == last:
                continue
            last = moment
            if moment in self.exdates or moment.date() in self.exdays:
                continue
            yield moment

    # --- engines ---
    def _rule_iter(self, rule: dict[str, str], bound: datetime) -> Iterator[datetime]:
        if self.engine == "dateutil":
            text = ";".join(f"{k}={v}" for k, v in rule.items())
            try:
                iterator = iter(_du_rrule.rrulestr(text, dtstart=self.start))
            except (ValueError, TypeError) as exc:
                raise RecurrenceError(str(exc)) from exc
        else:
            iterator = _builtin(rule, self.start)
        for moment in iterator:
            if moment > bound:
                return
            yield moment


def _builtin(rule: dict[str, str], start: datetime) -> Iterator[datetime]:
    freq = rule["FREQ"]
    interval = int(rule.get("INTERVAL", "1"))
    count = int(rule["COUNT"]) if "COUNT" in rule else None
    until = datetime.strptime(rule["UNTIL"], "%Y%m%dT%H%M%S") if "UNTIL" in rule else None
    byday = _parse_byday(rule["BYDAY"]) if "BYDAY" in rule else None
    bymonthday = _ints(rule["BYMONTHDAY"], "BYMONTHDAY") if "BYMONTHDAY" in rule else None
    bymonth = _ints(rule["BYMONTH"], "BYMONTH") if "BYMONTH" in rule else None
    bysetpos = _ints(rule["BYSETPOS"], "BYSETPOS") if "BYSETPOS" in rule else None
    wkst = WEEKDAYS.index(rule.get("WKST", "MO")) if rule.get("WKST", "MO") in WEEKDAYS else 0
    clock = start.time()

    def month_days(year: int, month: int) -> list[date]:
        last = _cal.monthrange(year, month)[1]
        if bymonthday:
            days = {d if d > 0 else last + d + 1 for d in bymonthday}
            candidates = [date(year, month, d) for d in sorted(days) if 1 <= d <= last]
        elif byday:
            candidates = []
            for nth, weekday in byday:
                matching = [
                    date(year, month, d)
                    for d in range(1, last + 1)
                    if date(year, month, d).weekday() == weekday
                ]
                if nth is None:
                    candidates.extend(matching)
                elif -len(matching) <= nth <= len(matching):
                    candidates.append(matching[nth - 1 if nth > 0 else nth])
            candidates = sorted(set(candidates))
        else:
            candidates = [date(year, month, start.day)] if start.day <= last else []
        if byday and bymonthday:  # both: BYDAY filters the month days
            weekdays = {w for _, w in byday}
            candidates = [d for d in candidates if d.weekday() in weekdays]
        return candidates

    def period(index: int) -> list[date]:
        if freq == "DAILY":
            day = start.date() + timedelta(days=index * interval)
            if bymonth and day.month not in bymonth:
                return []
            if byday and day.weekday() not in {w for _, w in byday}:
                return []
            if bymonthday:
                last = _cal.monthrange(day.year, day.month)[1]
                if day.day not in {d if d > 0 else last + d + 1 for d in bymonthday}:
                    return []
            return [day]
        if freq == "WEEKLY":
            week_start = start.date() - timedelta(days=(start.weekday() - wkst) % 7)
            week_start += timedelta(weeks=index * interval)
            weekdays = sorted({w for _, w in byday}) if byday else [start.weekday()]
            days = sorted(week_start + timedelta(days=(w - wkst) % 7) for w in weekdays)
            return [d for d in days if not bymonth or d.month in bymonth]
        if freq == "MONTHLY":
            months = start.year * 12 + start.month - 1 + index * interval
            year, month = divmod(months, 12)
            if bymonth and month + 1 not in bymonth:
                return []
            return month_days(year, month + 1)
        year = start.year + index * interval  # YEARLY
        days = []
        for month in bymonth or [start.month]:
            days.extend(month_days(year, month))
        return sorted(days)

    emitted = 0
    empty = 0
    index = 0
    while True:
        days = period(index)
        index += 1
        if bysetpos and days:
            days = sorted(
                {days[p - 1 if p > 0 else p] for p in bysetpos if -len(days) <= p <= len(days)}
            )
        produced = False
        for day in days:
            moment = datetime.combine(day, clock)
            if moment < start:
                continue
            if until is not None and moment > until:
                return
            produced = True
            yield moment
            emitted += 1
            if count is not None and emitted >= count:
                return
        empty = 0 if produced else empty + 1
        if empty > MAX_EMPTY_PERIODS or index > 200_000:
            return
