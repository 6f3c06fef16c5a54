"""Validation of write request bodies (docs/api.md, Writing events), shared by the views and batch.

Each parser takes the decoded JSON body and returns plain values or dataclasses, or raises
`CronofyValidationError` (422) naming every bad field at once. Keys outside Cronofy's upsert
body are ignored, as Cronofy ignores them; every key of Cronofy's body is either applied or
refused with a 422 naming it (UPSERT_KEYS, REFUSED_KEYS), never accepted and dropped. None of
them touches the database.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from accounts.inputs import is_storable_text
from accounts.rest import CronofyValidationError, error_entry
from calendars.parsing import get_list, parse_bool, parse_event_time, parse_tzid
from calendars.recurrence import parse_recurrence
from calendars.types import Conferencing, ManagedEventContent

SUMMARY_MAX = 1024
DESCRIPTION_MAX = 4096
LOCATION_MAX = 1024
URL_MAX = 2048
EVENT_ID_MAX = 255  # Event.event_id
EVENT_UID_MAX = 64  # Event.event_uid
TIME_MAX = 64  # longer than any time we accept: refuse before parsing
MAX_REMINDERS = 10
MAX_REMINDER_MINUTES = 40320  # four weeks, Cronofy's documented maximum
MAX_ATTENDEES = 200  # per list (invite, remove)
EMAIL_MAX = 254
DISPLAY_NAME_MAX = 255
MAX_CALENDAR_IDS = 500
MAX_BATCH = 50  # Cronofy documents batches of up to 50 requests
PARTICIPATION_STATUSES = ("accepted", "tentative", "declined")
TRANSPARENCIES = ("opaque", "transparent")
PROVIDER_DESCRIPTION_MAX = 255
# Every key of Cronofy's upsert body that we apply (docs/api.md, Writing events).
UPSERT_KEYS = (
    "event_id",
    "event_uid",
    "summary",
    "description",
    "start",
    "end",
    "tzid",
    "location",
    "url",
    "reminders",
    "reminders_create_only",
    "transparency",
    "extended_transparency",
    "color",
    "event_private",
    "attendees",
    "recurrence",
    "conferencing",
)
# Keys of Cronofy's upsert body we cannot apply: a 422 naming the key, so that nothing an
# integrator asked for is silently lost. `subscriptions` asks to be told when a conferencing
# provider assigns a link (we assign none asynchronously); `attachments` need a provider-side
# file store we do not have.
REFUSED_KEYS = {
    "subscriptions": "conferencing subscriptions are not supported",
    "attachments": "attachments are not supported",
}

_COLOR_RE = re.compile(r"^#[0-9A-Fa-f]{6}$")
CONFERENCING_PROFILES = ("default", "explicit", "none")
_url_validator = URLValidator(schemes=["http", "https"])
_join_url_validator = URLValidator(schemes=["https"])
_email_validator = EmailValidator()


class FieldErrors:
    """Collects 422 entries per field so that one response names every problem."""

    def __init__(self):
        self.errors: dict[str, list[dict[str, str]]] = {}

    def add(self, field: str, key: str, description: str) -> None:
        self.errors.setdefault(field, []).append(error_entry(key, description))

    def merge(self, exc: CronofyValidationError) -> None:
        for field, entries in exc.errors.items():
            self.errors.setdefault(field, []).extend(entries)

    def raise_any(self) -> None:
        if self.errors:
            raise CronofyValidationError(self.errors)


MAX_DEPTH = 16


def _is_storable(value, depth: int = 0) -> bool:
    """Only storable strings (see `is_storable_text`), keys included, and no absurd nesting."""
    if isinstance(value, str):
        return is_storable_text(value)
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(
            _is_storable(k, depth + 1) and _is_storable(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list):
        return all(_is_storable(v, depth + 1) for v in value)
    return True


def is_clean_id(value: str) -> bool:
    """A path or query id we may look up (a NUL or a lone surrogate would fail the query)."""
    return len(value) <= 1024 and is_storable_text(value)


def require_object(body) -> dict:
    """The body must be a JSON object (a list, string or number is a 422, never a 500)."""
    if not isinstance(body, dict):
        raise CronofyValidationError.single(
            "base", "errors.invalid_body", "the request body must be a JSON object"
        )
    if not _is_storable(body):
        raise CronofyValidationError.single(
            "base",
            "errors.invalid_body",
            "the body holds NUL characters or invalid Unicode, or is nested too deeply",
        )
    return body


def _string(
    errors: FieldErrors, body: dict, key: str, *, max_length: int, required=False, field=None
):
    field = field or key
    value = body.get(key)
    if value is None or value == "":
        if required:
            errors.add(field, "errors.required", f"{field} must be specified")
        return None
    if not isinstance(value, str):
        errors.add(field, "errors.must_be_string", f"{field} must be a string")
        return None
    if len(value) > max_length:
        errors.add(field, "errors.too_long", f"{field} must be at most {max_length} characters")
        return None
    return value


def _bool(errors: FieldErrors, body: dict, field: str) -> bool:
    value = body.get(field)
    if value is not None and not isinstance(value, (bool, str, int)):
        errors.add(field, "errors.must_be_boolean", f"{field} must be true or false")
        return False
    try:
        return parse_bool(value, field)
    except CronofyValidationError as exc:
        errors.merge(exc)
        return False


@dataclass(frozen=True)
class EventReference:
    """Which event a write names: the integrator's `event_id` or our `event_uid`."""

    event_id: str | None = None
    event_uid: str | None = None


