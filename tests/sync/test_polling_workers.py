"""Polling with two real worker clusters (`manage.py qcluster` twice) on one PostgreSQL
database, against the counting CalDAV stand-in: no calendar is polled twice at once, none twice
in one interval, even with every poll task queued twice and extra ticks running meanwhile."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.caldav_standin import StandIn
from tests.live_service import service_database
from tests.sync.sandbox_world import wait_for

ROOT = Path(__file__).resolve().parents[2]
PROFILES, PER_PROFILE, INTERVAL = 8, 3, 20

SEED = """
from datetime import timedelta
from django.utils import timezone
from tests.poll_world import seed_synced_calendars
seed_synced_calendars(
    {base_url!r}, calendars={calendars}, per_profile={per_profile}, interval={interval},
    start=timezone.now() - timedelta(seconds={interval}),
)
"""

# A tick that queues every poll task twice, and two ordinary ticks besides.
DUPLICATING_TICK = """
from django.utils import timezone
from sync.services import polling
claimed = polling.claim_due(now=timezone.now(), tasks=100, calendars=100)
for group in claimed.groups:
    polling.enqueue_poll(group, claimed.claim)
    polling.enqueue_poll(group, claimed.claim)
polling.enqueue_due_syncs()
polling.enqueue_due_syncs()
print(len(claimed.calendar_ids))
"""

STATES = """
import json
from sync.models import CalendarSyncState
print(json.dumps(list(CalendarSyncState.objects.values_list("lock_token", "poll_claim"))))
"""


def _env(database_url: str, standin: StandIn) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.pop("REDIS_URL", None)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="config.settings",
        SYNC_POLL_INTERVAL_SECONDS=str(INTERVAL),
        CONNECT_ALLOWED_ORIGINS=standin.base_url,
        Q_WORKERS="2",
        LOG_LEVEL="WARNING",
    )
    return env


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.postgres
def test_two_worker_clusters_poll_each_calendar_once_at_a_time_and_once_per_interval(tmp_path):
    standin = StandIn(profiles=PROFILES, per_profile=PER_PROFILE, delay=0.05).start()
    clusters = []
    try:
        with service_database("postgresql", tmp_path) as database_url:
            env = _env(database_url, standin)
            _manage(env, "migrate", "-v", "0")
            seed = SEED.format(
                base_url=standin.base_url,
                calendars=PROFILES * PER_PROFILE,
                per_profile=PER_PROFILE,
                interval=INTERVAL,
            )
            _manage(env, "shell", "-c", seed)
            _manage(env, "setup_schedules")
            standin.polls.clear()
            for _ in range(2):
                clusters.append(
                    subprocess.Popen(
                        [sys.executable, "manage.py", "qcluster"],
                        cwd=ROOT,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
            assert int(_manage(env, "shell", "-c", DUPLICATING_TICK).split()[-1]) >= 0
            calendars = PROFILES * PER_PROFILE
            wait_for("every calendar polled", lambda: len(standin.polls) == calendars, 120, 1)
            # The next round: due again INTERVAL later, claimed by the next minute's ticks.
            wait_for(
                "a second poll of every calendar",
                lambda: all(len(times) >= 2 for times in standin.polls.values()),
                150,
                1,
            )
            for cluster in clusters:
                _stop(cluster)

            assert standin.max_in_flight == 1  # never two requests for one calendar at once
            for path, times in standin.polls.items():
                gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
                assert all(gap >= INTERVAL / 2 for gap in gaps), (path, gaps)
            states = json.loads(_manage(env, "shell", "-c", STATES).strip().splitlines()[-1])
            assert len(states) == calendars
            assert all(lock == "" for lock, _ in states)  # every lease released
    finally:
        for cluster in clusters:
            _stop(cluster)
        standin.stop()
