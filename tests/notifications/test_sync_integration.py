"""The sync engine against real Radicale, told to integrators through real push deliveries."""

import pytest

from accounts.models import Profile
from notifications import services as push
from sync import services as sync
from tests.factories import make_account
from tests.notifications.conftest import deliver_all, make_integrator, open_channel
from tests.sync.helpers import soon, vcalendar, vevent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_loopback")]


@pytest.fixture
def connected(radicale_server, receiver):
    """A channel opened before a fresh Radicale user's calendar is connected."""
    user = radicale_server.make_user()
    calendar_url = radicale_server.make_calendar(user, name="Work")
    account = make_account()
    app = make_integrator()
    open_channel(account, app, receiver.url())
    profile = sync.connect_profile(
        account=account,
        provider_key="caldav",
        credentials_dict={
            "url": radicale_server.base_url + "/",
            "username": user,
            "password": radicale_server.password(user),
        },
    )
    return profile, calendar_url, user


def sync_all(profile: Profile):
    for calendar in profile.calendars.all():
        sync.sync_calendar(calendar_id=calendar.pk)


def test_first_sync_sends_initial_sync_completed_then_changes(connected, radicale_server, receiver):
    profile, calendar_url, user = connected
    sync_all(profile)
    push.relay_changes()
    deliver_all()
    assert len(receiver.of_type("profile_initial_sync_completed")) == 1
    changes_before = len(receiver.of_type("change"))

    radicale_server.put_event(calendar_url, "e1", vcalendar(vevent("e1", soon())), user=user)
    sync_all(profile)
    push.relay_changes()
    deliver_all()
    changes = receiver.of_type("change")
    assert len(changes) == changes_before + 1
    change = changes[-1]
    assert change.json["notification"]["changes_since"].endswith("Z")


def test_rejected_password_disconnects_and_notifies_once(connected, receiver):
    profile, _, _ = connected
    profile.credentials = {**profile.credentials, "password": "changed-by-the-user"}
    profile.save()
    sync_all(profile)
    sync_all(profile)
    deliver_all()
    profile.refresh_from_db()
    assert profile.status == Profile.Status.DISCONNECTED
    assert len(receiver.of_type("profile_disconnected")) == 1
