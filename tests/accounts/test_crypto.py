import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from accounts import crypto
from accounts.models import ApplicationSecret, Profile
from accounts.services import reencrypt_secrets
from tests.factories import make_application, make_profile


def raw_credentials(profile: Profile) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM accounts_profile WHERE id = %s", [profile.pk])
        return cursor.fetchone()[0]


def test_encrypt_decrypt_round_trip(settings):
    token = crypto.encrypt("hello", purpose="p")
    assert token != "hello"
    assert crypto.decrypt(token, purpose="p") == "hello"


def test_decrypt_refuses_a_ciphertext_of_another_purpose():
    token = crypto.encrypt("hello", purpose="a")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, purpose="b")


def test_decrypt_with_unknown_key_fails(settings):
    token = crypto.encrypt("hello", purpose="p")
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, purpose="p")


def test_profile_credentials_are_ciphertext_in_the_column(db):
    profile = make_profile(credentials={"password": "hunter2-marker"})
    assert "hunter2-marker" not in raw_credentials(profile)
    assert Profile.objects.get(pk=profile.pk).credentials == {"password": "hunter2-marker"}


def test_ciphertext_moved_to_another_column_does_not_decrypt(db):
    profile = make_profile()
    secret = ApplicationSecret.objects.create(
        application=make_application(), secret_hash="x", secret_checksum="y", secret="s"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM accounts_applicationsecret WHERE id = %s", [secret.pk])
        (ciphertext,) = cursor.fetchone()
        cursor.execute(
            "UPDATE accounts_profile SET credentials = %s WHERE id = %s", [ciphertext, profile.pk]
        )
    with pytest.raises(crypto.DecryptionError):
        Profile.objects.get(pk=profile.pk).credentials  # noqa: B018 - access decrypts


def test_key_rotation_reencrypts_all_rows_and_old_key_can_be_dropped(db, settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old_key]
    profiles = [make_profile(credentials={"n": i}) for i in range(7)]

    settings.ENCRYPTION_KEYS = [new_key, old_key]
    assert Profile.objects.get(pk=profiles[0].pk).credentials == {"n": 0}  # old still decrypts
    call_command("rotate_encryption_keys", batch_size=3)

    settings.ENCRYPTION_KEYS = [new_key]
    assert [Profile.objects.get(pk=p.pk).credentials for p in profiles] == [
        {"n": i} for i in range(7)
    ]


def test_key_rotation_interrupted_midway_resumes(db, settings, monkeypatch):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old_key]
    profiles = [make_profile(credentials={"n": i}) for i in range(6)]
    settings.ENCRYPTION_KEYS = [new_key, old_key]

    def crash_after_first_batch(report):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        reencrypt_secrets(batch_size=2, on_batch=crash_after_first_batch)
    rotated = [crypto.is_encrypted_under_primary_key(raw_credentials(p)) for p in profiles]
    assert rotated == [True, True, False, False, False, False]

    reports = reencrypt_secrets(batch_size=2)
    profile_report = next(r for r in reports if r.model == "accounts.Profile")
    assert profile_report.reencrypted == 4  # the first batch is not redone
    settings.ENCRYPTION_KEYS = [new_key]
    assert sorted((p.credentials for p in Profile.objects.all()), key=str) == sorted(
        ({"n": i} for i in range(6)), key=str
    )


# --- a ciphertext is bound to its row ---
def test_credentials_swapped_between_two_profiles_do_not_decrypt(db):
    alice = make_profile(credentials={"password": "alice-pw"})
    bob = make_profile(credentials={"password": "bob-pw"})
    alice_cipher, bob_cipher = raw_credentials(alice), raw_credentials(bob)
    with connection.cursor() as cursor:
        update = "UPDATE accounts_profile SET credentials = %s WHERE id = %s"
        cursor.execute(update, [bob_cipher, alice.pk])
        cursor.execute(update, [alice_cipher, bob.pk])

    for profile in Profile.objects.filter(pk__in=[alice.pk, bob.pk]):
        with pytest.raises(crypto.DecryptionError):
            profile.credentials  # noqa: B018 - access decrypts


def test_client_secret_copied_to_another_row_does_not_decrypt(db):
    app = make_application()
    first = ApplicationSecret.objects.create(
        application=app, secret_hash="x", secret_checksum="c1", secret="first-secret"
    )
    second = ApplicationSecret.objects.create(
        application=app, secret_hash="x", secret_checksum="c2", secret="second-secret"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM accounts_applicationsecret WHERE id = %s", [first.pk])
        (ciphertext,) = cursor.fetchone()
        cursor.execute(
            "UPDATE accounts_applicationsecret SET secret = %s WHERE id = %s",
            [ciphertext, second.pk],
        )

    assert ApplicationSecret.objects.get(pk=first.pk).secret == "first-secret"
    with pytest.raises(crypto.DecryptionError):
        ApplicationSecret.objects.get(pk=second.pk).secret  # noqa: B018


def test_bound_fields_survive_saves_that_never_read_them(db):
    profile = make_profile(credentials={"token": "t-1"})
    loaded = Profile.objects.get(pk=profile.pk)
    loaded.profile_name = "renamed"
    loaded.save()  # the unread ciphertext is written back as it was
    assert Profile.objects.get(pk=profile.pk).credentials == {"token": "t-1"}


def test_bound_fields_refuse_queryset_update(db):
    profile = make_profile(credentials={"token": "t-1"})
    with pytest.raises(ValueError, match="bound to its row"):
        Profile.objects.filter(pk=profile.pk).update(credentials={"token": "t-2"})


def test_rotate_encryption_keys_prints_progress_per_batch_and_a_summary(db, settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old_key]
    for i in range(7):
        make_profile(credentials={"n": i})
    settings.ENCRYPTION_KEYS = [new_key, old_key]

    out = io.StringIO()
    call_command("rotate_encryption_keys", batch_size=3, stdout=out)

    lines = out.getvalue().splitlines()
    progress = [line for line in lines if "rows done" in line]
    assert progress == [
        "accounts.Profile.credentials: 3/7 rows done, 3 re-encrypted",
        "accounts.Profile.credentials: 6/7 rows done, 6 re-encrypted",
        "accounts.Profile.credentials: 7/7 rows done, 7 re-encrypted",
    ]
    assert "accounts.Profile.credentials: 7 re-encrypted of 7 rows" in lines
    assert "accounts.ApplicationSecret.secret: 0 re-encrypted of 0 rows" in lines
    assert lines[-1] == "Done: 7 row(s) re-encrypted of 7 scanned in 3 model(s)."

    again = io.StringIO()
    call_command("rotate_encryption_keys", batch_size=5, stdout=again)
    assert "accounts.Profile.credentials: 5/7 rows done, 0 re-encrypted" in again.getvalue()
    assert again.getvalue().splitlines()[-1].startswith("Done: 0 row(s) re-encrypted of 7")
