"""An ICS feed URL is the credential: it is stored encrypted and nowhere else, yet the same feed
still finds its profile. Against a real feed server on 127.0.0.1."""

import io
import uuid

import pytest
from cryptography.fernet import Fernet
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.models import Profile
from calendars.models import Calendar, Event
from sync import services
from sync.connect import connect_with_credentials
from sync.models import CalendarSyncState
from sync.providers.base import PermanentError
from tests.calendars.helpers import api_get
from tests.factories import make_access_token, make_account
from tests.sync.helpers import soon, vcalendar, vevent

BEFORE = [("sync", "0008_provider_request_slots")]
AFTER = [("sync", "0009_ics_feed_urls_out_of_identity_columns")]


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def migrate():
    """Migrates to a target; whatever happens, the test ends with every migration applied."""
    yield lambda targets: MigrationExecutor(connection).migrate(targets)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def token():
    """The secret part of the feed URL: unique, so that any hit in the database is a leak."""
    return f"tok{uuid.uuid4().hex}"


@pytest.fixture
def feed_url(httpserver, token):
    body = vcalendar(vevent("standup", soon(2)), header="X-WR-CALNAME:Team")
    httpserver.expect_request("/private/basic.ics", query_string=f"key={token}").respond_with_data(
        body, content_type="text/calendar"
    )
    return httpserver.url_for("/private/basic.ics") + f"?key={token}"


def tables_containing(text: str) -> list[str]:
    """Every table with a row holding `text` in any column (session data decoded first)."""
    hits = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            columns = [c[0] for c in cursor.description]
            for row in cursor.fetchall():
                values = [str(v) for v in row if v is not None]
                if table == "django_session":
                    values.append(str(SessionStore().decode(row[columns.index("session_data")])))
                if any(text in value for value in values):
                    hits.append(table)
    return hits


def connect(account, url: str) -> Profile:
    return services.connect_profile(
        account=account, provider_key="ics", credentials_dict={"url": url}
    )


def assert_identity_hashed(profile: Profile, token: str) -> None:
    stored = Profile.objects.get(pk=profile.pk)
    assert stored.provider_account_id.startswith("hmac-sha256:")
    assert token not in stored.provider_account_id


@pytest.mark.django_db
def test_a_connected_and_synced_feed_leaves_its_url_in_no_table(client, feed_url, token):
    assert client.post("/connect/ics/", {"feed_url": feed_url}).status_code < 400
    profile = Profile.objects.get()
    calendar = profile.calendars.get()
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    assert Event.objects.filter(calendar=calendar, provider_key="standup").exists()

    assert tables_containing(token) == []
    assert Profile.objects.get().credentials == {"url": feed_url}  # kept, encrypted
    bearer = make_access_token(account=profile.account)
    for path in ("/v1/profiles", "/v1/calendars", "/v1/userinfo", "/v1/account"):
        response = api_get(client, path, bearer)
        assert response.status_code == 200, path
        assert token not in response.content.decode(), path
    calendars = api_get(client, "/v1/calendars", bearer).json()["calendars"]
    assert [c["calendar_name"] for c in calendars] == ["Team"]


@pytest.mark.django_db
def test_a_failing_feed_records_its_failure_without_its_url(feed_url, token, httpserver):
    profile = connect(make_account(), feed_url)
    calendar = profile.calendars.get()
    httpserver.clear()
    httpserver.expect_request("/private/basic.ics").respond_with_data("down", status=500)

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status != "synced"
    assert CalendarSyncState.objects.get(calendar=calendar).last_error
    assert tables_containing(token) == []


@pytest.mark.django_db
def test_the_same_feed_connected_again_is_the_same_profile_and_calendar(feed_url, token):
    account = make_account()
    first = connect(account, feed_url)
    assert_identity_hashed(first, token)
    calendar = first.calendars.get()

    again = connect(account, feed_url)

    assert again.pk == first.pk
    assert list(again.calendars.values_list("public_id", flat=True)) == [calendar.public_id]
    assert Profile.objects.count() == 1


