"""Erasing an account (accounts/erasure.py): every row of the account, in every table, gone;
integrators told first; provider grants revoked; an interrupted erasure resumed."""

import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.apps import apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import connection, models
from django.utils import timezone
from oauth2_provider.models import DeviceGrant, Grant, IDToken, RefreshToken
from social_django.models import Code, UserSocialAuth

import calendars.services
from accounts.erasure import erase_by_reference, request_erasure, resume_erasures
from accounts.fields import EncryptedJSONField, encrypted_fields
from accounts.models import Account, AccountErasure, AuditEntry, IssuedCode, Profile
from accounts.pending import SESSION_KEY as PENDING_KEY
from calendars.models import AvailabilityRule, AvailablePeriod, Event, ManagedEventWrite
from calendars.services import apply_provider_events
from notifications import services as notification_services
from notifications.models import Notification
from sync.models import (
    CalendarSyncState,
    ProfileSyncState,
    ProviderRequestSlot,
    ProviderSubscription,
    SyncActivity,
    SyncedResource,
)
from sync.sandbox.google import GoogleSandbox
from sync.services import build_provider
from sync.services.erasure import NOT_SUPPORTED
from tests.factories import (
    make_access_token,
    make_account,
    make_calendar,
    make_event_data,
    make_profile,
)
from tests.notifications.conftest import (
    Receiver,
    Reply,
    deliver_all,
    make_integrator,
    open_channel,
)

pytestmark = pytest.mark.django_db

GOOGLE_CLIENT = ("erasure-client", "erasure-secret")

# Models with a path to an account or a user that an account's erasure leaves alone, and why.
# Any other such model must get a seeded row below: a new model is caught here.
NOT_ACCOUNT_DATA = {
    "oauth2_provider.Application": "the integrator's; its owner is a staff user",
    "accounts.ApplicationSecret": "the integrator's",
    "admin.LogEntry": "written by staff; entries about the account's rows are erased",
    "accounts.AuditEntry": "written by staff, naming our ids only (no labels, no content)",
    "auth.User_groups": "staff group membership (end-users have none)",
    "auth.User_user_permissions": "staff permissions (end-users have none)",
}


@pytest.fixture(autouse=True)
def _quiet_triggers(settings):
    # Outbox rows are the truth: the tests run the dispatcher themselves, and push callbacks
    # go to the receiver on 127.0.0.1.
    settings.PUSH_ENQUEUE_ON_COMMIT = False
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    settings.PUSH_CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def google(settings):
    sandbox = GoogleSandbox().start()
    sandbox.add_client(*GOOGLE_CLIENT, ["http://testserver/complete/google-oauth2/"])
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_REVOKE_TOKEN_URL = f"{sandbox.url}/revoke"
    settings.GOOGLE_TOKEN_URL = f"{sandbox.url}/token"
    yield sandbox
    sandbox.stop()


def google_profile(sandbox, account, email):
    sandbox.add_user(email, name="Erased User")
    access, refresh = sandbox.issue_tokens(email, GOOGLE_CLIENT[0], ["openid", "email"])
    return make_profile(
        account=account,
        provider=Profile.Provider.GOOGLE,
        provider_service="google",
        provider_account_id=f"google-{uuid.uuid4().hex}",
        profile_name=email,
        credentials={"access_token": access, "refresh_token": refresh},
    )


def refresh_works(sandbox, refresh_token) -> bool:
    answer = requests.post(
        f"{sandbox.url}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": GOOGLE_CLIENT[0],
            "client_secret": GOOGLE_CLIENT[1],
        },
        timeout=5,
    )
    return answer.status_code == 200


# --- seeding: one row of every kind an account owns, then a marker in every text field ---


