"""Desired state -> iCalendar: the text the write reconciler PUTs to CalDAV servers.

`merge_desired` builds a new VCALENDAR for a managed event, or merges the desired state into
the provider's current iCalendar text, touching only the properties we manage: other attendees,
X- properties, alarms we were not asked to change and recurrence instances (RECURRENCE-ID
overrides) round-trip unchanged (docs/providers.md, Writes). `set_participation` changes only
the end-user's PARTSTAT. Both return `Rendered(payload, changed)`: `changed` False means the
provider already holds that state (ignoring DTSTAMP, LAST-MODIFIED and SEQUENCE), so the caller
makes no provider call. This is the CalDAV adapter's business (its render_event and
render_participation).

`desired` is ManagedEventWrite.desired (see its docstring).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar

from sync.providers import recurrence
from sync.providers.base import InvalidData, Rendered
from sync.providers.icalendar.normalize import InvalidCalendarData, uid_of

PRODID = "-//calsync//managed events//EN"
# Properties that change on every write: left out when deciding whether anything changed.
_VOLATILE = ("DTSTAMP", "LAST-MODIFIED", "SEQUENCE")
_UTC_NAMES = {"", "UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z"}
_STATUS = {"confirmed": "CONFIRMED", "tentative": "TENTATIVE", "cancelled": "CANCELLED"}
_TRANSP = {"opaque": "OPAQUE", "transparent": "TRANSPARENT"}
_PARTSTAT = {"accepted": "ACCEPTED", "tentative": "TENTATIVE", "declined": "DECLINED"}


class ParticipantNotFound(InvalidData, ValueError):
    """The event has no attendee with one of the end-user's addresses."""


def _parse(ical: str) -> icalendar.Calendar:
    try:
        return icalendar.Calendar.from_ical(ical)
    except Exception as exc:  # noqa: BLE001 - icalendar raises assorted errors on bad input
        raise InvalidCalendarData(str(exc)[:200]) from exc


def _master(calendar: icalendar.Calendar, uid: str):
    """The VEVENT of `uid` without RECURRENCE-ID (the single event or the series master)."""
    for component in calendar.walk("VEVENT"):
        if uid_of(component) == uid and component.get("RECURRENCE-ID") is None:
            return component
    return None


# What an override copied from its master must not keep: it is one instance, not a series.
_SERIES_ONLY = ("RRULE", "RDATE", "EXDATE", "RECURRENCE-ID")


def _recurrence_id(master, instance: datetime):
    """The RECURRENCE-ID of the instance starting (originally) at `instance` (UTC), in the
    master's own form: its zone for a zoned DTSTART, UTC for a UTC one, the date for an
    all-day series (the cache keeps an all-day instance as its midnight in the account's zone,
    within half a day of UTC midnight), local time for a floating one."""
    start = master.decoded("DTSTART")
    if not isinstance(start, datetime):
        return (instance.astimezone(UTC) + timedelta(hours=12)).date()
    if start.tzinfo is None:
        return instance.astimezone(UTC).replace(tzinfo=None)
    return instance.astimezone(start.tzinfo)


def _same_instance(component, wanted) -> bool:
    return _same_moment(component.decoded("RECURRENCE-ID"), wanted)


def _override(calendar, master, uid: str, instance: datetime, *, create: bool):
    """The VEVENT overriding one instance of `uid`; with `create`, a new one copied from the
    master (its content, the instance's times) when there is none yet."""
    wanted = _recurrence_id(master, instance)
    for component in calendar.walk("VEVENT"):
        if (
            uid_of(component) == uid
            and component.get("RECURRENCE-ID") is not None
            and _same_instance(component, wanted)
        ):
            return component
    if not create:
        return None
    override = icalendar.Event.from_ical(master.to_ical())
    for name in _SERIES_ONLY:
        override.pop(name, None)
    start, end = master.decoded("DTSTART"), master.decoded("DTEND", None)
    length = (end - start) if end is not None else master.decoded("DURATION", timedelta(0))
    for name in ("DTSTART", "DTEND", "DURATION"):
        override.pop(name, None)
    override.add("RECURRENCE-ID", wanted)
    override.add("DTSTART", wanted)
    override.add("DTEND", wanted + length)
    calendar.add_component(override)
    return override


