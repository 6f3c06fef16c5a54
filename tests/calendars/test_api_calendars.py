"""GET/POST /v1/calendars (docs/api.md, Calendars)."""

import pytest

from calendars.models import Calendar, ChangeLogEntry
from calendars.services import ProviderCalendar
from tests.calendars.helpers import api_get, auth
from tests.factories import make_access_token, make_account, make_calendar, make_profile

CREATED: list[dict] = []


def recording_creator(*, profile, name, color):
    """Stands in for the sync app's provider adapter (the provider is CalDAV here)."""
    CREATED.append({"profile": profile.public_id, "name": name, "color": color})
    return ProviderCalendar(provider_calendar_id=f"/calendars/{name}/", name=name, color=color)


@pytest.fixture
def provider(settings):
    CREATED.clear()
    settings.CALENDAR_PROVIDER_CREATOR = "tests.calendars.test_api_calendars.recording_creator"
    return CREATED


@pytest.fixture
def owner(db):
    account = make_account()
    profile = make_profile(account=account, profile_name="me@example.com")
    return account, profile


def post(client, token, body):
    return client.post("/v1/calendars", body, content_type="application/json", **auth(token))


def test_list_calendars_shape_and_only_own(client, owner):
    account, profile = owner
    work = make_calendar(profile=profile, name="Work", is_primary=True)
    make_calendar(profile=profile, name="Old", is_deleted=True)
    make_calendar(name="Someone else's")
    token = make_access_token(account=account, scope="list_calendars")

    response = api_get(client, "/v1/calendars", token)

    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == account.public_id
    assert [c["calendar_name"] for c in body["calendars"]] == ["Old", "Work"]
    assert body["calendars"][1] == {
        "provider_name": "caldav",
        "profile_id": profile.public_id,
        "profile_name": "me@example.com",
        "calendar_id": work.public_id,
        "calendar_name": "Work",
        "calendar_readonly": False,
        "calendar_deleted": False,
        "calendar_primary": True,
        "calendar_integrated_conferencing_available": False,
        "calendar_attachments_available": False,
        "permission_level": "unrestricted",
        # Never synced yet (docs/api.md, Freshness).
        "sync_status": {
            "state": "lagging",
            "source": "poll",
            "last_synced_at": None,
            "lag_seconds": None,
        },
    }
    assert body["calendars"][0]["calendar_deleted"] is True


def test_list_calendars_without_token_is_401_and_without_scope_403(client, owner):
    account, _ = owner
    assert api_get(client, "/v1/calendars").status_code == 401
    token = make_access_token(account=account, scope="read_events")
    assert api_get(client, "/v1/calendars", token).status_code == 403


def test_create_calendar_records_it_through_the_provider(client, owner, provider):
    account, profile = owner
    token = make_access_token(account=account, scope="create_calendar")

    response = post(
        client, token, {"profile_id": profile.public_id, "name": "Bookings", "color": "#49BED8"}
    )

    assert response.status_code == 200
    calendar = response.json()["calendar"]
    assert calendar["calendar_name"] == "Bookings"
    assert calendar["profile_id"] == profile.public_id
    assert calendar["calendar_readonly"] is False and calendar["calendar_deleted"] is False
    assert provider == [{"profile": profile.public_id, "name": "Bookings", "color": "#49BED8"}]
    row = Calendar.objects.get(public_id=calendar["calendar_id"])
    assert (row.profile, row.provider_calendar_id, row.color) == (
        profile,
        "/calendars/Bookings/",
        "#49BED8",
    )
    assert ChangeLogEntry.objects.filter(calendar=row, kind="calendar_created").count() == 1


def test_create_calendar_duplicate_name_is_exact_422(client, owner, provider):
    account, profile = owner
    make_calendar(profile=profile, name="Bookings")
    token = make_access_token(account=account, scope="create_calendar")

    response = post(client, token, {"profile_id": profile.public_id, "name": "bookings"})

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert list(errors) == ["name"]
    assert errors["name"][0]["key"] == "errors.duplicate_calendar_name"
    assert errors["name"][0]["description"]
    assert provider == []


def test_create_calendar_requires_scope_and_own_profile(client, owner, provider):
    account, profile = owner
    assert post(client, None, {"profile_id": profile.public_id, "name": "X"}).status_code == 401
    reader = make_access_token(account=account, scope="read_only")
    assert post(client, reader, {"profile_id": profile.public_id, "name": "X"}).status_code == 403
    token = make_access_token(account=account, scope="create_calendar")
    foreign = make_profile()
    assert post(client, token, {"profile_id": foreign.public_id, "name": "X"}).status_code == 404
    assert post(client, token, {"profile_id": "pro_unknown", "name": "X"}).status_code == 404
    assert provider == []


@pytest.mark.parametrize(
    ("body", "field", "key"),
    [
        ({"name": "X"}, "profile_id", "errors.required"),
        ({"profile_id": "pro_x"}, "name", "errors.required"),
        ({"profile_id": "pro_x", "name": "   "}, "name", "errors.blank"),
        ({"profile_id": "pro_x", "name": "X", "color": "blue"}, "color", "errors.invalid_color"),
    ],
)
def test_create_calendar_bad_body_is_422(client, owner, provider, body, field, key):
    account, _ = owner
    token = make_access_token(account=account, scope="create_calendar")
    response = post(client, token, body)
    assert response.status_code == 422
    assert response.json()["errors"][field][0]["key"] == key


def test_create_calendar_in_disconnected_profile_is_423(client, owner, provider):
    account, profile = owner
    profile.status = profile.Status.DISCONNECTED
    profile.save()
    token = make_access_token(account=account, scope="create_calendar")
    assert post(client, token, {"profile_id": profile.public_id, "name": "X"}).status_code == 423


def test_create_calendar_without_provider_support_is_422(client, owner, settings):
    settings.CALENDAR_PROVIDER_CREATOR = "calendars.services.provider_calendar_creation_unsupported"
    account, profile = owner
    token = make_access_token(account=account, scope="create_calendar")
    response = post(client, token, {"profile_id": profile.public_id, "name": "X"})
    assert response.status_code == 422
    assert (
        response.json()["errors"]["profile_id"][0]["key"]
        == "errors.calendar_creation_not_supported"
    )
    assert not Calendar.objects.filter(name="X").exists()
