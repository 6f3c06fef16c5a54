import pytest
from django.db import connection

pytest_plugins = ["tests.radicale"]


def pytest_runtest_setup(item):
    # Row locks and SKIP LOCKED are silently no-ops on SQLite: such tests need PostgreSQL.
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL")
