"""Every console action calls its service and leaves an audit entry; what support may not
edit or delete, it cannot."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.models import AuditEntry, Profile
from calendars.models import Event, ManagedEventWrite
from calendars.services import apply_provider_events
from notifications import services as notification_services
from notifications.models import Notification
from sync.models import CalendarSyncState
from sync.services import engine
from tests.console import helpers
from tests.factories import make_calendar, make_event_data


@pytest.fixture
def support_client(client, db):
    user = get_user_model().objects.create_user(username="support-agent", is_staff=True)
    user.groups.add(Group.objects.get(name="Support"))
    client.force_login(user)
    return client


@pytest.fixture
def queued(monkeypatch):
    """The sync tasks the actions queue (enqueue_sync and enqueue_full_sync are the seams)."""
    calls = {"sync": [], "full": []}
    monkeypatch.setattr(engine, "enqueue_sync", calls["sync"].append)
    monkeypatch.setattr(engine, "enqueue_full_sync", calls["full"].append)
    return calls


@pytest.fixture
def act(django_capture_on_commit_callbacks):
    """run_action, then the commit callbacks (tasks are queued after commit)."""

    def run(*args) -> str:
        with django_capture_on_commit_callbacks(execute=True):
            return run_action(*args)

    return run


def run_action(client, model, action: str, objects) -> str:
    opts = model._meta
    response = client.post(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        {"action": action, "_selected_action": [o.pk for o in objects]},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


def audit_trail() -> list[tuple[str, str, str]]:
    return list(
        AuditEntry.objects.order_by("pk").values_list("actor_username", "action", "object_id")
    )


@pytest.mark.parametrize(("action", "kind"), [("sync_now", "sync"), ("full_resync", "full")])
def test_calendar_sync_actions_queue_the_sync_and_are_audited(
    support_client, queued, act, action, kind
):
    calendar = make_calendar()
    helpers.sync_state(calendar, next_poll_at=None)
    page = act(support_client, calendar.__class__, action, [calendar])
    assert "1 calendar" in page and "queued" in page
    assert queued[kind] == [calendar.pk]
    assert CalendarSyncState.objects.get(calendar=calendar).next_poll_at is not None
    label = action.replace("_", " ")
    assert audit_trail() == [("support-agent", label, calendar.public_id)]


def test_sync_state_full_resync_queues_a_full_sync(support_client, queued, act):
    state = helpers.sync_state(make_calendar())
    act(support_client, CalendarSyncState, "full_resync", [state])
    assert queued["full"] == [state.calendar_id]
    assert audit_trail() == [("support-agent", "full resync", state.calendar.public_id)]


def test_profile_sync_now_queues_every_live_calendar(support_client, queued, act):
    calendar = make_calendar()
    make_calendar(profile=calendar.profile, is_deleted=True)
    helpers.sync_state(calendar)
    act(support_client, Profile, "sync_now", [calendar.profile])
    assert queued["sync"] == [calendar.pk]
    assert audit_trail() == [("support-agent", "sync now", calendar.profile.public_id)]


def test_profile_disconnect_goes_through_the_accounts_service(support_client):
    profile = make_calendar().profile
    page = run_action(support_client, Profile, "disconnect", [profile])
    assert "1 profile(s) disconnected." in page
    profile.refresh_from_db()
    assert profile.status == Profile.Status.DISCONNECTED
    assert profile.disconnected_reason == "disconnected by support staff"
    assert audit_trail() == [("support-agent", "disconnect", profile.public_id)]


def test_profile_page_shows_the_relink_url_and_no_edit_or_delete(support_client, admin_client):
    profile = make_calendar().profile
    change = reverse("admin:accounts_profile_change", args=[profile.pk])
    for browser in (support_client, admin_client):
        page = browser.get(change).content.decode()
        assert f"/connect/relink/{profile.public_id}/" in page
        assert 'name="_save"' not in page and 'name="status"' not in page
        delete = reverse("admin:accounts_profile_delete", args=[profile.pk])
        assert browser.post(delete, {"post": "yes"}).status_code == 403
        assert browser.post(change, {"status": "disconnected"}).status_code == 403
    assert Profile.objects.get(pk=profile.pk).status == Profile.Status.CONNECTED


def test_retry_write_calls_the_calendars_service_and_is_audited(support_client):
    calendar = make_calendar()
    failed = helpers.event_write(calendar, "failed")
    applied = helpers.event_write(calendar, "applied")
    page = run_action(support_client, ManagedEventWrite, "retry_now", [failed, applied])
    assert "1 write(s) queued again; 1 not failed" in page
    failed.refresh_from_db()
    assert failed.status == "pending"
    details = dict(AuditEntry.objects.values_list("object_id", "detail"))
    assert details == {
        str(failed.pk): "queued again",
        str(applied.pk): "not failed: left as it was",
    }


def test_redeliver_notification_calls_the_notifications_service_and_is_audited(support_client):
    notification = helpers.notification(helpers.channel(), status=Notification.Status.FAILED)
    run_action(support_client, Notification, "retry_now", [notification])
    notification.refresh_from_db()
    assert notification.status == Notification.Status.PENDING
    assert audit_trail() == [("support-agent", "redeliver notification", notification.delivery_id)]


def test_audit_log_is_visible_and_never_editable(admin_client, support_client, queued):
    calendar = make_calendar()
    run_action(support_client, calendar.__class__, "sync_now", [calendar])
    entry = AuditEntry.objects.get()
    for browser in (admin_client, support_client):
        listing = browser.get(reverse("admin:accounts_auditentry_changelist")).content.decode()
        assert "support-agent" in listing and calendar.public_id in listing
        assert "delete_selected" not in listing
        change = reverse("admin:accounts_auditentry_change", args=[entry.pk])
        assert 'name="_save"' not in browser.get(change).content.decode()
        assert browser.post(change, {"action": "tampered"}).status_code == 403
        delete = reverse("admin:accounts_auditentry_delete", args=[entry.pk])
        assert browser.post(delete, {"post": "yes"}).status_code == 403
        assert browser.get(reverse("admin:accounts_auditentry_add")).status_code == 403
    assert AuditEntry.objects.get().action == "sync now"


@pytest.mark.parametrize(
    "app, model_name",
    [
        ("accounts", "account"),
        ("accounts", "profile"),
        ("accounts", "applicationsecret"),
        ("accounts", "accounterasure"),
        ("calendars", "calendar"),
        ("calendars", "changelogentry"),  # a hole in the numbering would break cursors
        ("calendars", "managedeventwrite"),
        ("notifications", "channel"),
        ("notifications", "notification"),
    ],
)
def test_support_models_have_no_delete(admin_client, app, model_name):
    listing = admin_client.get(reverse(f"admin:{app}_{model_name}_changelist"))
    assert listing.status_code == 200
    assert b"delete_selected" not in listing.content


def test_event_content_is_hidden_until_revealed_and_the_reveal_is_audited(support_client):
    calendar = make_calendar()
    apply_provider_events(
        calendar=calendar,
        upserts=[make_event_data(summary="Salary review with Dana", description="secret-notes")],
    )
    event = Event.objects.get(calendar=calendar)
    change = reverse("admin:calendars_event_change", args=[event.pk])
    listing = support_client.get(reverse("admin:calendars_event_changelist")).content.decode()
    page = support_client.get(change).content.decode()
    for hidden in (listing, page):
        assert "Salary review" not in hidden and "secret-notes" not in hidden
    assert AuditEntry.objects.count() == 0
    reveal = reverse("admin:calendars_event_reveal", args=[event.pk])
    assert f'formaction="{reveal}"' in page
    assert support_client.get(reveal).status_code == 405  # a reveal is a deliberate POST
    revealed = support_client.post(reveal).content.decode()
    assert "Salary review with Dana" in revealed and "secret-notes" in revealed
    assert audit_trail() == [("support-agent", "reveal event content", event.event_uid)]
    assert support_client.post(reverse("admin:calendars_event_reveal", args=[0])).status_code == 404


def test_event_write_shows_which_fields_it_sets_not_their_content(support_client):
    write = helpers.event_write(make_calendar(), "failed")
    write.desired = {"summary": "Salary review with Dana", "start": "2026-12-01T10:00:00Z"}
    write.save()
    page = support_client.get(
        reverse("admin:calendars_managedeventwrite_change", args=[write.pk])
    ).content.decode()
    assert "Salary review" not in page and "start, summary" in page


def test_roles_support_views_and_admin_manages_but_nobody_edits_the_audit_log(db):
    support = set(Group.objects.get(name="Support").permissions.values_list("codename", flat=True))
    admin = set(Group.objects.get(name="Admin").permissions.values_list("codename", flat=True))
    assert {"view_calendar", "view_auditentry", "view_profile", "view_schedule"} <= support
    assert not any(c.startswith(("add_", "change_", "delete_")) for c in support)
    assert {"change_account", "change_user", "add_group", "view_auditentry"} <= admin
    assert not {"add_auditentry", "change_auditentry", "delete_auditentry"} & admin


def test_admin_role_member_still_cannot_delete_profiles_or_audit_entries(client, db):
    user = get_user_model().objects.create_user(username="admin-member", is_staff=True)
    user.groups.add(Group.objects.get(name="Admin"))
    client.force_login(user)
    profile = make_calendar().profile
    delete = reverse("admin:accounts_profile_delete", args=[profile.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:accounts_auditentry_changelist")).status_code == 200


def test_edits_through_admin_forms_are_audited_too(admin_client):
    account = make_calendar().profile.account
    change = reverse("admin:accounts_account_change", args=[account.pk])
    form = admin_client.get(change).context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields}
    data.update(name="Renamed", **{"profiles-TOTAL_FORMS": "1", "profiles-INITIAL_FORMS": "1"})
    data.update({"profiles-0-id": account.profiles.get().pk, "profiles-0-account": account.pk})
    response = admin_client.post(change, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    [entry] = AuditEntry.objects.all()
    assert (entry.actor_username, entry.action, entry.object_type) == (
        "admin",
        "change",
        "accounts.account",
    )
    assert entry.object_id == str(account.pk) and entry.detail == ""


def test_replay_sends_a_delivered_notification_again_as_a_new_delivery(support_client):
    channel = helpers.channel()
    delivered = helpers.notification(channel, status=Notification.Status.DELIVERED)
    pending = helpers.notification(channel, status=Notification.Status.PENDING)
    page = run_action(support_client, Notification, "replay", [delivered, pending])
    assert "Replayed 1 notification(s)." in page and "Skipped 1" in page
    replay = Notification.objects.exclude(pk__in=[delivered.pk, pending.pk]).get()
    assert (replay.type, replay.status, replay.channel_id) == (
        delivered.type,
        Notification.Status.PENDING,
        channel.pk,
    )
    assert replay.delivery_id != delivered.delivery_id
    details = dict(AuditEntry.objects.values_list("object_id", "detail"))
    assert details == {
        delivered.delivery_id: f"replayed as {replay.delivery_id}",
        pending.delivery_id: "not replayable",
    }


def test_replay_refuses_a_closed_channel(db):
    closed = helpers.channel(status="closed")
    notification = helpers.notification(closed, status=Notification.Status.DELIVERED)
    assert notification_services.replay_notification(notification=notification) is None


def test_bulk_deletes_through_the_admin_are_audited(admin_client):
    staff = [
        get_user_model().objects.create_user(username=f"leaver-{n}", is_staff=True)
        for n in range(3)
    ]
    response = admin_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [u.pk for u in staff], "post": "yes"},
    )
    assert response.status_code == 302
    entries = AuditEntry.objects.filter(action="delete", object_type="auth.user")
    assert sorted(entries.values_list("object_id", flat=True)) == sorted(str(u.pk) for u in staff)
    single = get_user_model().objects.create_user(username="leaver-x", is_staff=True)
    admin_client.post(reverse("admin:auth_user_delete", args=[single.pk]), {"post": "yes"})
    assert entries.filter(object_id=str(single.pk)).count() == 1  # once, not twice