def seed_account(mark: str, integrator, receiver, sandbox) -> Account:
    """An account with a row in every table an account reaches (profiles of each kind,
    calendars, events, writes, change log, channels, notifications and attempts, sync state,
    OAuth tokens and grants, social auth, sessions, admin history)."""
    account = make_account(email=f"{mark}@example.com", name=mark)
    google = google_profile(sandbox, account, f"{mark}.g@example.com")
    caldav = make_profile(account=account, profile_name=f"{mark}.dav@example.com")
    calendar = make_calendar(profile=caldav)
    make_calendar(profile=google)
    apply_provider_events(calendar=calendar, upserts=[make_event_data(key=f"{mark}-1")])
    event = Event.objects.filter(calendar=calendar).first()
    ManagedEventWrite.objects.create(
        account=account, calendar=calendar, event=event, operation="upsert", desired={}
    )
    AvailabilityRule.objects.create(
        account=account,
        rule_id=f"{mark}-rule",
        tzid="Europe/London",
        calendar_ids=[calendar.public_id],
        weekly_periods=[{"day": "monday", "start_time": "09:00", "end_time": "17:00"}],
    )
    AvailablePeriod.objects.create(
        account=account,
        period_id=f"{mark}-period",
        start=datetime(2026, 12, 1, 9, tzinfo=UTC),
        end=datetime(2026, 12, 1, 17, tzinfo=UTC),
    )
    CalendarSyncState.objects.create(calendar=calendar)
    ProfileSyncState.objects.create(profile=caldav)
    SyncedResource.objects.create(calendar=calendar, href=f"/{mark}.ics", uids=[mark])
    ProviderSubscription.objects.create(
        calendar=calendar, channel_id=uuid.uuid4().hex, secret="push-secret"
    )
    ProviderRequestSlot.objects.create(profile=caldav, number=1)
    SyncActivity.objects.create(
        profile=caldav, calendar=calendar, kind="sync", outcome="failed", detail="timeout"
    )
    receiver.script = lambda received: Reply(status=500)  # an attempt logged, then failed
    open_channel(account, integrator, receiver.url(f"/{uuid.uuid4().hex}"))
    deliver_all()
    raw = make_access_token(account=account, application=integrator)
    access = account.user.oauth2_provider_accesstoken.get(token_checksum__isnull=False)
    RefreshToken.objects.create(
        user=account.user, application=integrator, access_token=access, token=raw + "r"
    )
    Grant.objects.create(
        user=account.user,
        application=integrator,
        code=secrets.token_hex(8),
        expires=timezone.now() + timedelta(minutes=5),
        redirect_uri="https://integrator.example.com/callback",
    )
    DeviceGrant.objects.create(
        user=account.user,
        client_id=integrator.client_id,
        device_code=secrets.token_hex(8),
        user_code=secrets.token_hex(4),
        expires=timezone.now() + timedelta(minutes=5),
    )
    IDToken.objects.create(
        user=account.user, application=integrator, expires=timezone.now() + timedelta(hours=1)
    )
    IssuedCode.objects.create(
        code_checksum=secrets.token_hex(32), application=integrator, account=account
    )
    UserSocialAuth.objects.create(user=account.user, provider="google-oauth2", uid=mark)
    Code.objects.create(email=account.email, code=secrets.token_hex(8))
    signed_in = SessionStore()
    signed_in["_auth_user_id"] = str(account.user_id)
    signed_in["note"] = mark
    signed_in.create()
    connecting = SessionStore()
    connecting[PENDING_KEY] = {"query": mark, "profile_id": caldav.public_id}
    connecting.create()
    staff = get_user_model().objects.get(is_staff=True)
    for obj in (account, caldav, calendar, event):
        LogEntry.objects.log_actions(
            user_id=staff.pk,
            queryset=type(obj).objects.filter(pk=obj.pk),
            action_flag=CHANGE,
            change_message=mark,
        )
    return account


def text_fields(model) -> list[models.Field]:
    """The fields of a model that can hold what a user typed or a provider sent."""
    bound = {f.bind_to for f in encrypted_fields(model) if f.bind_to}
    return [
        field
        for field in model._meta.concrete_fields
        if isinstance(field, models.CharField | models.TextField | models.JSONField)
        and not field.primary_key
        and not field.choices
        and not field.is_relation
        and field.name not in bound  # an encryption binding: ours, set once
        and field.name != "public_id"  # our own ids, generated
        and (model, field.name) != (LogEntry, "object_id")  # which row the entry is about
        and field.model is not Session  # sessions are seeded through their data
        # Staff's record of what they did, written as the seeding goes (admin history is
        # mirrored into it): names our ids only, never a label or a change message.
        and field.model is not AuditEntry
    ]


