"""The availability engine: who is free when, on whole minutes, with no Django and no I/O.

Times are integers (minutes since the Unix epoch, UTC); intervals are half-open `(start, end)`
pairs. The query layer (calendars/availability/query.py) turns a request and the cache into
an `AvailabilityQuery`; `find_available` answers it. The definitions below are the contract
that tests/calendars/test_availability_engine.py checks against a brute-force minute grid
(docs/api.md, Availability):

- A member is free at a minute when it lies inside every window that applies to them (the
  query periods, their own `available_periods`, their managed availability) and outside every
  busy interval widened by the buffers: `before` after its end, `after` before its start (a
  slot needs `before` minutes free ahead of it and `after` minutes free behind it).
- A slot `[s, s + duration)` is available with the members free for all of it, when every
  group has at least its required number of them. Slots start on the `start_interval` grid
  (multiples of it since midnight UTC; every allowed interval divides a day), or exactly at
  the requested `query_slots`.
- `overlapping_slots`: every available slot. `slots`: the same, taken in time order, skipping
  any that overlaps the one taken before. `periods`: for each set of participants some slot
  has, the stretches where all of them are free together that contain such a slot, starting
  on the grid.
"""

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

Interval = tuple[int, int]
INFINITY = float("inf")

PERIODS = "periods"
SLOTS = "slots"
OVERLAPPING_SLOTS = "overlapping_slots"
FORMATS = (PERIODS, SLOTS, OVERLAPPING_SLOTS)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-empty, non-touching intervals covering the same minutes."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Minutes in both of two merged lists."""
    result, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            result.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return result


