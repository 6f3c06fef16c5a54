"""Answering an availability request from the cache (docs/api.md, Availability).

`answer_availability` resolves the members (their accounts, calendars and managed
availability), reads every member's busy rows in one query with the free/busy rule of
GET /v1/free_busy (`Event.objects.busy()`), turns them into whole UTC minutes (all-day
events in the member's zone, exact across DST changes), runs the engine and renders
Cronofy's response with our `stale_members` field. Unknown or unauthorized members and
foreign calendar or rule ids are a 422 naming the member's field.
"""

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import FloatField, Func
from django.utils import timezone

from accounts import scopes
from accounts.ids import format_utc
from accounts.models import Account
from calendars.availability import engine, zones
from calendars.availability.request import (
    MAX_SEQUENCES,
    AvailabilityRequest,
    MemberRequest,
    StepRequest,
)
from calendars.availability.rules import rule_windows
from calendars.freshness import freshness_of
from calendars.models import AvailabilityRule, AvailablePeriod, Calendar, Event
from calendars.writes import FieldErrors

# All-day rows are indexed at 00:00 UTC of their dates; in a member's zone a day starts up to
# 14 hours earlier or 12 later (as in calendars/reads.py), so the busy read is widened by this.
_ALL_DAY_PAD = timedelta(hours=14)


class EpochSeconds(Func):
    """A timestamp as seconds since the epoch, computed by the database: thousands of busy rows
    arrive as numbers instead of datetimes to build (bench/availability.py)."""

    output_field = FloatField()
    arity = 1

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)::float8"
        )

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, template="(julianday(%(expressions)s) - 2440587.5) * 86400.0"
        )


@dataclass
class Participant:
    """One member as the cache knows them."""

    sub: str
    account_pk: int
    zone: ZoneInfo
    options: MemberRequest
    calendar_pks: list[int] = field(default_factory=list)  # the calendars counted as busy
    limits: list[list[engine.Interval]] = field(default_factory=list)


def _ceil_minute(moment: datetime) -> int:
    return math.ceil((moment - zones.EPOCH).total_seconds() / 60)


def _resolve_accounts(request, *, caller_account, application, now, errors) -> dict[str, tuple]:
    """{sub: (account pk, zone)} of the members the caller may ask about: its own account and
    accounts that granted the caller's application free/busy (read_free_busy or a scope that
    implies it). Any other sub is errors.unknown_sub,
    whether or not it exists (no probing for other integrators' accounts)."""
    subs = {member.sub for _, member in request.member_paths}
    listed = Account.objects.filter(public_id__in=subs)
    allowed = listed.authorized_for(application, now=now, scope=scopes.READ_FREE_BUSY)
    if caller_account is not None:
        allowed = allowed | listed.filter(pk=caller_account.pk)
    found = {
        sub: (pk, ZoneInfo(tzid))
        for sub, pk, tzid in allowed.values_list("public_id", "pk", "default_tzid")
    }
    seen: dict[str, MemberRequest] = {}
    for path, member in request.member_paths:
        if member.sub not in found:
            errors.add(
                f"{path}.sub",
                "errors.unknown_sub",
                f"{member.sub} is not an account that authorized this application",
            )
        elif seen.setdefault(member.sub, member) != member:
            errors.add(
                path, "errors.inconsistent_member", "a member listed twice needs the same options"
            )
    return found


def _participants(request, found, window, errors) -> list[Participant]:
    """The members with the calendars counted for them and their managed availability; at
    most three queries whatever the number of members."""
    participants: dict[str, Participant] = {}
    for _, member in request.member_paths:
        if member.sub in found and member.sub not in participants:
            pk, zone = found[member.sub]
            participants[member.sub] = Participant(member.sub, pk, zone, member)
    by_account = {p.account_pk: p for p in participants.values()}
    calendars: dict[int, dict[str, int]] = defaultdict(dict)
    for pk, public_id, account_pk in (
        Calendar.objects.live()
        .filter(profile__account_id__in=by_account)
        .values_list("pk", "public_id", "profile__account_id")
    ):
        calendars[account_pk][public_id] = pk
    managed = [p for p in participants.values() if _uses_managed(p.options)]
    rules, periods = _managed_rows(managed, window)
    paths = {member.sub: path for path, member in reversed(request.member_paths)}
    for participant in participants.values():
        own = calendars[participant.account_pk]
        path, options = paths[participant.sub], participant.options
        chosen = options.calendar_ids
        if chosen is not None and not set(chosen) <= own.keys():
            errors.add(
                f"{path}.calendar_ids",
                "errors.unknown_calendar",
                "calendar_ids must name calendars of this member",
            )
            continue
        if options.available_periods is not None:
            participant.limits.append(
                [
                    (_ceil_minute(p.start), zones.to_minutes(p.end))
                    for p in options.available_periods
                ]
            )
        if _uses_managed(options):
            own_rules = rules.get(participant.account_pk, {})
            wanted = options.availability_rule_ids
            if wanted is not None and not set(wanted) <= own_rules.keys():
                errors.add(
                    f"{path}.availability_rule_ids",
                    "errors.unknown_availability_rule",
                    "availability_rule_ids must name rules of this member",
                )
                continue
            picked = [own_rules[i] for i in (wanted if wanted is not None else own_rules)]
            windows = [w for rule in picked for w in rule_windows(rule, window)]
            windows += periods.get(participant.account_pk, [])
            participant.limits.append(windows)
            if chosen is None:  # the rules may name the calendars that count
                named = {c for rule in picked for c in rule.calendar_ids}
                chosen = tuple(c for c in named if c in own) or None
        participant.calendar_pks = [own[c] for c in chosen] if chosen else list(own.values())
    return list(participants.values())


