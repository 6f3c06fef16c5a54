"""Wire shapes of /v1/calendars, /v1/events and /v1/free_busy (docs/api.md, Calendars).

`render_*` build response bodies from rows (fast: a page of events is plain dicts handed to
orjson, which writes datetimes as `…Z` and dates as `YYYY-MM-DD`). `CalendarCreateSerializer`
validates POST bodies. The other Serializer classes describe the shapes for the OpenAPI document.
"""

import hashlib
import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.ids import format_utc
from accounts.serializers import render_profile_calendar
from calendars import recurrence, writes
from calendars.freshness import STATES, Freshness, freshness_of
from calendars.models import Calendar, ChangeLogEntry, Event
from calendars.options import EventPermissions
from calendars.parsing import known_zones
from calendars.reads import EventQuery

# ---------------------------------------------------------------------------------------------
# Calendars


def render_calendar(calendar: Calendar, sync_status: Freshness | None = None) -> dict:
    """`calendar.profile` must be loaded (select_related). `sync_status` is the calendar's
    freshness (calendars.freshness), an additive key (docs/api.md, Freshness)."""
    profile = calendar.profile
    data = {
        "provider_name": profile.cronofy_provider_name,
        "profile_id": profile.public_id,
        "profile_name": profile.profile_name,
        **render_profile_calendar(calendar),
    }
    if sync_status is not None:
        data["sync_status"] = sync_status.to_payload()
    return data


def render_sync_statuses(calendar_public_ids: dict[int, str]) -> dict[str, dict]:
    """{calendar_id: sync status} for these calendars ({pk: public id}), in one query: the
    additive `sync_status` key of read responses (docs/api.md, Freshness)."""
    found = freshness_of(calendar_public_ids)
    return {calendar_public_ids[pk]: status.to_payload() for pk, status in found.items()}


COLOR_PATTERN = r"^#[0-9A-Fa-f]{6}$"
_COLOR_RE = re.compile(COLOR_PATTERN)
# What the document promises for `color` and `name`; the validators below decide.
_COLOR_OR_EMPTY = {"type": "string", "pattern": r"^(#[0-9A-Fa-f]{6})?$"}
# What str.strip() strips (JSON Schema's \s differs: it lacks \x1c-\x1f and \x85).
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Not only white space.
_NAME = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": f"[^{_SPACE}]"}


@extend_schema_field(_COLOR_OR_EMPTY)
class ColorField(serializers.CharField):
    pass


@extend_schema_field(_NAME)
class NameField(serializers.CharField):
    pass


class CalendarCreateSerializer(serializers.Serializer):
    # Not trimmed: ids are compared exactly.
    profile_id = serializers.CharField(
        min_length=1, max_length=64, trim_whitespace=False, help_text="pro_… of your profiles"
    )
    name = NameField(max_length=255)
    color = ColorField(required=False, allow_blank=True, help_text="Hex colour such as #49BED8")

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("name must be specified", code="required")
        return value

    def validate_color(self, value: str) -> str:
        if value and not _COLOR_RE.match(value):
            raise serializers.ValidationError(
                "color must be a hex colour such as #49BED8", code="invalid_color"
            )
        return value


# ---------------------------------------------------------------------------------------------
# Events and free/busy


