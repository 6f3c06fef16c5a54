"""GET /metrics: counters that move with the work they count (a real sync of an ICS feed on
127.0.0.1, a token refresh, HTTP requests by route), the scrape-time database gauges, and one
aggregate across processes sharing PROMETHEUS_MULTIPROC_DIR."""

import subprocess
import sys
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

import metrics
from accounts.models import Profile
from config import gunicorn
from sync import services
from sync.providers import base
from sync.services import credentials
from tests.console import helpers
from tests.factories import make_account, make_calendar, make_profile
from tests.sync.helpers import soon, vcalendar, vevent


def scrape(client) -> dict:
    """Every sample of one /metrics answer: {(name, ((label, value), ...)): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


def parse(text: str) -> dict:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def feed(httpserver):
    """An ICS feed with one event; `feed.fail()` makes it answer 500 from then on."""

    class Feed:
        url = httpserver.url_for("/team.ics")

        @staticmethod
        def serve():
            body = vcalendar(vevent("standup", soon(2)), header="X-WR-CALNAME:Team")
            httpserver.expect_request("/team.ics").respond_with_data(
                body, content_type="text/calendar"
            )

        @staticmethod
        def fail():
            httpserver.clear()
            httpserver.expect_request("/team.ics").respond_with_data("down", status=500)

    Feed.serve()
    return Feed


@pytest.mark.django_db
def test_sync_counters_move_with_a_real_sync(client, feed):
    profile = services.connect_profile(
        account=make_account(), provider_key="ics", credentials_dict={"url": feed.url}
    )
    calendar = profile.calendars.get()
    before = scrape(client)

    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    assert services.sync_calendar(calendar_id=calendar.pk).status == "unchanged"
    feed.fail()
    failed = services.sync_calendar(calendar_id=calendar.pk)
    assert failed.status == "failed"

    after = scrape(client)
    for outcome in ("synced", "unchanged", "failed"):
        moved = value(after, "calsync_syncs_total", outcome=outcome) - value(
            before, "calsync_syncs_total", outcome=outcome
        )
        assert moved == 1, outcome
        timed = value(after, "calsync_sync_duration_seconds_count", outcome=outcome) - value(
            before, "calsync_sync_duration_seconds_count", outcome=outcome
        )
        assert timed == 1, outcome
    error_class = failed.error.split(":", 1)[0]
    errors = "calsync_sync_errors_total"
    assert (
        value(after, errors, error_class=error_class)
        - value(before, errors, error_class=error_class)
        == 1
    )


@pytest.mark.django_db
def test_a_refused_token_refresh_is_counted(client, settings, httpserver):
    settings.GOOGLE_TOKEN_URL = httpserver.url_for("/token")
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = "our-client-id"
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = "our-client-secret"
    httpserver.expect_request("/token", method="POST").respond_with_json(
        {"error": "invalid_grant"}, status=400
    )
    profile = make_profile(
        provider=Profile.Provider.GOOGLE,
        provider_service="google",
        provider_account_id="google-metrics",
        credentials={"access_token": "a", "refresh_token": "r", "expires_at": time.time() + 10},
    )
    before = value(scrape(client), "calsync_token_refreshes_total", outcome="refused")

    with pytest.raises(base.AuthExpired):
        credentials.fresh_credentials(profile)

    after = value(scrape(client), "calsync_token_refreshes_total", outcome="refused")
    assert after - before == 1


@pytest.mark.django_db
def test_http_requests_are_labelled_by_route_never_by_raw_path(client):
    client.post("/v1/profiles/pro_secretish42/revoke")
    client.get("/no/such/page")

    text = client.get("/metrics").content.decode()

    samples = parse(text)
    route = "v1/profiles/<str:profile_id>/revoke"
    labels = {"method": "POST", "route": route}
    counted = [
        key
        for key in samples
        if key[0] == "calsync_http_requests_total" and set(labels.items()) <= set(key[1])
    ]
    assert counted, "the revoke route is counted"
    assert value(samples, "calsync_http_request_duration_seconds_count", **labels) >= 1
    assert (
        value(samples, "calsync_http_requests_total", method="GET", route="unmatched", status="404")
        >= 1
    )
    assert "pro_secretish42" not in text and "no/such/page" not in text


@pytest.mark.django_db
def test_scrape_time_gauges_count_outboxes_and_overdue_calendars(client):
    calendar = make_calendar()
    helpers.event_write(calendar, "pending")
    helpers.event_write(calendar, "failed")
    channel = helpers.channel(calendar.profile.account)
    helpers.notification(channel)
    helpers.notification(channel, status="failed")
    helpers.notification(channel, status="failed")
    waited = 2 * settings.SYNC_POLL_INTERVAL_SECONDS
    helpers.sync_state(calendar, next_poll_at=timezone.now() - timedelta(seconds=waited))
    helpers.sync_state(make_calendar(), next_poll_at=timezone.now() + timedelta(minutes=5))

    samples = scrape(client)

    depth = "calsync_outbox_depth"
    assert value(samples, depth, outbox="event_writes", status="pending") == 1
    assert value(samples, depth, outbox="event_writes", status="failed") == 1
    assert value(samples, depth, outbox="notifications", status="pending") == 1
    assert value(samples, depth, outbox="notifications", status="failed") == 2
    assert value(samples, "calsync_calendars_overdue") == 1
    assert value(samples, "calsync_poll_oldest_due_seconds") >= waited
    assert value(samples, "calsync_database_gauges_up") == 1


@pytest.mark.django_db
def test_scrape_time_gauges_with_nothing_due(client):
    helpers.sync_state(make_calendar(), next_poll_at=timezone.now() + timedelta(minutes=5))
    samples = scrape(client)
    assert value(samples, "calsync_calendars_overdue") == 0
    assert value(samples, "calsync_poll_oldest_due_seconds") == 0


RECORD_IN_A_PROCESS_OF_ITS_OWN = """
import sys
import metrics
for _ in range(int(sys.argv[1])):
    metrics.observe_sync("synced", seconds=0.2)
metrics.count_sync_error(TimeoutError())
"""


def test_multiprocess_mode_adds_up_two_processes(tmp_path, monkeypatch):
    env = {"PATH": "/usr/bin:/bin", metrics.MULTIPROC_DIR_VARIABLE: str(tmp_path)}
    for times in (2, 3):
        subprocess.run(
            [sys.executable, "-c", RECORD_IN_A_PROCESS_OF_ITS_OWN, str(times)],
            cwd=settings.BASE_DIR,
            env=env,
            check=True,
        )
    monkeypatch.setenv(metrics.MULTIPROC_DIR_VARIABLE, str(tmp_path))

    body, content_type = metrics.exposition()

    samples = parse(body.decode())
    assert content_type.startswith("text/plain")
    assert value(samples, "calsync_syncs_total", outcome="synced") == 5
    assert value(samples, "calsync_sync_duration_seconds_count", outcome="synced") == 5
    assert value(samples, "calsync_sync_errors_total", error_class="TimeoutError") == 2
    assert len(list(tmp_path.iterdir())) >= 2  # one file per process and metric type


def test_gunicorn_child_exit_drops_the_dead_workers_live_gauges(tmp_path, monkeypatch):
    monkeypatch.setenv(metrics.MULTIPROC_DIR_VARIABLE, str(tmp_path))
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")
    (tmp_path / "counter_4242.db").write_bytes(b"")

    gunicorn.child_exit(server=None, worker=SimpleNamespace(pid=4242))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_4242.db"]
