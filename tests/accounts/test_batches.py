"""Many-row writes (accounts.batches): updating changed objects, and the change sequence that
every event write allocates (accounts.models.Account.allocate_change_sequences)."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.batches import update_rows
from accounts.models import Account, Profile
from tests.factories import make_account, make_profile


@pytest.mark.django_db
@pytest.mark.parametrize("count", [0, 1, 3])
def test_update_rows_saves_the_fields_of_every_object_in_one_statement(count):
    profiles = [make_profile(profile_name=f"p{n}@example.com") for n in range(count)]
    for n, profile in enumerate(profiles):
        profile.profile_name = f"renamed{n}@example.com"
        profile.status = Profile.Status.DISCONNECTED

    with CaptureQueriesContext(connection) as queries:
        update_rows(Profile, profiles, ["profile_name", "status"])

    updates = [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == min(count, 1)
    for n, profile in enumerate(profiles):
        profile.refresh_from_db()
        assert (profile.profile_name, profile.status) == (f"renamed{n}@example.com", "disconnected")


@pytest.mark.django_db
def test_update_rows_leaves_the_other_fields_alone():
    profile = make_profile(profile_name="kept@example.com")
    Profile.objects.filter(pk=profile.pk).update(profile_name="changed-meanwhile@example.com")
    profile.status = Profile.Status.DISCONNECTED

    update_rows(Profile, [profile], ["status"])

    profile.refresh_from_db()
    assert (profile.profile_name, profile.status) == (
        "changed-meanwhile@example.com",
        "disconnected",
    )


@pytest.mark.django_db
def test_allocate_change_sequences_reserves_consecutive_numbers_in_one_statement():
    account = make_account()
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        first = account.allocate_change_sequences(3)
        second = account.allocate_change_sequences(2)

    assert (list(first), list(second)) == ([1, 2, 3], [4, 5])
    assert account.last_change_seq == 5 == Account.objects.get(pk=account.pk).last_change_seq
    assert sum(q["sql"].startswith("UPDATE") for q in queries.captured_queries) == 2
    assert not any(q["sql"].startswith("SELECT") for q in queries.captured_queries)