@lru_cache(maxsize=512)
def _zone(tzid: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(tzid)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _series_identifier(calendar_id: str, provider_key: str) -> str:
    # Opaque and stable: the same for every instance of one series in one calendar.
    return hashlib.sha256(f"{calendar_id}\x00{provider_key}".encode()).hexdigest()[:24]


class EventRenderer:
    """Turns rows of calendars.reads.EVENT_FIELDS / FREE_BUSY_FIELDS into Cronofy's objects."""

    def __init__(
        self,
        query: EventQuery,
        application_id: int,
        permissions: EventPermissions | None = None,
    ):
        self.query = query
        self.application_id = application_id
        self.permissions = permissions
        self.localized = query.localized_times
        self.query_zone = query.zone

    def times(self, row: dict):
        """(start, end) as Cronofy encodes them; orjson formats dates and datetimes."""
        if row["is_all_day"]:
            start, end = row["start_date"], row["end_date"]
            if start is None:  # defensive: an all-day row without dates uses its UTC midnights
                start, end = row["start"].date(), row["end"].date()
            if self.localized:
                tzid = row["tzid"] if _zone(row["tzid"]) else self.query.tzid
                return {"time": start, "tzid": tzid}, {"time": end, "tzid": tzid}
            return start, end
        start, end = row["start"], row["end"]
        if self.localized:
            # The event's own zone, as the provider gave it; the query's zone as fallback.
            zone = _zone(row["tzid"]) or self.query_zone
            return (
                {"time": start.astimezone(zone), "tzid": zone.key},
                {"time": end.astimezone(zone), "tzid": zone.key},
            )
        return start, end

    def event(self, row: dict) -> dict:
        start, end = self.times(row)
        managed = row["event_id"] is not None and row["application_id"] == self.application_id
        data = {
            "calendar_id": row["calendar__public_id"],
            "event_uid": row["event_uid"],
            "summary": row["summary"],
            "description": row["description"],
            "start": start,
            "end": end,
            "deleted": row["is_deleted"],
            "created": row["provider_created_at"] or row["created_at"],
            "updated": row["provider_updated_at"] or row["updated_at"],
            "participation_status": row["participation_status"],
            "attendees": row["attendees"],
            "organizer": row["organizer"] or {},
            "transparency": row["transparency"],
            "extended_transparency": row["extended_transparency"] or row["transparency"],
            "status": row["status"],
            "event_status": row["status"],
            "categories": row["categories"],
            "recurring": row["is_recurring"],
            "event_private": row["is_private"],
            "options": (
                self.permissions.options(row)
                if self.permissions is not None
                else {"delete": False, "update": False, "change_participation_status": False}
            ),
        }
        if managed:
            data["event_id"] = row["event_id"]
        if row["is_recurring"]:
            data["series_identifier"] = _series_identifier(
                row["calendar__public_id"], row["provider_key"]
            )
        if row["ical_uid"]:
            data["ical_uid"] = row["ical_uid"]
        if row["location_description"] or (
            self.query.include_geo and (row["location_lat"] or row["location_long"])
        ):
            location = {"description": row["location_description"]}
            if self.query.include_geo and row["location_lat"] and row["location_long"]:
                location["lat"] = row["location_lat"]
                location["long"] = row["location_long"]
            data["location"] = location
        if row["meeting_url"]:
            data["meeting_url"] = row["meeting_url"]
        return data

    def free_busy(self, row: dict) -> dict:
        start, end = self.times(row)
        data = {
            "calendar_id": row["calendar__public_id"],
            "start": start,
            "end": end,
            "free_busy_status": free_busy_status(row),
        }
        if self.query.include_ids:
            data["event_uid"] = row["event_uid"]
            if row["event_id"] is not None and row["application_id"] == self.application_id:
                data["event_id"] = row["event_id"]
        if self.query.include_deleted:
            data["deleted"] = row["is_deleted"]
        return data


def free_busy_status(row: dict) -> str:
    """busy / tentative / free from the event's status, transparency and the end-user's answer."""
    if (
        row["status"] == Event.Status.CANCELLED
        or row["transparency"] == Event.Transparency.TRANSPARENT
        or row["participation_status"] == Event.ParticipationStatus.DECLINED
    ):
        return "free"
    if row["status"] == Event.Status.TENTATIVE or row["participation_status"] in (
        Event.ParticipationStatus.TENTATIVE,
        Event.ParticipationStatus.NEEDS_ACTION,
    ):
        return "tentative"
    return "busy"


# ---------------------------------------------------------------------------------------------
# OpenAPI description

# Named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] so each choice set is one schema enum.
PARTICIPATION_STATUSES = ["needs_action", "accepted", "declined", "tentative", "unknown"]
EVENT_STATUSES = ["confirmed", "tentative", "cancelled", "unknown"]
EVENT_TRANSPARENCIES = ["opaque", "transparent", "unknown"]
TZIDS = sorted(known_zones())
# calendars.parsing reads years 1900 to 2200 only.
_YEARS = r"^(19[0-9]{2}|2[01][0-9]{2}|2200)-"
_DATE_OR_TIME = [
    {"type": "string", "format": "date", "pattern": _YEARS},
    {"type": "string", "format": "date-time", "pattern": _YEARS},
]
_TZID = {"$ref": "#/components/schemas/TzidEnum"}
# A time in a write: a date, a time, or {time, tzid}.
_WRITE_TIME = {
    "oneOf": [
        *_DATE_OR_TIME,
        {
            "type": "object",
            "properties": {"time": {"oneOf": _DATE_OR_TIME}, "tzid": _TZID},
            "required": ["time"],
        },
    ]
}
# A time (not a date) in a body, as calendars/availability reads one.
BODY_TIME = _DATE_OR_TIME[1]
# A `from`, `to` or `last_modified` query parameter; empty means absent.
QUERY_TIME = {"oneOf": [*_DATE_OR_TIME, {"type": "string", "enum": [""]}]}
QUERY_TZID = _TZID
# A boolean query parameter as calendars.parsing.parse_bool reads it: true, false, 1, 0, yes,
# no, on, off in any case and with spaces around; empty means absent.
_BOOL_WORDS = "|".join(
    "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word)
    for word in ("true", "false", "1", "0", "yes", "no", "on", "off")
)
QUERY_BOOL = {
    "oneOf": [
        {"type": "boolean"},
        {"type": "string", "pattern": f"^[{_SPACE}]*({_BOOL_WORDS})?[{_SPACE}]*$"},
    ]
}


@extend_schema_field(_WRITE_TIME)
class WriteTimeField(serializers.JSONField):
    pass


@extend_schema_field(recurrence.SCHEMA)
class RecurrenceField(serializers.JSONField):
    pass


_CONFERENCING = {
    "type": "object",
    "required": ["profile_id"],
    "description": (
        "explicit: your own join_url (CalDAV, Google); default: a meeting the calendar's "
        "provider creates (Google Meet, Microsoft Teams); none: remove it"
    ),
    "properties": {
        "profile_id": {"type": "string", "enum": list(writes.CONFERENCING_PROFILES)},
        "provider_description": {"type": "string", "maxLength": writes.PROVIDER_DESCRIPTION_MAX},
        "join_url": {"type": "string", "format": "uri", "maxLength": writes.URL_MAX},
    },
}


@extend_schema_field(_CONFERENCING)
class ConferencingField(serializers.JSONField):
    pass


@extend_schema_field({"type": "boolean", "enum": [True, None], "nullable": True})
class TrueField(serializers.BooleanField):
    pass


class SyncStatusSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=list(STATES))
    source = serializers.ChoiceField(choices=["push", "poll"])
    last_synced_at = serializers.DateTimeField(allow_null=True, help_text="Last successful sync")
    lag_seconds = serializers.IntegerField(
        allow_null=True, help_text="Seconds since last_synced_at; null if never synced"
    )