def _delete_instance(calendar, master, uid: str, instance: datetime, now: datetime) -> bool:
    """EXDATE the instance on the master and drop its override; False if already so."""
    wanted = _recurrence_id(master, instance)
    override = _override(calendar, master, uid, instance, create=False)
    excluded = any(
        _same_exdate(value, wanted)
        for entry in _as_list(master.get("EXDATE"))
        for value in entry.dts
    )
    if excluded and override is None:
        return False
    if override is not None:
        calendar.subcomponents.remove(override)
    if not excluded:
        master.add("EXDATE", wanted)
        _stamp(master, now, bump_sequence=True)
    return True


def _same_exdate(value, wanted) -> bool:
    return _same_moment(value.dt, wanted)


def _same_moment(moment, wanted) -> bool:
    """Equal instants, or equal dates; a floating time compares by its wall clock."""
    both_times = isinstance(wanted, datetime) and isinstance(moment, datetime)
    if both_times and (wanted.tzinfo is None or moment.tzinfo is None):
        return moment.replace(tzinfo=None) == wanted.replace(tzinfo=None)
    return moment == wanted


def _signature(component) -> bytes:
    copy = icalendar.Event.from_ical(component.to_ical())
    for name in _VOLATILE:
        copy.pop(name, None)
    return copy.to_ical()


def _zone(tzid: str):
    if tzid in _UTC_NAMES:
        return UTC
    try:
        return ZoneInfo(tzid)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC  # an unknown zone: write UTC instants rather than a TZID servers reject


