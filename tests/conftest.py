import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection

pytest_plugins = ["tests.radicale"]


def pytest_runtest_setup(item):
    # Row locks and SKIP LOCKED are silently no-ops on SQLite: such tests need PostgreSQL.
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL")


@pytest.fixture(autouse=True)
def fresh_rate_limit_windows():
    """Each test starts with empty rate-limit counters: the in-process cache outlives a test,
    and the connect forms and /oauth/token are limited per address (every test client is
    127.0.0.1). Only the in-process cache is cleared, never a shared Redis."""
    default = caches["default"]
    if isinstance(default, LocMemCache):
        default.clear()