_SYNC_STATUSES = {
    "type": "object",
    "additionalProperties": {"$ref": "#/components/schemas/SyncStatus"},
    "description": "calendar_id -> its freshness, for the calendars of this page",
}


@extend_schema_field(_SYNC_STATUSES)
class SyncStatusesField(serializers.JSONField):
    pass


class CalendarSerializer(serializers.Serializer):
    provider_name = serializers.CharField()
    profile_id = serializers.CharField()
    profile_name = serializers.CharField()
    calendar_id = serializers.CharField(help_text="cal_…")
    calendar_name = serializers.CharField()
    calendar_readonly = serializers.BooleanField()
    calendar_deleted = serializers.BooleanField()
    calendar_primary = serializers.BooleanField()
    calendar_integrated_conferencing_available = serializers.BooleanField()
    calendar_attachments_available = serializers.BooleanField()
    permission_level = serializers.ChoiceField(choices=["unrestricted", "sandbox"])
    sync_status = SyncStatusSerializer(help_text="How fresh our copy of it is (additive)")


class CalendarListResponseSerializer(serializers.Serializer):
    sub = serializers.CharField()
    calendars = CalendarSerializer(many=True)


class CalendarResponseSerializer(serializers.Serializer):
    calendar = CalendarSerializer()


class PagesSerializer(serializers.Serializer):
    current = serializers.IntegerField()
    total = serializers.IntegerField()
    next_page = serializers.URLField(required=False, help_text="Absent on the last page")