def parse_event_reference(body: dict) -> EventReference:
    """Exactly one of `event_id` (a managed event) and `event_uid` (an external event)."""
    errors = FieldErrors()
    event_id = _string(errors, body, "event_id", max_length=EVENT_ID_MAX)
    event_uid = _string(errors, body, "event_uid", max_length=EVENT_UID_MAX)
    errors.raise_any()
    if event_id is not None and event_uid is not None:
        raise CronofyValidationError.single(
            "event_id", "errors.exclusive", "give either event_id or event_uid, not both"
        )
    if event_id is None and event_uid is None:
        raise CronofyValidationError.single(
            "event_id", "errors.required", "event_id (or event_uid) must be specified"
        )
    return EventReference(event_id=event_id, event_uid=event_uid)


def _time(errors: FieldErrors, body: dict, field: str, default_tz: ZoneInfo):
    value = body.get(field)
    if value is None:
        errors.add(field, "errors.required", f"{field} must be specified")
        return None
    raw = value.get("time") if isinstance(value, dict) else value
    if not isinstance(raw, (str, type(None))) or (isinstance(raw, str) and len(raw) > TIME_MAX):
        errors.add(field, "errors.invalid_time", f"{field} is not a valid time")
        return None
    if isinstance(value, dict) and not isinstance(value.get("tzid"), (str, type(None))):
        errors.add(f"{field}.tzid", "errors.invalid_tzid", f"{field}.tzid must be a string")
        return None
    if isinstance(value, dict) and len(value.get("tzid") or "") > TIME_MAX:
        errors.add(f"{field}.tzid", "errors.invalid_tzid", f"{field}.tzid is not a time zone")
        return None
    try:
        return parse_event_time(value, field, default_tz=default_tz)
    except CronofyValidationError as exc:
        errors.merge(exc)
        return None


def _location(errors: FieldErrors, body: dict) -> tuple[str, str, str]:
    value = body.get("location")
    if value is None:
        return "", "", ""
    if not isinstance(value, dict):
        errors.add("location", "errors.invalid", "location must be an object")
        return "", "", ""
    description = (
        _string(errors, value, "description", max_length=LOCATION_MAX, field="location.description")
        or ""
    )
    coordinates = []
    for name, limit in (("lat", 90), ("long", 180)):
        raw = value.get(name)
        if raw is None or raw == "":
            coordinates.append("")
            continue
        try:
            if (
                isinstance(raw, bool)
                or not isinstance(raw, (int, float, str))
                or len(str(raw)) > 32
            ):
                raise ValueError
            number = float(raw)
            if not -limit <= number <= limit:
                raise ValueError
        except ValueError:
            errors.add(
                f"location.{name}",
                "errors.invalid",
                f"location.{name} must be a number between -{limit} and {limit}",
            )
            coordinates.append("")
            continue
        coordinates.append(str(raw).strip())
    if bool(coordinates[0]) != bool(coordinates[1]):
        errors.add("location", "errors.invalid", "location.lat and location.long go together")
    return description, coordinates[0], coordinates[1]


