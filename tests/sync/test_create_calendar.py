"""POST /v1/calendars through the sync app's provider adapters (CALENDAR_PROVIDER_CREATOR)."""

import pytest

from accounts.models import Profile
from calendars.models import Calendar
from sync import services
from tests.factories import make_access_token, make_account, make_profile


def post_calendar(client, token, **body):
    return client.post(
        "/v1/calendars", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


@pytest.fixture
def caldav_profile(db, radicale_server):
    user = radicale_server.make_user()
    return services.connect_profile(
        account=make_account(),
        provider_key="caldav",
        credentials_dict={
            "url": radicale_server.base_url + "/",
            "username": user,
            "password": radicale_server.password(user),
        },
    )


def test_create_calendar_makes_a_collection_at_the_caldav_server(client, caldav_profile):
    token = make_access_token(account=caldav_profile.account, scope="create_calendar")
    response = post_calendar(client, token, profile_id=caldav_profile.public_id, name="Bookings")

    assert response.status_code == 200
    created = response.json()["calendar"]
    assert created["calendar_name"] == "Bookings"
    calendar = Calendar.objects.get(public_id=created["calendar_id"])
    at_server = services.build_provider("caldav", caldav_profile.credentials).list_calendars()
    assert calendar.provider_calendar_id in {c.provider_calendar_id for c in at_server}
    assert "Bookings" in {c.name for c in at_server}


def test_create_calendar_twice_is_the_duplicate_name_422(client, caldav_profile):
    token = make_access_token(account=caldav_profile.account, scope="create_calendar")
    post_calendar(client, token, profile_id=caldav_profile.public_id, name="Bookings")
    response = post_calendar(client, token, profile_id=caldav_profile.public_id, name="Bookings")
    assert response.status_code == 422
    assert response.json()["errors"]["name"][0]["key"] == "errors.duplicate_calendar_name"


def test_create_calendar_in_an_ics_profile_is_not_supported(client, db):
    profile = make_profile(provider=Profile.Provider.ICS, credentials={"url": "https://x/a.ics"})
    token = make_access_token(account=profile.account, scope="create_calendar")
    response = post_calendar(client, token, profile_id=profile.public_id, name="Bookings")
    assert response.status_code == 422
    assert "profile_id" in response.json()["errors"]


def test_create_calendar_with_rejected_credentials_is_423(client, caldav_profile):
    caldav_profile.credentials = {**caldav_profile.credentials, "password": "wrong"}
    caldav_profile.save()
    token = make_access_token(account=caldav_profile.account, scope="create_calendar")
    response = post_calendar(client, token, profile_id=caldav_profile.public_id, name="Bookings")
    assert response.status_code == 423