class LocationSerializer(serializers.Serializer):
    description = serializers.CharField()
    lat = serializers.CharField(required=False)
    long = serializers.CharField(required=False)


class PersonSerializer(serializers.Serializer):
    email = serializers.CharField(required=False, help_text="Absent when the provider has none")
    display_name = serializers.CharField(required=False)


class AttendeeSerializer(PersonSerializer):
    status = serializers.ChoiceField(choices=PARTICIPATION_STATUSES)


class EventOptionsSerializer(serializers.Serializer):
    delete = serializers.BooleanField()
    update = serializers.BooleanField()
    change_participation_status = serializers.BooleanField()


_TIME_HELP = (
    "UTC time `YYYY-MM-DDTHH:MM:SSZ`, a date `YYYY-MM-DD` for all-day events, or with "
    "localized_times an object {time, tzid}"
)


class EventSerializer(serializers.Serializer):
    calendar_id = serializers.CharField()
    event_uid = serializers.CharField()
    event_id = serializers.CharField(required=False, help_text="Only for your managed events")
    summary = serializers.CharField()
    description = serializers.CharField()
    start = serializers.JSONField(help_text=_TIME_HELP)
    end = serializers.JSONField(help_text=_TIME_HELP)
    deleted = serializers.BooleanField()
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()
    location = LocationSerializer(required=False)
    participation_status = serializers.ChoiceField(choices=PARTICIPATION_STATUSES)
    attendees = AttendeeSerializer(many=True)
    organizer = PersonSerializer()
    transparency = serializers.ChoiceField(choices=EVENT_TRANSPARENCIES)
    extended_transparency = serializers.CharField()
    status = serializers.ChoiceField(choices=EVENT_STATUSES)
    event_status = serializers.CharField(help_text="Same as status (older fixtures)")
    categories = serializers.ListField(child=serializers.CharField())
    recurring = serializers.BooleanField()
    series_identifier = serializers.CharField(required=False)
    ical_uid = serializers.CharField(required=False)
    event_private = serializers.BooleanField()
    options = EventOptionsSerializer()
    meeting_url = serializers.URLField(required=False)


class EventsResponseSerializer(serializers.Serializer):
    pages = PagesSerializer()
    events = EventSerializer(many=True)
    sync_status = SyncStatusesField(required=False)


class FreeBusySerializer(serializers.Serializer):
    calendar_id = serializers.CharField()
    start = serializers.JSONField(help_text=_TIME_HELP)
    end = serializers.JSONField(help_text=_TIME_HELP)
    free_busy_status = serializers.ChoiceField(choices=["busy", "tentative", "free", "unknown"])
    event_uid = serializers.CharField(required=False, help_text="With include_ids")
    event_id = serializers.CharField(required=False, help_text="With include_ids, managed only")
    deleted = serializers.BooleanField(required=False, help_text="With include_deleted")


class FreeBusyResponseSerializer(serializers.Serializer):
    pages = PagesSerializer()
    free_busy = FreeBusySerializer(many=True)
    sync_status = SyncStatusesField(required=False)


# ---------------------------------------------------------------------------------------------
# The change feed (calendars.changes)

_CALENDAR_KINDS = (
    ChangeLogEntry.Kind.CALENDAR_CREATED,
    ChangeLogEntry.Kind.CALENDAR_UPDATED,
    ChangeLogEntry.Kind.CALENDAR_DELETED,
)


def _origin(entry: dict, profile, application_id: int) -> dict:
    # Another integrator's identity is not the caller's business: only "you" or "not you".
    if entry["application_id"] is not None:
        return {"type": "application", "is_caller": entry["application_id"] == application_id}
    return {"type": "provider", "provider_name": profile.cronofy_provider_name if profile else None}