def _uses_managed(options: MemberRequest) -> bool:
    return options.managed_availability or options.availability_rule_ids is not None


def _managed_rows(managed: list[Participant], window: tuple[datetime, datetime]):
    """({account pk: {rule id: rule}}, {account pk: [available period minutes]})."""
    if not managed:
        return {}, {}
    pks = [p.account_pk for p in managed]
    rules: dict[int, dict] = defaultdict(dict)
    for rule in AvailabilityRule.objects.filter(account_id__in=pks):
        rules[rule.account_id][rule.rule_id] = rule
    periods: dict[int, list] = defaultdict(list)
    for account_pk, start, end in AvailablePeriod.objects.filter(
        account_id__in=pks, start__lt=window[1], end__gt=window[0]
    ).values_list("account_id", "start", "end"):
        periods[account_pk].append((_ceil_minute(start), zones.to_minutes(end)))
    return rules, periods


def _busy(participants: list[Participant], window, pad: timedelta) -> dict[int, list]:
    """{account pk: busy intervals in minutes}: every member's calendars at once, in two
    queries (the long events, then the others)."""
    calendar_owner = {pk: p for p in participants for pk in p.calendar_pks}
    if not calendar_owner:
        return {}
    busy_rows = Event.objects.busy().filter(
        account_id__in={p.account_pk for p in participants},
        calendar_id__in=calendar_owner,
        is_deleted=False,
        end__gt=window[0] - pad,
        start__lt=window[1] + pad,
    )
    # Two scans bounded on start from both sides (the short events, from event_busy_start_idx
    # alone) instead of one reading every member's history (EventQuerySet.split_by_reach).
    rows = [
        row
        for part in busy_rows.split_by_reach(window[0] - pad)
        for row in part.annotate(
            start_s=EpochSeconds("start"), end_s=EpochSeconds("end")
        ).values_list("calendar_id", "start_s", "end_s", "is_all_day", "start_date", "end_date")
    ]
    low, high = zones.to_minutes(window[0] - pad), _ceil_minute(window[1] + pad)
    pieces = {str(p.zone): zones.offset_pieces(p.zone, low, high) for p in participants}
    busy: dict[int, list] = defaultdict(list)
    for calendar_pk, start, end, is_all_day, start_date, end_date in rows:
        owner = calendar_owner[calendar_pk]
        if is_all_day and start_date is not None and end_date is not None:
            busy[owner.account_pk].extend(
                zones.wall_to_utc(
                    pieces[str(owner.zone)],
                    zones.day_minutes(start_date),
                    zones.day_minutes(end_date),
                )
            )
        else:
            # Rounded to the millisecond first: SQLite's julianday arithmetic is a float.
            busy[owner.account_pk].append(
                (int(round(start, 3) // 60), math.ceil(round(end, 3) / 60))
            )
    return busy


def _stale_members(participants: list[Participant], now: datetime) -> list[dict]:
    """Members whose answer comes from a cache we cannot vouch for (calendars/freshness.py),
    with the calendars that make it so."""
    freshness = freshness_of([pk for p in participants for pk in p.calendar_pks], now=now)
    public_ids = (
        dict(Calendar.objects.filter(pk__in=freshness).values_list("pk", "public_id"))
        if any(not f.is_trustworthy for f in freshness.values())
        else {}
    )
    stale = []
    for participant in participants:
        calendars = [
            {"calendar_id": public_ids[pk], **freshness[pk].to_payload()}
            for pk in participant.calendar_pks
            if not freshness[pk].is_trustworthy
        ]
        if calendars:
            stale.append({"sub": participant.sub, "calendars": calendars})
    return stale


def _render(found: list[engine.Available]) -> list[dict]:
    return [
        {
            "start": format_utc(zones.from_minutes(item.start)),
            "end": format_utc(zones.from_minutes(item.end)),
            "participants": [{"sub": sub} for sub in item.participants],
        }
        for item in found
    ]


@dataclass(frozen=True)
class _Loaded:
    participants: list[Participant]
    busy: dict[int, list]
    stale_members: list[dict]

    def engine_members(self, subs=None) -> tuple[engine.Member, ...]:
        return tuple(
            engine.Member(
                sub=p.sub,
                busy=tuple(self.busy.get(p.account_pk, ())),
                limits=tuple(tuple(limit) for limit in p.limits),
            )
            for p in self.participants
            if subs is None or p.sub in subs
        )


def _load(request: AvailabilityRequest, *, caller_account, application, now) -> _Loaded:
    """Members, their busy minutes and staleness; a 422 naming every member problem."""
    errors = FieldErrors()
    found = _resolve_accounts(
        request, caller_account=caller_account, application=application, now=now, errors=errors
    )
    window = (
        min(p.start for p in request.query_periods),
        max(p.end for p in request.query_periods),
    )
    participants = _participants(request, found, window, errors)
    errors.raise_any()
    pad = _ALL_DAY_PAD + timedelta(minutes=max(request.buffer_before, request.buffer_after))
    busy = _busy(participants, window, pad)
    return _Loaded(participants, busy, _stale_members(participants, now))


def _engine_query(request: AvailabilityRequest, members) -> engine.AvailabilityQuery:
    if request.query_slots is not None:
        slots = tuple(_ceil_minute(s) for s in request.query_slots)
        query_periods = tuple((s, s + request.duration) for s in slots)
    else:
        slots = None
        query_periods = tuple(
            (_ceil_minute(p.start), zones.to_minutes(p.end)) for p in request.query_periods
        )
    return engine.AvailabilityQuery(
        members=members,
        groups=tuple(
            engine.Group(subs=tuple(m.sub for m in g.members), required=g.required)
            for g in request.groups
        ),
        query_periods=query_periods,
        duration=request.duration,
        buffer_before=request.buffer_before,
        buffer_after=request.buffer_after,
        start_interval=request.start_interval,
        response_format=request.response_format,
        max_results=request.max_results,
        query_slots=slots,
    )


def answer_availability(
    request: AvailabilityRequest, *, caller_account, application, now: datetime | None = None
) -> dict:
    """The response body of POST /v1/availability for `request`, asked by `application`
    (acting for `caller_account`, or for itself with its client secret)."""
    now = now or timezone.now()
    loaded = _load(request, caller_account=caller_account, application=application, now=now)
    query = _engine_query(request, loaded.engine_members())
    key = "available_periods" if request.response_format == engine.PERIODS else "available_slots"
    return {key: _render(engine.find_available(query)), "stale_members": loaded.stale_members}


def answer_sequenced(
    steps: tuple[StepRequest, ...], *, caller_account, application, now: datetime | None = None
) -> dict:
    """The response body of POST /v1/sequenced_availability: the members of every step are
    loaded together (one busy read), then each step is a query of its own."""
    now = now or timezone.now()
    every = AvailabilityRequest(
        groups=tuple(g for step in steps for g in step.request.groups),
        group_paths=tuple(p for step in steps for p in step.request.group_paths),
        duration=max(step.request.duration for step in steps),
        query_periods=tuple(p for step in steps for p in step.request.query_periods),
        buffer_before=max(step.request.buffer_before for step in steps),
        buffer_after=max(step.request.buffer_after for step in steps),
    )
    loaded = _load(every, caller_account=caller_account, application=application, now=now)
    engine_steps = []
    for step in steps:
        subs = {m.sub for g in step.request.groups for m in g.members}
        query = _engine_query(step.request, loaded.engine_members(subs))
        engine_steps.append(
            engine.SequenceStep(step.sequence_id, query, step.min_gap, step.max_gap)
        )
    sequences = engine.find_sequences(engine_steps, MAX_SEQUENCES)
    return {
        "sequences": [
            {
                "sequence": [
                    {
                        "sequence_id": slot.sequence_id,
                        "start": format_utc(zones.from_minutes(slot.start)),
                        "end": format_utc(zones.from_minutes(slot.end)),
                        "participants": [{"sub": sub} for sub in slot.participants],
                    }
                    for slot in sequence
                ]
            }
            for sequence in sequences
        ],
        "stale_members": loaded.stale_members,
    }
