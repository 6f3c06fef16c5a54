import pytest


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # Client secrets are 256-bit random values; the production hasher's cost buys nothing in
    # tests and makes every token request take ~0.25 s.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