def _tombstone(row: dict, application_id: int) -> dict:
    data = {"calendar_id": row["calendar__public_id"], "event_uid": row["event_uid"]}
    if row["event_id"] is not None and row["application_id"] == application_id:
        data["event_id"] = row["event_id"]
    data["deleted"] = True
    return data


def render_change(entry: dict, page, renderer: EventRenderer) -> dict:
    """One entry of GET /v1/changes (a row of calendars.changes.ENTRY_FIELDS from a
    ChangePage): the ids, and an event's current state (as GET /v1/events shows it) or its
    tombstone once deleted."""
    calendar = page.calendars.get(entry["calendar_id"])
    profile = page.profiles.get(entry["profile_id"]) or (calendar.profile if calendar else None)
    data = {
        "sequence": entry["sequence"],
        "kind": entry["kind"],
        "changed_at": format_utc(entry["changed_at"]),
        "origin": _origin(entry, profile, renderer.application_id),
    }
    if profile is not None:
        data["profile_id"] = profile.public_id
    if calendar is not None:
        data["calendar_id"] = calendar.public_id
        if entry["kind"] in _CALENDAR_KINDS:
            data["calendar"] = render_calendar(calendar)
    row = page.events.get(entry["event_id"])
    if row is not None:
        data["event_uid"] = row["event_uid"]
        if row["is_deleted"]:
            data["event"] = _tombstone(row, renderer.application_id)
        else:
            data["event"] = renderer.event(row)
    return data


class OriginSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["provider", "application"])
    provider_name = serializers.CharField(required=False, allow_null=True)
    is_caller = serializers.BooleanField(
        required=False, help_text="application: whether your own API call made the change"
    )


class ChangeSerializer(serializers.Serializer):
    sequence = serializers.IntegerField(help_text="Position in the account's change log")
    kind = serializers.ChoiceField(choices=ChangeLogEntry.Kind.values)
    changed_at = serializers.DateTimeField()
    origin = OriginSerializer()
    profile_id = serializers.CharField(required=False)
    calendar_id = serializers.CharField(required=False)
    event_uid = serializers.CharField(required=False)
    calendar = serializers.JSONField(required=False, help_text="calendar_*: as /v1/calendars")
    event = serializers.JSONField(
        required=False,
        help_text="event_*: its current state as GET /v1/events shows it, or once deleted a "
        "tombstone {calendar_id, event_uid, event_id?, deleted: true}",
    )


class ChangesResponseSerializer(serializers.Serializer):
    changes = ChangeSerializer(many=True)
    next_cursor = serializers.CharField(help_text="Pass as `cursor` to read on from here")
    has_more = serializers.BooleanField(help_text="More entries are ready now")
    sync_status = SyncStatusesField(required=False)


# Write bodies (documentation only: calendars.writes validates them, Cronofy's 422 shapes).

# calendars.writes reads null and "" as absent.
_ABSENT_IF_EMPTY = {"required": False, "allow_null": True, "allow_blank": True}


class UpsertLocationSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, max_length=writes.LOCATION_MAX)
    # Numbers; their decimal strings are accepted too. Given together or not at all.
    lat = serializers.FloatField(
        required=False, allow_null=True, min_value=-90, max_value=90, help_text="Latitude"
    )
    long = serializers.FloatField(
        required=False, allow_null=True, min_value=-180, max_value=180, help_text="Longitude"
    )


class ReminderSerializer(serializers.Serializer):
    minutes = serializers.IntegerField(min_value=0, max_value=writes.MAX_REMINDER_MINUTES)


class InviteeSerializer(serializers.Serializer):
    email = serializers.EmailField()
    display_name = serializers.CharField(required=False)


class UpsertAttendeesSerializer(serializers.Serializer):
    invite = InviteeSerializer(many=True, required=False)
    remove = InviteeSerializer(many=True, required=False, help_text="Alias: reject")


