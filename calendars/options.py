"""What an application may do with an event: the `options` of read events and the checks the
write services apply, from one set of rules (docs/api.md, "Reading events").

- update / delete: a managed event of this application, or an external event (not of any
  application) on a writable calendar (not readonly, not deleted, profile connected; external
  events also need an unrestricted calendar), and the token holds create_event (update) /
  delete_event (delete). An instance of an external recurring series only where its
  provider can write one instance (INSTANCE_WRITE_PROVIDERS).
- change_participation_status: an external event on a writable calendar where the end-user is
  an attendee but not the organizer (an instance of a series: as for update), and the token
  holds change_participation_status.
Deleted events allow nothing.
"""

from dataclasses import dataclass

from accounts import scopes as scope_names
from accounts.models import Account
from calendars.models import Calendar

# Providers whose adapter writes one instance of a series (CalDAV: a RECURRENCE-ID override
# or an EXDATE; Google: the instance's own event id; Graph: the occurrence's id); elsewhere
# (ICS feeds are read-only anyway) instances of external series are not writable.
INSTANCE_WRITE_PROVIDERS = frozenset({"caldav", "google", "microsoft"})


def instances_writable(calendar: Calendar) -> bool:
    return calendar.profile.provider in INSTANCE_WRITE_PROVIDERS


def calendar_is_writable(calendar: Calendar) -> bool:
    """`calendar.profile` should be loaded (select_related)."""
    return not calendar.is_readonly and not calendar.is_deleted and calendar.profile.is_connected


def person_email(person) -> str:
    """An attendee's or organizer's address as every comparison uses it (stripped, lowercased;
    empty for anything else)."""
    if isinstance(person, dict) and isinstance(person.get("email"), str):
        return person["email"].strip().lower()
    return ""


def is_attendee_not_organizer(attendees, organizer, emails: frozenset[str]) -> bool:
    if person_email(organizer) in emails:
        return False
    return any(person_email(attendee) in emails for attendee in attendees or ())


@dataclass(frozen=True)
class EventPermissions:
    """Per-request facts needed to compute `options` for a page of events without N+1 queries."""

    application_id: int
    scopes: frozenset[str]
    writable_calendar_ids: frozenset[str]  # public ids
    unrestricted_calendar_ids: frozenset[str]
    emails: frozenset[str]
    instance_calendar_ids: frozenset[str] = frozenset()  # instances of series writable

    @classmethod
    def for_caller(cls, *, account: Account, application, scopes) -> "EventPermissions":
        """Two queries: the account's calendars and its profiles' addresses."""
        writable, unrestricted, instances = set(), set(), set()
        for calendar in Calendar.objects.for_account(account).select_related("profile"):
            if calendar_is_writable(calendar):
                writable.add(calendar.public_id)
                if instances_writable(calendar):
                    instances.add(calendar.public_id)
                if calendar.permission_level == Calendar.PermissionLevel.UNRESTRICTED:
                    unrestricted.add(calendar.public_id)
        return cls(
            application_id=application.pk,
            scopes=frozenset(scopes),
            writable_calendar_ids=frozenset(writable),
            unrestricted_calendar_ids=frozenset(unrestricted),
            emails=account.email_addresses(),
            instance_calendar_ids=frozenset(instances),
        )

    def options(self, row: dict) -> dict:
        """`row` holds event_id, application_id, calendar__public_id, is_recurring,
        original_start, is_deleted, attendees and organizer (calendars.reads.EVENT_FIELDS)."""
        calendar_id = row["calendar__public_id"]
        if row["is_deleted"] or calendar_id not in self.writable_calendar_ids:
            return {"delete": False, "update": False, "change_participation_status": False}
        if row["event_id"] is not None:
            mine = row["application_id"] == self.application_id
            return {
                "delete": mine and scope_names.DELETE_EVENT in self.scopes,
                "update": mine and scope_names.CREATE_EVENT in self.scopes,
                "change_participation_status": False,
            }
        one_instance = row["original_start"] is not None
        if (row["is_recurring"] or one_instance) and not (
            one_instance and calendar_id in self.instance_calendar_ids
        ):
            return {"delete": False, "update": False, "change_participation_status": False}
        external_ok = calendar_id in self.unrestricted_calendar_ids
        return {
            "delete": external_ok and scope_names.DELETE_EVENT in self.scopes,
            "update": external_ok and scope_names.CREATE_EVENT in self.scopes,
            "change_participation_status": (
                scope_names.CHANGE_PARTICIPATION_STATUS in self.scopes
                and is_attendee_not_organizer(row["attendees"], row["organizer"], self.emails)
            ),
        }
