"""The rate limiter fails open: with its cache (Redis) unreachable, the API answers as usual,
and the failure is logged (once in a while, without tokens) and counted at /health."""

import logging
import socket

import pytest

from accounts import throttling
from tests.calendars.helpers import api_get, auth, make_world


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (a Redis that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_down(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
        }
    }
    settings.API_RATE_LIMIT_PER_SECOND = 50
    settings.API_RATE_LIMIT_PER_MINUTE = 500
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    throttling.cache_health.reset()
    yield
    throttling.cache_health.reset()


def upsert(client, world, event_id: str):
    return client.post(
        f"/v1/calendars/{world.calendar.public_id}/events",
        {
            "event_id": event_id,
            "summary": "Board meeting",
            "start": "2026-11-23T09:00:00Z",
            "end": "2026-11-23T10:00:00Z",
            "tzid": "Europe/London",
        },
        content_type="application/json",
        **auth(world.token),
    )


def test_limiter_with_redis_down_lets_reads_and_upserts_through(client, db, redis_down, caplog):
    world = make_world()
    caplog.set_level(logging.WARNING, logger="accounts.throttling")

    reads = [api_get(client, "/v1/account", world.token).status_code for _ in range(10)]
    writes = [upsert(client, world, f"booking-{n}").status_code for n in range(10)]

    assert reads == [200] * 10
    assert writes == [202] * 10
    warnings = [r for r in caplog.records if r.name == "accounts.throttling"]
    assert len(warnings) == 1  # rate-limited: one line, not one per request
    assert "unchecked" in warnings[0].getMessage()
    assert world.token not in caplog.text


def test_limiter_with_redis_down_is_counted_at_health(client, db, redis_down):
    world = make_world()
    for _ in range(3):
        assert api_get(client, "/v1/account", world.token).status_code == 200

    health = client.get("/health")

    assert health.status_code == 200
    limiter = health.json()["rate_limiter"]
    assert limiter["state"] == "failing_open"
    assert limiter["cache_errors"] >= 1
    assert limiter["unchecked_requests"] == 3
    assert limiter["last_cache_error_at"]


def test_limiter_after_a_cache_error_leaves_the_cache_alone_for_a_while(db, redis_down):
    limits = [throttling.Limit("test", "subject", count=1, period=60)]

    assert throttling.seconds_until_allowed(limits) == 0
    errors = throttling.cache_health.snapshot()["cache_errors"]
    assert throttling.seconds_until_allowed(limits) == 0
    assert throttling.seconds_until_allowed(limits) == 0

    # The second and third requests did not wait for a dead Redis again.
    assert throttling.cache_health.snapshot()["cache_errors"] == errors == 1
    assert throttling.cache_health.snapshot()["unchecked_requests"] == 3


def test_health_when_the_cache_works(client, db):
    throttling.cache_health.reset()

    limiter = client.get("/health").json()["rate_limiter"]

    assert limiter == {
        "state": "ok",
        "cache_errors": 0,
        "unchecked_requests": 0,
        "last_cache_error_at": None,
    }
