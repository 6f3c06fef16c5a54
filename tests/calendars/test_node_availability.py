"""Acceptance: Cronofy's Node SDK (tests/node, pinned in its package-lock.json) asks a live
server for availability and writes, lists and deletes an available period."""

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.utils import timezone

from sync.models import CalendarSyncState
from tests.calendars.helpers import add_event, make_world

NODE_DIR = Path(__file__).resolve().parent.parent / "node"


@pytest.fixture(scope="session")
def node_sdk():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    if not (NODE_DIR / "node_modules" / "cronofy").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return NODE_DIR / "availability.js"


def test_node_sdk_availability_and_available_periods(node_sdk, live_server, transactional_db):
    world = make_world()
    CalendarSyncState.objects.create(calendar=world.calendar, last_synced_at=timezone.now())
    add_event(world.calendar, start=datetime(2026, 12, 1, 10, 0, tzinfo=UTC), minutes=60)
    env = {
        **os.environ,
        "CALSYNC_BASE_URL": live_server.url,
        "CALSYNC_TOKEN": world.token,
        "CALSYNC_SUB": world.account.public_id,
    }
    run = subprocess.run(
        ["node", str(node_sdk)], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    answers = json.loads(run.stdout)
    periods = answers["availability"]["available_periods"]
    assert [(p["start"], p["end"]) for p in periods] == [
        ("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z"),
        ("2026-12-01T11:00:00Z", "2026-12-01T15:00:00Z"),
    ]
    assert periods[0]["participants"] == [{"sub": world.account.public_id}]
    assert [p["available_period_id"] for p in answers["listed"]["available_periods"]] == ["node-1"]
    assert answers["after"]["available_periods"] == []
