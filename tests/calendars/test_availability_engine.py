"""The availability engine against a brute-force oracle on a minute grid (hypothesis).

The oracle reads the definitions of calendars/availability/engine.py literally: sets of free
minutes, every candidate start tried, every stretch walked minute by minute. Any difference
between the two is a bug in one of them.
"""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from calendars.availability.engine import (
    FORMATS,
    OVERLAPPING_SLOTS,
    PERIODS,
    SLOTS,
    AvailabilityQuery,
    Available,
    Group,
    Member,
    SequenceSlot,
    SequenceStep,
    find_available,
    find_sequences,
)

# A real moment (2026-03-29 00:00 UTC, a DST change in Europe) so that the grid is the clock's.
BASE = 29_578_560
SPAN = 360
INTERVALS = (None, 5, 10, 15, 20, 30, 60)


@st.composite
def intervals(draw, max_size=6, max_length=120):
    found = []
    for _ in range(draw(st.integers(0, max_size))):
        start = BASE + draw(st.integers(-30, SPAN))
        found.append((start, start + draw(st.integers(1, max_length))))
    return tuple(found)


@st.composite
def queries(draw):
    subs = [f"acc_{i}" for i in range(draw(st.integers(1, 4)))]
    members = tuple(
        Member(
            sub=sub,
            busy=draw(intervals()),
            limits=tuple(
                draw(intervals(max_size=3, max_length=240)) for _ in range(draw(st.integers(0, 2)))
            ),
        )
        for sub in subs
    )
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        chosen = draw(st.lists(st.sampled_from(subs), min_size=1, unique=True))
        groups.append(Group(subs=tuple(chosen), required=draw(st.integers(1, len(chosen)))))
    # Every member is in some group, as the query layer guarantees.
    grouped = {sub for group in groups for sub in group.subs}
    members = tuple(m for m in members if m.sub in grouped)
    duration = draw(st.integers(1, 90))
    query_slots = None
    if draw(st.booleans()) and draw(st.booleans()):
        query_slots = tuple(
            BASE + draw(st.integers(0, SPAN)) for _ in range(draw(st.integers(1, 6)))
        )
        periods = tuple((s, s + duration) for s in query_slots)
    else:
        periods = draw(intervals(max_size=3, max_length=SPAN))
    return AvailabilityQuery(
        members=members,
        groups=tuple(groups),
        query_periods=periods,
        duration=duration,
        buffer_before=draw(st.sampled_from((0, 0, 5, 15, 30))),
        buffer_after=draw(st.sampled_from((0, 0, 10, 15, 45))),
        start_interval=draw(st.sampled_from(INTERVALS)),
        response_format=draw(st.sampled_from(FORMATS)),
        max_results=draw(st.sampled_from((1, 3, 10, 512))),
        query_slots=query_slots,
    )


def minutes(intervals_):
    return {t for a, b in intervals_ for t in range(a, b)}


def oracle(q: AvailabilityQuery) -> list[Available]:
    free = []
    for member in q.members:
        allowed = minutes(q.query_periods)
        for limit in member.limits:
            allowed &= minutes(limit)
        blocked = minutes((a - q.buffer_after, b + q.buffer_before) for a, b in member.busy)
        free.append(allowed - blocked)
    subs = [m.sub for m in q.members]

    def free_for(s, i):
        return all(t in free[i] for t in range(s, s + q.duration))

    def meets(participants):
        return all(sum(sub in participants for sub in g.subs) >= g.required for g in q.groups)

    if q.query_slots is not None:
        candidates = sorted(set(q.query_slots))
    else:
        everything = minutes(q.query_periods)
        step = q.start_interval or 1
        candidates = sorted(t for t in everything if t % step == 0)
    starts = []
    for s in candidates:
        participants = tuple(sub for i, sub in enumerate(subs) if free_for(s, i))
        if participants and meets(participants):
            starts.append((s, participants))

    results = []
    if q.response_format == PERIODS and q.query_slots is None:
        found = set()
        for s, participants in starts:
            together = set.intersection(*(free[subs.index(sub)] for sub in participants))
            a, b = s, s
            while a - 1 in together:
                a -= 1
            while b in together:
                b += 1
            step = q.start_interval or 1
            while a % step:
                a += 1
            found.add((a, b, participants))
        results = [Available(a, b, p) for a, b, p in found]
    elif q.response_format == SLOTS:
        until = None
        for s, participants in starts:
            if until is None or s >= until:
                results.append(Available(s, s + q.duration, participants))
                until = s + q.duration
    else:  # overlapping slots, and query slots as periods
        results = [Available(s, s + q.duration, p) for s, p in starts]
    results.sort(key=lambda r: (r.start, r.end, [subs.index(s) for s in r.participants]))
    return results[: q.max_results]


@settings(max_examples=400, deadline=None)
@given(queries())
def test_engine_matches_minute_grid_oracle(query):
    assert find_available(query) == oracle(query)


def test_engine_buffers_keep_slot_clear_of_events():
    # Busy 10:00-11:00; 30 minutes before a slot and 15 after it must be free: the last
    # slot before ends at 09:45, the first after starts at 11:30.
    busy = ((BASE + 600, BASE + 660),)
    query = AvailabilityQuery(
        members=(Member("acc_a", busy=busy),),
        groups=(Group(("acc_a",), 1),),
        query_periods=((BASE + 540, BASE + 780),),
        duration=30,
        buffer_before=30,
        buffer_after=15,
        start_interval=15,
        response_format=OVERLAPPING_SLOTS,
    )
    starts = [r.start - BASE for r in find_available(query)]
    assert starts == [540, 555, 690, 705, 720, 735, 750]


@st.composite
def sequences(draw):
    steps = []
    for k in range(draw(st.integers(1, 3))):
        query = draw(queries())
        query = AvailabilityQuery(
            **{
                **query.__dict__,
                "response_format": OVERLAPPING_SLOTS,
                "max_results": 10_000,
                "query_slots": None,
                "start_interval": draw(st.sampled_from((15, 30, 60))),
                "query_periods": query.query_periods or ((BASE, BASE + SPAN),),
            }
        )
        gap = draw(st.integers(0, 60))
        wider = draw(st.one_of(st.none(), st.integers(0, 120)))
        steps.append(SequenceStep(f"s{k}", query, gap, None if wider is None else gap + wider))
    return steps, draw(st.integers(1, 5))


@settings(max_examples=150, deadline=None)
@given(sequences())
def test_sequences_match_brute_force(case):
    steps, limit = case
    options = [[(r.start, r.participants) for r in oracle(step.query)] for step in steps]

    def fits(chain):
        for k in range(1, len(chain)):
            end = chain[k - 1][0] + steps[k - 1].query.duration
            gap = chain[k][0] - end
            if gap < steps[k].min_gap or (steps[k].max_gap is not None and gap > steps[k].max_gap):
                return False
        return True

    expected, free_from = [], None
    for first in options[0]:
        if len(expected) == limit:
            break
        if free_from is not None and first[0] < free_from:
            continue
        chains = [c for c in itertools.product([first], *options[1:]) if fits(c)]
        if chains:
            best = min(chains, key=lambda c: [s for s, _ in c])
            expected.append(
                [
                    SequenceSlot(steps[k].sequence_id, s, s + steps[k].query.duration, p)
                    for k, (s, p) in enumerate(best)
                ]
            )
            free_from = first[0] + steps[0].query.duration
    assert find_sequences(steps, limit) == expected
