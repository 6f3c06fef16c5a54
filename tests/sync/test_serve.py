"""`manage.py serve` as a newcomer runs it: the demo calendar is connected and synced, and
the printed token and curl command read its events right away."""

import re
import shlex
import time

import requests

from tests.live_service import LiveService
from tests.radicale import free_port


def test_serve_prints_a_token_whose_curl_reads_the_demo_events(tmp_path):
    service = LiveService(
        database_url=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        workdir=tmp_path,
        radicale_port=free_port(),
    )
    service.start()
    try:
        deadline = time.monotonic() + 60
        while "curl -H" not in service.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        curls = re.findall(r"^\s*(curl -H .*)$", service.log(), flags=re.MULTILINE)
        assert len(curls) == 1, service.log()
        curl = curls[0]
        deadline = time.monotonic() + 60
        parts = shlex.split(curl)
        header, url = parts[2], parts[3]
        assert url.startswith(service.url + "/v1/events")
        events = []
        while not events and time.monotonic() < deadline:  # the first sync runs in the worker
            response = requests.get(url, headers=dict([header.split(": ", 1)]), timeout=10)
            assert response.status_code == 200, response.text
            events = response.json()["events"]
            time.sleep(0.5)
        assert {"Stand-up", "Design review"} <= {e["summary"] for e in events}
        assert "manage.py create_access_token --account acc_" in service.log()
    finally:
        service.stop()
