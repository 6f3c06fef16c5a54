import pytest

from calendars.models import ChangeLogEntry
from calendars.services import upsert_provider_calendars
from calendars.types import CalendarData
from tests.factories import make_profile

pytestmark = pytest.mark.django_db


def _kinds(profile):
    return list(
        ChangeLogEntry.objects.filter(account=profile.account)
        .order_by("sequence")
        .values_list("kind", flat=True)
    )


def test_upsert_provider_calendars_creates_updates_deletes_and_restores():
    profile = make_profile()
    upsert_provider_calendars(
        profile=profile, calendars=[CalendarData("/a/", "A"), CalendarData("/b/", "B")]
    )
    assert _kinds(profile) == ["calendar_created", "calendar_created"]

    result = upsert_provider_calendars(
        profile=profile, calendars=[CalendarData("/a/", "A"), CalendarData("/b/", "Bee")]
    )
    assert [c.name for c in result.updated] == ["Bee"] and not result.created

    result = upsert_provider_calendars(profile=profile, calendars=[CalendarData("/a/", "A")])
    assert [c.provider_calendar_id for c in result.deleted] == ["/b/"]
    assert profile.calendars.get(provider_calendar_id="/b/").is_deleted

    result = upsert_provider_calendars(
        profile=profile, calendars=[CalendarData("/a/", "A"), CalendarData("/b/", "Bee")]
    )
    assert [c.provider_calendar_id for c in result.updated] == ["/b/"]
    assert not profile.calendars.get(provider_calendar_id="/b/").is_deleted
    assert _kinds(profile)[2:] == ["calendar_updated", "calendar_deleted", "calendar_updated"]


def test_upsert_provider_calendars_unchanged_list_writes_nothing():
    profile = make_profile()
    upsert_provider_calendars(profile=profile, calendars=[CalendarData("/a/", "A")])
    result = upsert_provider_calendars(profile=profile, calendars=[CalendarData("/a/", "A")])
    assert not (result.created or result.updated or result.deleted)
    assert len(_kinds(profile)) == 1