def _url(errors: FieldErrors, body: dict) -> str:
    value = _string(errors, body, "url", max_length=URL_MAX)
    if value is None:
        return ""
    try:
        _url_validator(value)
    except ValidationError:
        errors.add("url", "errors.invalid_url", "url must be an http(s) URL")
        return ""
    return value


def _reminders(errors: FieldErrors, body: dict) -> tuple[int, ...] | None:
    value = body.get("reminders")
    if value is None:
        return None
    if not isinstance(value, list):
        errors.add("reminders", "errors.invalid", "reminders must be a list of {minutes}")
        return None
    if len(value) > MAX_REMINDERS:
        errors.add("reminders", "errors.too_many", f"at most {MAX_REMINDERS} reminders")
        return None
    minutes: list[int] = []
    for item in value:
        raw = item.get("minutes") if isinstance(item, dict) else None
        if isinstance(raw, bool) or not isinstance(raw, int):
            errors.add("reminders", "errors.invalid", "each reminder needs integer minutes")
            return None
        if not 0 <= raw <= MAX_REMINDER_MINUTES:
            errors.add(
                "reminders",
                "errors.invalid",
                f"reminder minutes must be between 0 and {MAX_REMINDER_MINUTES}",
            )
            return None
        minutes.append(raw)
    return tuple(minutes)