def subtract(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Minutes of merged list `a` that are not in merged list `b`."""
    result, j = [], 0
    for start, end in a:
        while j < len(b) and b[j][1] <= start:
            j += 1
        k, cursor = j, start
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cursor:
                result.append((cursor, b[k][0]))
            cursor = max(cursor, b[k][1])
            k += 1
        if cursor < end:
            result.append((cursor, end))
    return result


@dataclass(frozen=True)
class Member:
    sub: str
    busy: tuple[Interval, ...] = ()
    # Each entry is a list of windows the member is limited to (their own available_periods,
    # their managed availability); all of them apply. Empty: only the query periods.
    limits: tuple[tuple[Interval, ...], ...] = ()


@dataclass(frozen=True)
class Group:
    subs: tuple[str, ...]
    required: int  # how many of them must be free; len(subs) for "all"


@dataclass(frozen=True)
class AvailabilityQuery:
    members: tuple[Member, ...]  # every member once, in the order of the request
    groups: tuple[Group, ...]
    query_periods: tuple[Interval, ...]
    duration: int
    buffer_before: int = 0
    buffer_after: int = 0
    start_interval: int | None = None
    response_format: str = PERIODS
    max_results: int = 512
    query_slots: tuple[int, ...] | None = None  # fixed slot starts instead of a grid


@dataclass(frozen=True)
class Available:
    start: int
    end: int
    participants: tuple[str, ...]  # in request order


def free_time(member: Member, query: AvailabilityQuery) -> list[Interval]:
    """The minutes at which `member` may be booked (see the module docstring)."""
    windows = merge(query.query_periods)
    for limit in member.limits:
        windows = intersect(windows, merge(limit))
    widened = merge((s - query.buffer_after, e + query.buffer_before) for s, e in member.busy)
    return subtract(windows, widened)


def _start_ranges(free: Sequence[Interval], duration: int) -> list[Interval]:
    """Where a slot of `duration` may start inside `free`: [a, b - duration + 1)."""
    return [(a, b - duration + 1) for a, b in free if b - a >= duration]


def _first_on_grid(start: int, interval: int | None) -> int:
    if not interval:
        return start
    return -(-start // interval) * interval


class _Masks:
    """Bit i stands for members[i]; a group is met when enough of its bits are set."""

    def __init__(self, query: AvailabilityQuery):
        self.subs = [m.sub for m in query.members]
        index = {sub: i for i, sub in enumerate(self.subs)}
        self.groups = [
            (sum(1 << index[sub] for sub in group.subs), group.required) for group in query.groups
        ]

    def meets(self, mask: int) -> bool:
        return all((mask & bits).bit_count() >= required for bits, required in self.groups)

    def participants(self, mask: int) -> tuple[str, ...]:
        return tuple(sub for i, sub in enumerate(self.subs) if mask >> i & 1)


def _segments(ranges: list[list[Interval]]) -> list[tuple[int, int, int]]:
    """Split time where any member's start ranges begin or end: (start, end, mask of members
    who may start a slot there)."""
    edges: list[tuple[int, int]] = []
    for i, member_ranges in enumerate(ranges):
        for a, b in member_ranges:
            edges.append((a, 1 << i))
            edges.append((b, -(1 << i)))
    edges.sort()
    segments, mask, k = [], 0, 0
    while k < len(edges):
        at = edges[k][0]
        while k < len(edges) and edges[k][0] == at:
            mask += edges[k][1]
            k += 1
        if k < len(edges) and mask:
            segments.append((at, edges[k][0], mask))
    return segments


def _mask_at(ranges: list[list[Interval]], start: int) -> int:
    mask = 0
    for i, member_ranges in enumerate(ranges):
        k = bisect_right(member_ranges, (start, INFINITY)) - 1
        if k >= 0 and member_ranges[k][0] <= start < member_ranges[k][1]:
            mask |= 1 << i
    return mask


def _slot_starts(query, ranges, masks, *, first_only: bool = False) -> Iterator[tuple[int, int]]:
    """(start, mask) of the available slots in time order; with `first_only`, only the first
    of each stretch of starts that share a mask (all that periods need)."""
    if query.query_slots is not None:
        for start in sorted(set(query.query_slots)):
            mask = _mask_at(ranges, start)
            if mask and masks.meets(mask):
                yield start, mask
        return
    step = query.start_interval or 1
    for a, b, mask in _segments(ranges):
        if masks.meets(mask):
            first = _first_on_grid(a, query.start_interval)
            yield from (
                (s, mask) for s in range(first, min(b, first + 1) if first_only else b, step)
            )


def _periods(query, free, starts, masks) -> list[Available]:
    """One period per (participants, stretch they share) that holds an available slot."""
    if query.query_slots is not None:  # a requested slot is its own period
        return [Available(s, s + query.duration, masks.participants(m)) for s, m in starts]
    shared: dict[int, list[Interval]] = {}
    found: set[tuple[int, int, int]] = set()
    for start, mask in starts:
        if mask not in shared:
            members = [f for i, f in enumerate(free) if mask >> i & 1]
            together = members[0]
            for other in members[1:]:
                together = intersect(together, other)
            shared[mask] = together
        stretches = shared[mask]
        a, b = stretches[bisect_right(stretches, (start, INFINITY)) - 1]
        found.add((_first_on_grid(a, query.start_interval), b, mask))
    return [Available(a, b, masks.participants(mask)) for a, b, mask in found]


def find_available(query: AvailabilityQuery) -> list[Available]:
    """The available periods or slots of `query`, sorted, at most `max_results`."""
    masks = _Masks(query)
    free = [free_time(member, query) for member in query.members]
    ranges = [_start_ranges(f, query.duration) for f in free]
    if query.response_format == PERIODS:
        starts = _slot_starts(query, ranges, masks, first_only=True)
        results = _periods(query, free, starts, masks)
    else:
        results, taken_until = [], None
        for start, mask in _slot_starts(query, ranges, masks):
            if query.response_format == SLOTS and taken_until is not None and start < taken_until:
                continue
            results.append(Available(start, start + query.duration, masks.participants(mask)))
            taken_until = start + query.duration
            if len(results) == query.max_results:
                break
    order = {sub: i for i, sub in enumerate(masks.subs)}
    results.sort(key=lambda r: (r.start, r.end, [order[s] for s in r.participants]))
    return results[: query.max_results]


@dataclass(frozen=True)
class SequenceStep:
    """One step of a sequence: its own query (members, groups, windows, duration, buffers,
    grid), and how long after the previous step ends it may start."""

    sequence_id: str
    query: AvailabilityQuery
    min_gap: int = 0
    max_gap: int | None = None  # None: any time within the step's windows


@dataclass(frozen=True)
class SequenceSlot:
    sequence_id: str
    start: int
    end: int
    participants: tuple[str, ...]


MAX_SEQUENCE_ATTEMPTS = 100_000  # a bound on the search, whatever the windows


def _step_slots(step: SequenceStep) -> list[tuple[int, int]]:
    query = step.query
    masks = _Masks(query)
    ranges = [_start_ranges(free_time(m, query), query.duration) for m in query.members]
    return [(s, mask) for s, mask in _slot_starts(query, ranges, masks)]


def find_sequences(steps: Sequence[SequenceStep], limit: int) -> list[list[SequenceSlot]]:
    """Up to `limit` sequences, earliest first: one available slot per step in order, each
    step starting `min_gap` to `max_gap` minutes after the previous one ends. The first steps
    of two answers do not overlap. For each first slot the search takes, step by step, the
    earliest slot that still lets every later step fit."""
    slots = [_step_slots(step) for step in steps]
    starts = [[s for s, _ in step_slots] for step_slots in slots]
    masks = [_Masks(step.query) for step in steps]
    attempts = 0

    def chain(k: int, previous_end: int) -> list[tuple[int, int]] | None:
        nonlocal attempts
        if k == len(steps):
            return []
        step = steps[k]
        i = bisect_right(starts[k], previous_end + step.min_gap - 1)
        while i < len(slots[k]):
            start, mask = slots[k][i]
            if step.max_gap is not None and start > previous_end + step.max_gap:
                return None
            attempts += 1
            if attempts > MAX_SEQUENCE_ATTEMPTS:
                return None
            rest = chain(k + 1, start + step.query.duration)
            if rest is not None:
                return [(start, mask), *rest]
            i += 1
        return None

    found, first_free_at = [], None
    for start, mask in slots[0] if steps else []:
        if len(found) == limit or attempts > MAX_SEQUENCE_ATTEMPTS:
            break
        if first_free_at is not None and start < first_free_at:
            continue
        rest = chain(1, start + steps[0].query.duration)
        if rest is None:
            continue
        picked = [(start, mask), *rest]
        found.append(
            [
                SequenceSlot(
                    steps[k].sequence_id, s, s + steps[k].query.duration, masks[k].participants(m)
                )
                for k, (s, m) in enumerate(picked)
            ]
        )
        first_free_at = start + steps[0].query.duration
    return found
