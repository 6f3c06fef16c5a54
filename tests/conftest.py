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


@pytest.fixture(scope="session")
def httpserver_listen_address():
    """pytest-httpserver on 127.0.0.1: its default URLs name `localhost`, which end-user URLs
    may never use (sync/outbound.py)."""
    return ("127.0.0.1", 0)


# Fixtures whose servers listen on 127.0.0.1 and that tests connect ICS feeds or CalDAV
# accounts to, with the attribute or method that gives their base URL.
_CONNECTABLE_SERVERS = {
    "radicale_server": lambda server: server.base_url,
    "own_radicale_server": lambda server: server.base_url,
    "httpserver": lambda server: server.url_for("/").rstrip("/"),
}


@pytest.fixture(autouse=True)
def allow_connecting_to_test_servers(request, settings):
    """End-user URLs may not reach loopback by default (sync/outbound.py): a test that uses
    one of the servers above allows its origin explicitly, as an operator would with
    CONNECT_ALLOWED_ORIGINS. Any other server on 127.0.0.1 stays unreachable."""
    origins = [
        base_url(request.getfixturevalue(name))
        for name, base_url in _CONNECTABLE_SERVERS.items()
        if name in request.fixturenames
    ]
    if origins:
        settings.CONNECT_ALLOWED_ORIGINS = [*settings.CONNECT_ALLOWED_ORIGINS, *origins]