def _instant(value: str, tzid: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(_zone(tzid))


def _replace(component, name: str, value, parameters: Mapping | None = None) -> None:
    component.pop(name, None)
    if value not in (None, ""):
        component.add(name, value, parameters=dict(parameters) if parameters else None)


def _mailto(email: str) -> str:
    return f"mailto:{email}"


def _address(value) -> str:
    text = str(value).strip()
    return (text[7:] if text.lower().startswith("mailto:") else text).lower()


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _apply_times(event, desired: Mapping) -> None:
    for name in ("DTSTART", "DTEND", "DURATION"):
        event.pop(name, None)
    if desired.get("is_all_day"):
        event.add("DTSTART", date.fromisoformat(desired["start_date"]))
        event.add("DTEND", date.fromisoformat(desired["end_date"]))  # exclusive end
    else:
        tzid = desired.get("tzid") or "Etc/UTC"
        event.add("DTSTART", _instant(desired["start"], tzid))
        event.add("DTEND", _instant(desired["end"], tzid))


def _apply_content(event, desired: Mapping) -> None:
    if "summary" in desired:
        _replace(event, "SUMMARY", desired["summary"])
    if "description" in desired:
        _replace(event, "DESCRIPTION", desired["description"])
    if "location_description" in desired:
        _replace(event, "LOCATION", desired["location_description"])
    if "location_lat" in desired or "location_long" in desired:
        lat, long = desired.get("location_lat"), desired.get("location_long")
        event.pop("GEO", None)
        if lat not in (None, "") and long not in (None, ""):
            event.add("GEO", (float(lat), float(long)))
    if "url" in desired:
        _replace(event, "URL", desired["url"])
    if "is_private" in desired:
        # We manage only "private or not": a CONFIDENTIAL set elsewhere is private too.
        current = str(event.get("CLASS", "")).upper()
        if desired["is_private"]:
            if current not in ("PRIVATE", "CONFIDENTIAL"):
                _replace(event, "CLASS", "PRIVATE")
        elif current in ("PRIVATE", "CONFIDENTIAL"):
            event.pop("CLASS", None)
    if desired.get("transparency") in _TRANSP:
        _replace(event, "TRANSP", _TRANSP[desired["transparency"]])
    if desired.get("status") in _STATUS:
        _replace(event, "STATUS", _STATUS[desired["status"]])
    if desired.get("color"):
        _replace(event, "COLOR", desired["color"])  # RFC 7986 §5.9


def _apply_recurrence(event, desired: Mapping) -> None:
    """A managed event's rule (its desired state always says: None is a single event); an
    external event's desired state has no `recurrence`, and its RRULE is left alone."""
    if "recurrence" not in desired:
        return
    event.pop("RRULE", None)
    rule = desired["recurrence"]
    if rule:
        text = recurrence.rrule(
            rule, tzid=desired.get("tzid") or "Etc/UTC", is_all_day=bool(desired.get("is_all_day"))
        )
        event.add("RRULE", icalendar.vRecur.from_ical(text))


def _apply_conferencing(event, desired: Mapping) -> None:
    """An explicit join URL as RFC 7986's CONFERENCE (VALUE=URI, FEATURE=VIDEO, LABEL the
    provider's name); `none` removes it; absent (None) leaves what the event has."""
    conferencing = desired.get("conferencing")
    if conferencing is None:
        return
    event.pop("CONFERENCE", None)
    if conferencing.get("join_url"):
        parameters = {"VALUE": "URI", "FEATURE": "VIDEO"}
        if conferencing.get("provider_description"):
            parameters["LABEL"] = conferencing["provider_description"]
        event.add("CONFERENCE", icalendar.vUri(conferencing["join_url"]), parameters=parameters)


def _apply_reminders(event, desired: Mapping, *, exists: bool) -> None:
    reminders = desired.get("reminders")
    if reminders is None:
        return  # null: leave the alarms as they are
    if exists and desired.get("reminders_create_only"):
        return
    event.subcomponents = [c for c in event.subcomponents if c.name != "VALARM"]
    summary = str(event.get("SUMMARY", "")) or "Reminder"
    for minutes in reminders:
        alarm = icalendar.Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("DESCRIPTION", summary)
        alarm.add("TRIGGER", timedelta(minutes=-int(minutes)))
        event.add_component(alarm)


def _apply_attendees(event, desired: Mapping, *, organizer_email: str) -> None:
    remove = {(a.get("email") or "").lower() for a in desired.get("attendees_remove") or []}
    invite = desired.get("attendees_invite") or []
    attendees = [a for a in _as_list(event.get("ATTENDEE")) if _address(a) not in remove]
    present = {_address(a) for a in attendees}
    added = False
    for person in invite:
        email = (person.get("email") or "").strip()
        if not email or email.lower() in present or email.lower() in remove:
            continue
        params = {"CUTYPE": "INDIVIDUAL", "ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION"}
        if person.get("display_name"):
            params["CN"] = person["display_name"]
        params["RSVP"] = "TRUE"
        attendee = icalendar.vCalAddress(_mailto(email))
        attendee.params.update(params)
        attendees.append(attendee)
        present.add(email.lower())
        added = True
    if not (remove or added):
        return
    event.pop("ATTENDEE", None)
    for attendee in attendees:
        event.add("ATTENDEE", attendee, encode=0)
    if attendees and event.get("ORGANIZER") is None and organizer_email:
        # RFC 5545 §3.8.4.1: an event with attendees names its organizer (the calendar owner).
        event.add("ORGANIZER", icalendar.vCalAddress(_mailto(organizer_email)), encode=0)


def _stamp(event, now: datetime, *, bump_sequence: bool) -> None:
    now = now.astimezone(UTC).replace(microsecond=0)
    _replace(event, "DTSTAMP", now)
    _replace(event, "LAST-MODIFIED", now)
    if bump_sequence:
        sequence = int(event.get("SEQUENCE", 0) or 0)
        _replace(event, "SEQUENCE", sequence + 1)


# The years a series' VTIMEZONE covers past its latest date (and at least icalendar's default
# end, 2038): a series may repeat for ever, and a VTIMEZONE cannot.
SERIES_ZONE_YEARS = 10
# The longest span a VTIMEZONE is built for: a provider's DTEND in 9999 would otherwise make
# a 266 KB zone that takes 0.3 s to build.
MAX_ZONE_YEARS = 60
# The COMMENT icalendar writes into a VTIMEZONE it builds, naming the dates it covers: how a
# zone we wrote when the event was created is told from one the provider wrote.
_BUILT_RANGE = re.compile(r"This timezone only works from (\d{4}-\d\d-\d\d) to (\d{4}-\d\d-\d\d)\.")


@lru_cache(maxsize=256)
def _vtimezone(tzid: str, first: date, last: date) -> icalendar.Timezone | None:
    """The VTIMEZONE of the IANA zone `tzid` covering [first, last), built from tzdata (None:
    not an IANA zone). Not `Timezone.from_tzid`, which prefers a definition icalendar cached
    from any calendar the process parsed, however partial. Building one walks the zone's
    transitions (about 2 ms, once per write before this was cached). The component is shared
    by every calendar that includes it, which is safe because a rendered calendar is
    serialized at once and never changed after."""
    try:
        zone = ZoneInfo(tzid)
        return icalendar.Timezone.from_tzinfo(zone, tzid=tzid, first_date=first, last_date=last)
    except (ZoneInfoNotFoundError, ValueError, OverflowError):
        return None


def _january(year: int) -> date:
    return date(min(max(year, 1), 9999), 1, 1)


def _years(event) -> list[int]:
    """The years an event's own date-times name (a property given twice counts twice)."""
    values = []
    for name in ("DTSTART", "DTEND", "RECURRENCE-ID"):
        found = event.get(name)
        values += [
            getattr(prop, "dt", None) for prop in (found if isinstance(found, list) else [found])
        ]
    start, duration = (
        getattr(event.get("DTSTART"), "dt", None),
        getattr(event.get("DURATION"), "dt", None),
    )
    if isinstance(start, date) and isinstance(duration, timedelta):
        try:
            values.append(start + duration)
        except OverflowError:
            values.append(date.max)
    return [value.year for value in values if isinstance(value, date)]


def _timezone_span(calendar: icalendar.Calendar) -> tuple[date, date]:
    """The dates the calendar's VTIMEZONEs must cover (RFC 5545 asks for the observances of
    the time span its date-times use): from the January before its earliest date to two
    Januaries after its latest; a series SERIES_ZONE_YEARS past its latest date. icalendar's
    default span (1970-2038) made every VTIMEZONE 2.6 KB of past transitions, which we and the
    server parse on every write and every read of the event."""
    years: list[int] = []
    repeats = False
    for event in calendar.walk("VEVENT"):
        years += _years(event)
        repeats = repeats or event.get("RRULE") is not None or event.get("RDATE") is not None
    if not years:
        return icalendar.Timezone.DEFAULT_FIRST_DATE, icalendar.Timezone.DEFAULT_LAST_DATE
    first = _january(min(years) - 1)
    last = _january(max(years) + 2)
    if repeats:
        last = max(icalendar.Timezone.DEFAULT_LAST_DATE, _january(max(years) + SERIES_ZONE_YEARS))
    last = min(max(last, _january(first.year + 3)), _january(first.year + MAX_ZONE_YEARS))
    return first, last


def _built_range(timezone) -> tuple[date, date] | None:
    """The span a VTIMEZONE icalendar built says it covers (None: not one icalendar built)."""
    comments = timezone.get("COMMENT")
    for comment in comments if isinstance(comments, list) else [comments]:
        found = _BUILT_RANGE.fullmatch(str(comment or ""))
        if found:
            return date.fromisoformat(found[1]), date.fromisoformat(found[2])
    return None


def _add_missing_timezones(calendar: icalendar.Calendar) -> None:
    """calendar.add_missing_timezones() over the calendar's own span (_timezone_span), each
    zone's VTIMEZONE built once per process and span (icalendar's own builds it every time).

    A zone icalendar built (we wrote it when the event was created) that no longer covers the
    span (an edit moved the event or made it a series) is built again, and one that nothing
    uses any more (an edit changed the zone) goes; a zone the provider wrote is kept as it
    is."""
    first, last = _timezone_span(calendar)
    # TZID parameters of every property (X-WR-TIMEZONE, a name clients look up, needs none).
    used = calendar.get_used_tzids()
    for timezone in [c for c in calendar.subcomponents if c.name == "VTIMEZONE"]:
        covered = _built_range(timezone)
        if covered is None:
            continue
        tzid = str(timezone.get("TZID", ""))
        outgrown = not (covered[0] <= first and last <= covered[1])
        # Only where a replacement can be built: a zone that is not an IANA one stays.
        if tzid not in used or (outgrown and _vtimezone(tzid, first, last) is not None):
            calendar.subcomponents.remove(timezone)
    missing = calendar.get_missing_tzids()
    position = len(calendar.timezones)
    for tzid in sorted(missing):
        timezone = _vtimezone(tzid, first, last)
        if timezone is not None:
            calendar.subcomponents.insert(position, timezone)
            position += 1


def merge_desired(
    *,
    uid: str,
    desired: Mapping,
    current: str = "",
    organizer_email: str = "",
    now: datetime | None = None,
    instance: datetime | None = None,
) -> Rendered:
    """The iCalendar text of event `uid` with `desired` applied (with `instance`, the original
    start of one instance of the series: applied to that instance alone, see _merge_instance).

    Without `current` (a new event): a VCALENDAR with one VEVENT (CREATED, SEQUENCE 0). With
    `current` (the provider's text): the master VEVENT is updated in place, SEQUENCE bumped,
    everything we do not manage kept; a resource lacking the master gets one appended.
    Time zones in use get a VTIMEZONE. Raises InvalidCalendarData (unparseable `current`),
    KeyError/ValueError (a `desired` without valid times).
    """
    now = now or datetime.now(UTC)
    if instance is not None:
        return _merge_instance(
            uid=uid, desired=desired, current=current, instance=instance, now=now
        )
    exists = bool(current)
    calendar = _parse(current) if exists else None
    event = _master(calendar, uid) if calendar is not None else None
    if calendar is None:
        calendar = icalendar.Calendar()
        calendar.add("PRODID", PRODID)
        calendar.add("VERSION", "2.0")
    before = _signature(event) if event is not None else b""
    if event is None:
        event = icalendar.Event()
        event.add("UID", uid)
        event.add("CREATED", now.astimezone(UTC).replace(microsecond=0))
        calendar.add_component(event)
    _apply_times(event, desired)
    _apply_content(event, desired)
    _apply_recurrence(event, desired)
    _apply_conferencing(event, desired)
    _apply_reminders(event, desired, exists=exists)
    _apply_attendees(event, desired, organizer_email=organizer_email)
    changed = _signature(event) != before
    if not changed:
        return Rendered(payload=current, changed=False)
    _stamp(event, now, bump_sequence=exists)
    if not exists:
        event.add("SEQUENCE", 0)
    _add_missing_timezones(calendar)
    return Rendered(payload=calendar.to_ical().decode(), changed=True)


def _merge_instance(
    *, uid: str, desired: Mapping, current: str, instance: datetime, now: datetime
) -> Rendered:
    """One instance of a series: its RECURRENCE-ID override gets the desired content and times
    (made from the master when there is none), or, for `delete_instance`, the master an
    EXDATE and the override goes. The rest of the series is untouched."""
    calendar = _parse(current)
    master = _master(calendar, uid)
    if master is None or master.get("RRULE") is None and master.get("RDATE") is None:
        raise InvalidData("the series of this instance is not in the resource")
    if desired.get("delete_instance"):
        if not _delete_instance(calendar, master, uid, instance, now):
            return Rendered(payload=current, changed=False)
        return Rendered(payload=calendar.to_ical().decode(), changed=True)
    override = _override(calendar, master, uid, instance, create=True)
    before = _signature(override) if override.get("DTSTAMP") is not None else b""
    _apply_times(override, desired)
    _apply_content(override, desired)
    _apply_reminders(override, desired, exists=True)
    _apply_attendees(override, desired, organizer_email="")
    if _signature(override) == before:
        return Rendered(payload=current, changed=False)
    _stamp(override, now, bump_sequence=True)
    _add_missing_timezones(calendar)
    return Rendered(payload=calendar.to_ical().decode(), changed=True)


def set_participation(
    *,
    uid: str,
    current: str,
    self_emails: frozenset[str],
    participation_status: str,
    now: datetime | None = None,
    instance: datetime | None = None,
) -> Rendered:
    """`current` with the end-user's PARTSTAT (the attendee whose address is one of
    `self_emails`, lower case) set on the master and every overridden instance of `uid`; with
    `instance` (an original start), on that instance's override alone (made from the master
    when there is none).

    Raises ParticipantNotFound (the user is not an attendee), ValueError (unknown status),
    InvalidCalendarData.
    """
    partstat = _PARTSTAT.get(participation_status)
    if partstat is None:
        raise ValueError(f"unknown participation status {participation_status!r}")
    calendar = _parse(current)
    found = changed = False
    components = calendar.walk("VEVENT")
    if instance is not None:
        master = _master(calendar, uid)
        if master is None:
            raise InvalidData("the series of this instance is not in the resource")
        existed = _override(calendar, master, uid, instance, create=False) is not None
        components = [_override(calendar, master, uid, instance, create=True)]
        changed = not existed
    for component in components:
        if uid_of(component) != uid:
            continue
        for attendee in _as_list(component.get("ATTENDEE")):
            if _address(attendee) not in self_emails:
                continue
            found = True
            if str(attendee.params.get("PARTSTAT", "")).upper() != partstat:
                attendee.params["PARTSTAT"] = partstat
                attendee.params.pop("RSVP", None)
                changed = True
                _stamp(component, now or datetime.now(UTC), bump_sequence=False)
    if not found:
        raise ParticipantNotFound("the calendar owner is not an attendee of this event")
    if not changed:
        return Rendered(payload=current, changed=False)
    return Rendered(payload=calendar.to_ical().decode(), changed=True)
