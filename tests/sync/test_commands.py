"""sync_calendar command and the admin "sync now" action."""

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from sync import services
from sync.models import CalendarSyncState
from sync.services import engine
from tests.factories import make_account, make_calendar
from tests.sync.helpers import soon, vcalendar, vevent

pytestmark = pytest.mark.django_db


def test_sync_calendar_command_syncs_profile_and_prints_changes(radicale_server):
    server = radicale_server
    user = server.make_user()
    url = server.make_calendar(user, name="Work")
    server.put_event(url, "a", vcalendar(vevent("a", soon(2))))
    profile = services.connect_profile(
        account=make_account(),
        provider_key="caldav",
        credentials_dict={
            "url": server.base_url + "/",
            "username": user,
            "password": server.password(user),
        },
    )
    out = io.StringIO()
    call_command("sync_calendar", profile.public_id, stdout=out)
    assert "Work: synced (full): 1 created" in out.getvalue()

    calendar = profile.calendars.get()
    out = io.StringIO()
    call_command("sync_calendar", calendar.public_id, stdout=out)
    assert f"{calendar.public_id} Work: unchanged (incremental)" in out.getvalue()


def test_admin_sync_now_action_makes_calendar_due_and_enqueues(admin_client, monkeypatch):
    calendar = make_calendar()
    CalendarSyncState.objects.create(calendar=calendar, next_poll_at=None)
    enqueued = []
    monkeypatch.setattr(engine, "enqueue_sync", enqueued.append)
    state = CalendarSyncState.objects.get(calendar=calendar)
    response = admin_client.post(
        reverse("admin:sync_calendarsyncstate_changelist"),
        {"action": "sync_now", "_selected_action": [state.pk]},
        follow=True,
    )
    assert response.status_code == 200
    state.refresh_from_db()
    assert state.next_poll_at is not None