def marked(mark: str, field: models.Field, value, row_pk) -> object:
    text = f"{mark}-{row_pk}"
    if isinstance(field, models.EmailField):
        # One address per account, as in life: rows keyed by e-mail (social-auth's codes)
        # are the account's because they carry its address.
        return f"{mark}@example.com"
    if isinstance(field, models.URLField):
        return f"https://example.com/{text}"
    if isinstance(field, models.JSONField | EncryptedJSONField):
        if isinstance(value, dict):
            return {**value, "marker": text}
        return [*(value or []), text]
    if field.max_length and field.max_length < len(text):
        return None
    return text


def mark_new_rows(mark: str, before: dict) -> set[str]:
    """Put the marker into every text field of every row created since `before`; returns the
    labels of the models that got rows."""
    seeded = set()
    for model in apps.get_models():
        fresh = model._base_manager.exclude(pk__in=before[model._meta.label])
        for row in fresh:
            seeded.add(model._meta.label)
            changed = []
            for field in text_fields(model):
                value = marked(mark, field, getattr(row, field.attname), row.pk)
                if value is not None:
                    setattr(row, field.attname, value)
                    changed.append(field.name)
            if changed:
                row.save(update_fields=changed)
    return seeded


def snapshot() -> dict:
    return {
        model._meta.label: set(model._base_manager.values_list("pk", flat=True))
        for model in apps.get_models()
    }


def account_models() -> set[str]:
    """Labels of the models with a foreign-key path to Account or the user model."""
    roots = {Account, get_user_model()}
    reach = set(roots)
    every = apps.get_models(include_auto_created=True)
    grew = True
    while grew:
        grew = False
        for model in every:
            if model in reach:
                continue
            targets = {f.related_model for f in model._meta.concrete_fields if f.is_relation}
            if targets & reach:
                reach.add(model)
                grew = True
    return {m._meta.label for m in reach}


# --- scanning every table for a marker ---


def marker_hits(mark: str) -> list[str]:
    """Where `mark` appears: every model's decoded values (encrypted fields decrypted,
    sessions and django-q's pickled fields decoded) and every table's raw columns."""
    hits = []
    for model in apps.get_models(include_auto_created=True):
        for row in model._base_manager.all():
            for field in model._meta.concrete_fields:
                if mark in str(getattr(row, field.attname)):
                    hits.append(f"{model._meta.label}.{field.name}#{row.pk}")
            if isinstance(row, Session) and mark in str(row.get_decoded()):
                hits.append(f"session {row.session_key}")
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {quote(table)}")  # noqa: S608 (introspected name)
            for row in cursor.fetchall():
                for value in row:
                    binary = isinstance(value, bytes | memoryview)
                    text = bytes(value).decode("latin-1") if binary else str(value)
                    if mark in text:
                        hits.append(f"table {table}")
    return hits


@pytest.fixture
def two_accounts(receiver, google, admin_user):
    """Account A (to erase) and account B (to keep), each seeded with its own marker."""
    integrator = make_integrator()
    marks = {"a": f"zqa{uuid.uuid4().hex[:8]}", "b": f"zqb{uuid.uuid4().hex[:8]}"}
    before = snapshot()
    keep = seed_account(marks["b"], integrator, receiver, google)
    mark_new_rows(marks["b"], before)
    before = snapshot()
    erase = seed_account(marks["a"], integrator, receiver, google)
    seeded = mark_new_rows(marks["a"], before)
    return erase, keep, marks, seeded