@pytest.mark.django_db
def test_a_relink_is_matched_by_the_feed_urls_hash(feed_url, token, httpserver):
    profile = connect(make_account(), feed_url)
    assert_identity_hashed(profile, token)
    Profile.objects.filter(pk=profile.pk).update(status=Profile.Status.DISCONNECTED)
    httpserver.expect_request("/other.ics").respond_with_data(
        vcalendar(vevent("x", soon(1))), content_type="text/calendar"
    )

    with pytest.raises(PermanentError):
        connect_with_credentials(
            account=None,
            provider_key="ics",
            credentials={"url": httpserver.url_for("/other.ics")},
            relink=profile,
        )
    relinked = connect_with_credentials(
        account=None, provider_key="ics", credentials={"url": feed_url}, relink=profile
    )

    assert relinked.pk == profile.pk and relinked.is_connected


@pytest.mark.django_db
def test_rotating_the_encryption_keys_keeps_the_lookup(feed_url, token, settings):
    account = make_account()
    profile = connect(account, feed_url)
    assert_identity_hashed(profile, token)

    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.ENCRYPTION_KEYS]

    assert connect(account, feed_url).pk == profile.pk


@pytest.mark.django_db
def test_rotating_the_hash_keys_finds_old_rows_and_rehashes_them(feed_url, settings):
    account = make_account()
    settings.IDENTITY_HASH_KEYS = ["old-hash-key"]
    profile = connect(account, feed_url)
    hashed_under_old = Profile.objects.get().provider_account_id

    settings.IDENTITY_HASH_KEYS = ["new-hash-key", "old-hash-key"]
    again = connect(account, feed_url)

    assert again.pk == profile.pk
    stored = Profile.objects.get().provider_account_id
    assert stored.startswith("hmac-sha256:") and stored != hashed_under_old
    settings.IDENTITY_HASH_KEYS = ["new-hash-key"]  # the old key can go now
    assert connect(account, feed_url).pk == profile.pk


@pytest.mark.django_db
def test_rehash_identities_moves_every_feed_to_the_first_hash_key(feed_url, settings):
    account = make_account()
    settings.IDENTITY_HASH_KEYS = ["old-hash-key"]
    profile = connect(account, feed_url)
    settings.IDENTITY_HASH_KEYS = ["new-hash-key", "old-hash-key"]

    first, second = io.StringIO(), io.StringIO()
    call_command("rehash_identities", "--batch-size", "1", stdout=first)
    call_command("rehash_identities", stdout=second)

    assert "1 profile(s) re-hashed of 1 scanned" in first.getvalue()
    assert "0 profile(s) re-hashed of 1 scanned" in second.getvalue()
    settings.IDENTITY_HASH_KEYS = ["new-hash-key"]
    assert connect(account, feed_url).pk == profile.pk


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_existing_feed_urls_out_of_the_identity_columns(
    migrate, feed_url, token
):
    migrate(BEFORE)
    old = MigrationExecutor(connection).loader.project_state(BEFORE).apps
    account = make_account()
    profile = old.get_model("accounts", "Profile").objects.create(
        account_id=account.pk,
        provider="ics",
        provider_service="ics",
        provider_account_id=feed_url,
        profile_name="127.0.0.1",
        credentials={"url": feed_url},
    )
    old.get_model("calendars", "Calendar").objects.create(
        profile_id=profile.pk, provider_calendar_id=feed_url, name="Team", is_readonly=True
    )
    assert set(tables_containing(token)) == {"accounts_profile", "calendars_calendar"}

    migrate(AFTER)

    assert tables_containing(token) == []
    migrate(latest())  # the live models below hold the later migrations' columns
    calendar = Calendar.objects.get()
    assert connect(account, feed_url).pk == profile.pk  # found by the hash
    assert list(Calendar.objects.values_list("pk", flat=True)) == [calendar.pk]
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    assert Event.objects.filter(calendar=calendar, provider_key="standup").exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_reversed_puts_the_url_back(migrate, feed_url):
    account = make_account()
    profile = connect(account, feed_url)

    migrate(BEFORE)

    assert Profile.objects.get().provider_account_id == feed_url
    assert Calendar.objects.get().provider_calendar_id == feed_url
    migrate(AFTER)
    assert Profile.objects.get().provider_account_id.startswith("hmac-sha256:")
    migrate(latest())
    assert connect(account, feed_url).pk == profile.pk
