"""Managed-event writes as the API side records them, and looks at what Radicale holds."""

from datetime import UTC, datetime, timedelta

from defusedxml import ElementTree

from accounts.ids import make_public_id
from calendars.models import Calendar, Event, ManagedEventWrite
from sync import services
from tests.factories import make_account


def connect(server, user: str | None = None) -> tuple[str, str, Calendar]:
    """A new Radicale user with one calendar, connected; returns (user, calendar url, Calendar)."""
    user = user or server.make_user()
    url = server.make_calendar(user)
    profile = services.connect_profile(
        account=make_account(email=f"{user}@example.com"),
        provider_key="caldav",
        credentials_dict={
            "url": server.base_url + "/",
            "username": user,
            "password": server.password(user),
        },
    )
    return user, url, Calendar.objects.get(profile=profile, provider_calendar_id=url)


def desired(start: datetime, *, summary: str = "Managed", minutes: int = 60, **fields) -> dict:
    """ManagedEventWrite.desired of an upsert, as the model docstring defines it."""
    end = start + timedelta(minutes=minutes)
    data = {
        "summary": summary,
        "description": "Booked through the API",
        "location_description": "Room 1",
        "location_lat": "",
        "location_long": "",
        "url": "",
        "start": start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "end": end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "is_all_day": False,
        "start_date": None,
        "end_date": None,
        "tzid": "Europe/Berlin",
        "transparency": "opaque",
        "is_private": False,
        "status": "confirmed",
        "reminders": [15],
        "reminders_create_only": False,
        "color": "",
        "attendees_invite": [],
        "attendees_remove": [],
    }
    data.update(fields)
    return data


def _content(data: dict) -> dict:
    return {
        "summary": data["summary"],
        "description": data["description"],
        "location_description": data["location_description"],
        "start": datetime.fromisoformat(data["start"]),
        "end": datetime.fromisoformat(data["end"]),
        "tzid": data["tzid"],
    }


def write(
    calendar: Calendar,
    data: dict | None = None,
    *,
    event: Event | None = None,
    operation: str = ManagedEventWrite.Operation.UPSERT,
) -> ManagedEventWrite:
    """Record a write the way the API does: a new managed Event (provider_key = ical_uid =
    event_uid, cached content set) or the cached event updated, plus the write row."""
    data = data or {}
    account = calendar.profile.account
    if event is None:
        uid = make_public_id("evt_")
        event = Event.objects.create(
            account=account,
            calendar=calendar,
            event_uid=uid,
            provider_key=uid,
            ical_uid=uid,
            event_id=f"booking-{uid[-6:]}",
            **_content(data),
        )
    elif operation == ManagedEventWrite.Operation.UPSERT:
        Event.objects.filter(pk=event.pk).update(**_content(data))
    elif operation == ManagedEventWrite.Operation.DELETE:
        Event.objects.filter(pk=event.pk).update(is_deleted=True)
    return ManagedEventWrite.objects.create(
        account=account, calendar=calendar, event=event, operation=operation, desired=data
    )


def server_resources(server, user: str, url: str) -> dict[str, str]:
    """{href: iCalendar text} of every resource in the collection (a real REPORT)."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
        '<C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
    )
    response = server.session(user).request(
        "REPORT", url, data=body.encode(), headers={"Depth": "1"}, timeout=30
    )
    response.raise_for_status()
    tree = ElementTree.fromstring(response.content)
    found = {}
    for item in tree.iter("{DAV:}response"):
        href = item.findtext("{DAV:}href")
        data = item.find(".//{urn:ietf:params:xml:ns:caldav}calendar-data")
        if href and data is not None and data.text:
            found[href] = data.text
    return found