def test_erasure_leaves_no_trace_of_the_account_in_any_table_or_log(two_accounts, caplog):
    erase, keep, marks, seeded = two_accounts
    uncovered = account_models() - seeded - set(NOT_ACCOUNT_DATA)
    assert not uncovered, f"seed a row of these in seed_account(): {sorted(uncovered)}"
    assert marker_hits(marks["a"])
    kept_before = sorted(marker_hits(marks["b"]))

    with caplog.at_level(logging.DEBUG):
        erasure = erase_by_reference(reference=erase.public_id, wait=False)

    assert erasure.is_done
    assert marker_hits(marks["a"]) == []
    assert not [r for r in caplog.records if marks["a"] in r.getMessage()]
    assert sorted(marker_hits(marks["b"])) == kept_before
    assert Account.objects.filter(pk=keep.pk).exists()
    assert not Account.objects.filter(pk=erase.pk).exists()
    assert not get_user_model().objects.filter(pk=erase.user_id).exists()


def test_an_interrupted_erasure_resumes_where_it_stopped(two_accounts, monkeypatch):
    erase, keep, marks, _ = two_accounts
    real_step = calendars.services.erase_account_calendars

    def killed(**kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(calendars.services, "erase_account_calendars", killed)
    with pytest.raises(RuntimeError):
        erase_by_reference(reference=erase.public_id, wait=False)

    erasure = AccountErasure.objects.get(account_public_id=erase.public_id)
    assert erasure.state == AccountErasure.State.ERASING
    assert erasure.step == "calendars.services.erase_account_calendars"
    assert erasure.last_error == "calendars.services.erase_account_calendars: RuntimeError"
    assert Account.objects.filter(pk=erase.pk).exists()  # half done: channels gone, events left
    assert not erase.channels.exists() and erase.events.exists()

    monkeypatch.setattr(calendars.services, "erase_account_calendars", real_step)
    assert resume_erasures() == 1

    erasure.refresh_from_db()
    assert erasure.is_done and erasure.last_error == ""
    assert marker_hits(marks["a"]) == []
    # Revoked before the kill, and not tried again when resumed.
    outcomes = [(entry["provider"], entry["outcome"]) for entry in erasure.revocations]
    assert sorted(outcomes) == [("caldav", NOT_SUPPORTED["caldav"]), ("google", "revoked")]
    assert Account.objects.filter(pk=keep.pk).exists()


# --- the order: integrators hear gdpr_requested before anything is erased ---


def test_gdpr_requested_is_delivered_before_the_account_is_erased(receiver):
    account = make_account()
    open_channel(account, make_integrator(), receiver.url("/hook"))
    deliver_all()

    call_command("erase_account", account.email)

    assert Account.objects.filter(pk=account.pk).exists()  # waiting for the delivery
    assert resume_erasures() == 0
    deliver_all()
    assert [r.json["notification"] for r in receiver.of_type("gdpr_requested")] == [
        {"type": "gdpr_requested"}
    ]
    assert resume_erasures() == 1
    assert not Account.objects.filter(pk=account.pk).exists()


def test_erasure_goes_ahead_once_the_notifications_gave_up(receiver):
    account = make_account()
    open_channel(account, make_integrator(), receiver.url("/hook"))
    deliver_all()
    receiver.script = lambda received: Reply(status=503)
    call_command("erase_account", account.public_id)
    deliver_all()
    assert Notification.objects.filter(type="gdpr_requested", status="pending").exists()

    AccountErasure.objects.update(requested_at=timezone.now() - timedelta(hours=26))

    assert resume_erasures() == 1
    assert not Account.objects.filter(pk=account.pk).exists()


def test_asking_twice_sends_gdpr_requested_once(receiver):
    account = make_account()
    open_channel(account, make_integrator(), receiver.url("/hook"))
    call_command("erase_account", account.public_id)
    call_command("erase_account", account.public_id)
    assert notification_services.count_pending_gdpr_requested(account) == 1


# --- provider grants ---


def test_erasure_revokes_the_google_grant(google):
    account = make_account()
    profile = google_profile(google, account, "ada@example.com")
    refresh = profile.credentials["refresh_token"]
    assert refresh_works(google, refresh)

    erasure = erase_by_reference(reference=account.public_id)

    assert erasure.revocations == [
        {"profile": profile.public_id, "provider": "google", "outcome": "revoked"}
    ]
    assert not refresh_works(google, refresh)


def test_erasure_stops_push_channels_even_with_an_expired_access_token(google, settings):
    settings.GOOGLE_APIS_URL = google.url
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY, settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = (
        GOOGLE_CLIENT
    )
    account = make_account()
    profile = google_profile(google, account, "ada@example.com")
    access, refresh = google.issue_tokens("ada@example.com", GOOGLE_CLIENT[0], ["calendar"])
    profile.credentials = {"access_token": access, "refresh_token": refresh}
    profile.save()
    calendar = make_calendar(profile=profile, provider_calendar_id="ada@example.com")
    adapter = build_provider(profile.provider, profile.credentials)
    watch = adapter.watch(
        "ada@example.com",
        channel_id="chan-1",
        address="https://calsync.example.com/push/google/",
        token="secret",
        ttl_seconds=3600,
    )
    ProviderSubscription.objects.create(
        calendar=calendar, channel_id="chan-1", resource_id=watch.resource_id, secret="secret"
    )
    google.expire_access_tokens()  # the erasure disconnects first: nothing else refreshes it

    erase_by_reference(reference=account.public_id)

    assert [c["stopped"] for c in google.channels()] == [True]


def test_a_failed_revocation_is_recorded_and_does_not_block_erasure(settings, receiver):
    receiver.script = lambda received: Reply(status=503)
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_REVOKE_TOKEN_URL = receiver.url("/revoke")
    account = make_account()
    make_profile(
        account=account,
        provider=Profile.Provider.GOOGLE,
        credentials={"access_token": "a", "refresh_token": "r"},
    )
    microsoft = make_profile(
        account=account, provider=Profile.Provider.MICROSOFT, credentials={"access_token": "a"}
    )

    erasure = erase_by_reference(reference=account.public_id)

    assert erasure.is_done
    outcomes = {entry["provider"]: entry["outcome"] for entry in erasure.revocations}
    assert outcomes["google"] == "failed: revocation endpoint answered 503"
    assert outcomes["microsoft"].startswith("not supported by Microsoft")
    assert microsoft.public_id in {entry["profile"] for entry in erasure.revocations}
    assert not Account.objects.filter(pk=account.pk).exists()


# --- the command and the admin action ---


def test_erase_account_command_refuses_unknown_ambiguous_and_staff_accounts(admin_user):
    with pytest.raises(CommandError, match="no account matches"):
        call_command("erase_account", "nobody@example.com")
    make_account(email="twice@example.com")
    make_account(email="Twice@example.com")
    with pytest.raises(CommandError, match="several accounts match"):
        call_command("erase_account", "twice@example.com")
    staff = make_account()
    staff.user.is_staff = True
    staff.user.save()
    with pytest.raises(CommandError, match="staff user"):
        call_command("erase_account", staff.public_id)
    assert not AccountErasure.objects.exists()


def test_erase_account_command_reports_the_outcome(capsys):
    account = make_account()
    make_profile(account=account)
    call_command("erase_account", account.public_id)
    out = capsys.readouterr().out
    assert f"{account.public_id}: erased at" in out
    assert "(caldav): nothing to revoke" in out


def test_admin_action_erases_the_selected_accounts(admin_client):
    account, other = make_account(), make_account()
    response = admin_client.post(
        "/admin/accounts/account/",
        {"action": "erase_accounts", "_selected_action": [account.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == [f"{account.public_id}: erased"]
    assert not Account.objects.filter(pk=account.pk).exists()
    assert Account.objects.filter(pk=other.pk).exists()
    page = admin_client.get("/admin/accounts/accounterasure/")
    assert account.public_id in page.content.decode()


def test_an_erasure_held_by_another_run_is_left_to_it():
    busy = make_account()
    erasure = request_erasure(account=busy)
    AccountErasure.objects.filter(pk=erasure.pk).update(
        claimed_until=timezone.now() + timedelta(minutes=5)
    )

    with pytest.raises(CommandError, match="being erased by another run"):
        call_command("erase_account", busy.public_id)
    assert resume_erasures() == 0
    assert Account.objects.filter(pk=busy.pk).exists()

    # A killed run's claim lapses; then the sweep finishes the erasure.
    AccountErasure.objects.filter(pk=erasure.pk).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )
    assert resume_erasures() == 1
    assert not Account.objects.filter(pk=busy.pk).exists()