def _people(errors: FieldErrors, value, field: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.add(field, "errors.invalid", f"{field} must be a list of {{email, display_name}}")
        return ()
    if len(value) > MAX_ATTENDEES:
        errors.add(field, "errors.too_many", f"at most {MAX_ATTENDEES} attendees")
        return ()
    people: dict[str, tuple[str, str]] = {}
    for item in value:
        email = item.get("email") if isinstance(item, dict) else None
        name = item.get("display_name") if isinstance(item, dict) else None
        if not isinstance(email, str) or len(email) > EMAIL_MAX:
            errors.add(field, "errors.invalid_email", "each attendee needs a valid email")
            return ()
        email = email.strip()
        try:
            _email_validator(email)
        except ValidationError:
            errors.add(field, "errors.invalid_email", f"{email!r} is not a valid email")
            return ()
        if name is not None and (not isinstance(name, str) or len(name) > DISPLAY_NAME_MAX):
            errors.add(field, "errors.invalid", "display_name must be a short string")
            return ()
        people.setdefault(email.lower(), (email, (name or "").strip()))
    return tuple(people.values())


def _attendees(errors: FieldErrors, body: dict):
    value = body.get("attendees")
    if value is None:
        return (), ()
    if not isinstance(value, dict):
        errors.add("attendees", "errors.invalid", "attendees must be {invite, remove}")
        return (), ()
    invite = _people(errors, value.get("invite"), "attendees.invite")
    # The Ruby SDK documents `reject` for removal, the API `remove`: both work.
    remove_key = "remove" if value.get("remove") is not None else "reject"
    remove = _people(errors, value.get(remove_key), f"attendees.{remove_key}")
    return invite, remove


def _transparency(errors: FieldErrors, body: dict) -> str | None:
    value = body.get("transparency")
    if value is None:
        return None
    if value not in TRANSPARENCIES:
        errors.add("transparency", "errors.invalid", "transparency must be opaque or transparent")
        return None
    return value


def _color(errors: FieldErrors, body: dict) -> str:
    value = _string(errors, body, "color", max_length=16)
    if value is None:
        return ""
    if not _COLOR_RE.match(value):
        errors.add("color", "errors.invalid_color", "color must be a hex colour such as #49BED8")
        return ""
    return value


def _extended_transparency(errors: FieldErrors, body: dict, transparency: str | None) -> str | None:
    """Cronofy's finer-grained transparency: `opaque` and `transparent` are the plain values;
    the others (tentative, out_of_office, working_elsewhere) have no provider-neutral write,
    so they are refused rather than written as something else."""
    value = body.get("extended_transparency")
    if value is None:
        return transparency
    if value not in TRANSPARENCIES:
        errors.add(
            "extended_transparency",
            "errors.not_supported",
            "extended_transparency can only be opaque or transparent when writing",
        )
        return transparency
    if transparency is not None and transparency != value:
        errors.add(
            "extended_transparency",
            "errors.invalid",
            "extended_transparency contradicts transparency",
        )
    return value


def _conferencing(errors: FieldErrors, body: dict) -> Conferencing | None:
    """`{"profile_id": "explicit", "join_url", "provider_description"}` (a link the integrator
    made) or `{"profile_id": "none"}` (remove it); `default` asks the calendar's provider to
    create a meeting (Google Meet, Microsoft Teams)."""
    value = body.get("conferencing")
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.add("conferencing", "errors.invalid", "conferencing must be an object")
        return None
    profile_id = value.get("profile_id")
    if profile_id == "none":
        return Conferencing(profile_id="none")
    if profile_id == "explicit":
        join_url = _string(
            errors,
            value,
            "join_url",
            max_length=URL_MAX,
            required=True,
            field="conferencing.join_url",
        )
        description = _string(
            errors,
            value,
            "provider_description",
            max_length=PROVIDER_DESCRIPTION_MAX,
            field="conferencing.provider_description",
        )
        if join_url is None:
            return None
        try:
            _join_url_validator(join_url)
        except ValidationError:
            # https only: the read side reports only https meeting links (a link to click).
            errors.add(
                "conferencing.join_url", "errors.invalid_url", "join_url must be an https URL"
            )
            return None
        return Conferencing(
            profile_id="explicit", join_url=join_url, provider_description=description or ""
        )
    if profile_id == "default":
        return Conferencing(profile_id="default")
    if isinstance(profile_id, str) and profile_id.startswith("pro_"):
        # A conferencing profile (Zoom and the like) of the account: none can be connected
        # here (userinfo lists no conferencing_profiles), so there is none to use.
        errors.add(
            "conferencing.profile_id",
            "errors.not_supported",
            "no conferencing profiles can be connected: use default, explicit or none",
        )
        return None
    errors.add(
        "conferencing.profile_id",
        "errors.invalid",
        "conferencing.profile_id must be default, explicit or none",
    )
    return None


def _refused(errors: FieldErrors, body: dict) -> None:
    for key, reason in REFUSED_KEYS.items():
        if body.get(key) not in (None, []):
            errors.add(key, "errors.not_supported", reason)


def parse_upsert(body) -> tuple[EventReference, ManagedEventContent]:
    """The body of POST /v1/calendars/{id}/events: which event, and its desired content."""
    body = require_object(body)
    errors = FieldErrors()
    try:
        reference = parse_event_reference(body)
    except CronofyValidationError as exc:
        errors.merge(exc)
        reference = None
    summary = _string(errors, body, "summary", max_length=SUMMARY_MAX, required=True)
    description = _string(errors, body, "description", max_length=DESCRIPTION_MAX) or ""

    default_tz = ZoneInfo("Etc/UTC")
    raw_tzid = body.get("tzid")
    if raw_tzid is not None and (not isinstance(raw_tzid, str) or len(raw_tzid) > TIME_MAX):
        errors.add("tzid", "errors.invalid_tzid", "tzid must be an IANA time zone id")
    else:
        try:
            default_tz = parse_tzid(raw_tzid, "tzid", required=False) or default_tz
        except CronofyValidationError as exc:
            errors.merge(exc)
    start = _time(errors, body, "start", default_tz)
    end = _time(errors, body, "end", default_tz)

    location = _location(errors, body)
    url = _url(errors, body)
    reminders = _reminders(errors, body)
    reminders_create_only = _bool(errors, body, "reminders_create_only")
    transparency = _extended_transparency(errors, body, _transparency(errors, body))
    is_private = _bool(errors, body, "event_private")
    invite, remove = _attendees(errors, body)
    color = _color(errors, body)
    conferencing = _conferencing(errors, body)
    _refused(errors, body)
    try:
        recurrence = parse_recurrence(body.get("recurrence"))
    except CronofyValidationError as exc:
        errors.merge(exc)
        recurrence = None
    if recurrence is not None and reference is not None and reference.event_uid is not None:
        errors.add(
            "recurrence",
            "errors.not_supported",
            "recurrence can only be set on your own (managed) events",
        )
    errors.raise_any()

    (start_time, start_tz), (end_time, _) = start, end
    if start_time.is_date != end_time.is_date:
        raise CronofyValidationError.single(
            "end", "errors.invalid", "start and end must both be dates (all-day) or both times"
        )
    tzid = (start_tz or default_tz).key
    if start_time.is_date:
        start_date, end_date = start_time.day, end_time.day
        if end_date <= start_date:
            raise CronofyValidationError.single(
                "end", "errors.must_be_after_start", "end must be after start (end is exclusive)"
            )
        timing = {
            "is_all_day": True,
            "start_date": start_date,
            "end_date": end_date,
            "start": datetime.combine(start_date, time.min, tzinfo=UTC),
            "end": datetime.combine(end_date, time.min, tzinfo=UTC),
        }
    else:
        # Cronofy's times have second precision: so do ours (and the desired state).
        start_at = start_time.instant.replace(microsecond=0)
        end_at = end_time.instant.replace(microsecond=0)
        if end_at <= start_at:
            raise CronofyValidationError.single(
                "end", "errors.must_be_after_start", "end must be after start"
            )
        timing = {"start": start_at, "end": end_at}
    content = ManagedEventContent(
        summary=summary,
        description=description,
        location_description=location[0],
        location_lat=location[1],
        location_long=location[2],
        url=url,
        tzid=tzid,
        transparency=transparency,
        is_private=is_private,
        reminders=reminders,
        reminders_create_only=reminders_create_only,
        color=color,
        attendees_invite=invite,
        attendees_remove=remove,
        recurrence=recurrence,
        conferencing=conferencing,
        **timing,
    )
    return reference, content


def parse_delete(body) -> EventReference:
    """The body of DELETE /v1/calendars/{id}/events: {event_id} or {event_uid}."""
    return parse_event_reference(require_object(body))


def parse_participation_status(body) -> str:
    """The body of POST …/participation_status: {"status": accepted|tentative|declined}."""
    body = require_object(body)
    status = body.get("status")
    if status is None or status == "":
        raise CronofyValidationError.single("status", "errors.required", "status must be given")
    if status not in PARTICIPATION_STATUSES:
        raise CronofyValidationError.single(
            "status", "errors.invalid", "status must be accepted, tentative or declined"
        )
    return status


@dataclass(frozen=True)
class BulkDeleteSelection:
    """DELETE /v1/events: every managed event of the caller, or those of some calendars."""

    calendar_ids: tuple[str, ...] | None  # None: delete_all


def parse_bulk_delete(body, query) -> BulkDeleteSelection:
    """Selection from the JSON body (Ruby, Node, .NET SDKs) or the query string (pycronofy).

    `calendar_ids` wins over `delete_all` when both are given; neither is a 422.
    """
    body = require_object(body) if isinstance(body, dict) else {}
    raw_ids = body.get("calendar_ids")
    if raw_ids is None:
        raw_ids = get_list(query, "calendar_ids") or None
    if raw_ids is not None:
        if (
            not isinstance(raw_ids, list)
            or not raw_ids
            or len(raw_ids) > MAX_CALENDAR_IDS
            or not all(isinstance(i, str) and 0 < len(i) <= 64 and is_clean_id(i) for i in raw_ids)
        ):
            raise CronofyValidationError.single(
                "calendar_ids", "errors.invalid_calendar_ids", "calendar_ids must list calendars"
            )
        return BulkDeleteSelection(calendar_ids=tuple(dict.fromkeys(raw_ids)))
    raw = body.get("delete_all")
    if raw is None:
        raw = query.get("delete_all")
    if raw is None:
        raise CronofyValidationError.single(
            "delete_all", "errors.required", "give delete_all=true or calendar_ids"
        )
    if not isinstance(raw, (bool, str)) or (isinstance(raw, str) and len(raw) > 8):
        raise CronofyValidationError.single(
            "delete_all", "errors.must_be_boolean", "delete_all must be true or false"
        )
    if not parse_bool(raw, "delete_all"):
        raise CronofyValidationError.single(
            "delete_all", "errors.required", "give delete_all=true or calendar_ids"
        )
    return BulkDeleteSelection(calendar_ids=None)