_WRITE_TIME_HELP = (
    "UTC time `YYYY-MM-DDTHH:MM:SSZ` (offsets accepted), a date `YYYY-MM-DD` (all-day, "
    "end exclusive) or an object {time, tzid}"
)


class EventUpsertSerializer(serializers.Serializer):
    exactly_one_of = ("event_id", "event_uid")  # accounts/openapi.py
    event_id = serializers.CharField(
        max_length=writes.EVENT_ID_MAX, help_text="Your id (managed event)", **_ABSENT_IF_EMPTY
    )
    event_uid = serializers.CharField(
        max_length=writes.EVENT_UID_MAX,
        help_text="Instead of event_id: an external event to update",
        **_ABSENT_IF_EMPTY,
    )
    summary = serializers.CharField(min_length=1, max_length=writes.SUMMARY_MAX)
    description = serializers.CharField(required=False, max_length=writes.DESCRIPTION_MAX)
    start = WriteTimeField(help_text=_WRITE_TIME_HELP)
    end = WriteTimeField(help_text=_WRITE_TIME_HELP)
    tzid = serializers.ChoiceField(
        choices=TZIDS, required=False, help_text="Zone of start/end; Etc/UTC"
    )
    location = UpsertLocationSerializer(required=False)
    url = serializers.URLField(required=False, max_length=writes.URL_MAX)
    reminders = ReminderSerializer(many=True, required=False, help_text="Priority order")
    reminders_create_only = serializers.BooleanField(required=False)
    transparency = serializers.ChoiceField(
        choices=writes.TRANSPARENCIES, required=False, allow_null=True
    )
    event_private = serializers.BooleanField(required=False)
    attendees = UpsertAttendeesSerializer(required=False)
    color = ColorField(required=False, help_text="Hex colour such as #49BED8")
    extended_transparency = serializers.ChoiceField(
        choices=writes.TRANSPARENCIES,
        required=False,
        allow_null=True,
        help_text="Writes take the plain values only",
    )
    recurrence = RecurrenceField(required=False)
    conferencing = ConferencingField(required=False)


class EventDeleteSerializer(serializers.Serializer):
    exactly_one_of = ("event_id", "event_uid")  # accounts/openapi.py
    event_id = serializers.CharField(
        max_length=writes.EVENT_ID_MAX, help_text="Your event", **_ABSENT_IF_EMPTY
    )
    event_uid = serializers.CharField(
        max_length=writes.EVENT_UID_MAX, help_text="Or an external event", **_ABSENT_IF_EMPTY
    )


class BulkDeleteSerializer(serializers.Serializer):
    # Both may be given: calendar_ids wins (calendars.writes.parse_bulk_delete).
    at_least_one_of = ("delete_all", "calendar_ids")  # accounts/openapi.py
    delete_all = TrueField(required=False)
    calendar_ids = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=64),
        required=False,
        allow_null=True,
        min_length=1,
        max_length=writes.MAX_CALENDAR_IDS,
        help_text="Calendars of this account",
    )


class ParticipationStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=writes.PARTICIPATION_STATUSES)


# An entry that is not such an object is answered with a 422 in its place, not refused with
# the batch (docs/api.md, Batch): the document lets an entry be anything.
@extend_schema_field(
    {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "method": {"type": "string", "description": "POST | DELETE"},
                    "relative_url": {
                        "type": "string",
                        "description": "e.g. /v1/calendars/{calendar_id}/events",
                    },
                    "data": {"description": "The request's body"},
                },
                "required": ["method", "relative_url"],
            },
            {"description": "Anything else: a 422 entry"},
        ]
    }
)
class BatchEntryField(serializers.JSONField):
    pass


class BatchRequestSerializer(serializers.Serializer):
    batch = serializers.ListField(
        child=BatchEntryField(), min_length=1, max_length=writes.MAX_BATCH
    )


class BatchEntryResponseSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="202 on success")
    data = serializers.JSONField(required=False, help_text="The error body, if any")


class BatchResponseSerializer(serializers.Serializer):
    batch = BatchEntryResponseSerializer(many=True)
