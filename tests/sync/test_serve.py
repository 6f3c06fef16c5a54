"""`manage.py serve` as a newcomer runs it: the demo calendar is connected and synced, and
the printed token and curl command read its events right away."""

import re
import shlex
import time

import pytest
import requests

from tests.live_service import LiveService
from tests.radicale import free_port
from tests.sync.test_service_under_load import form_fields


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


@pytest.mark.parametrize(
    "flag, backend, user",
    [
        ("google", "google-oauth2", "demo@example.com"),
        ("microsoft", "microsoft-graph", "demo@contoso.com"),
    ],
)
def test_serve_provider_sandbox_makes_its_button_work_offline(tmp_path, flag, backend, user):
    service = LiveService(
        database_url=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        workdir=tmp_path,
        extra_args=[f"--{flag}-sandbox", f"--{flag}-sandbox-port", str(free_port())],
    )
    service.start()
    try:
        browser = requests.Session()
        chooser = browser.get(f"{service.url}/connect/", timeout=30)
        assert backend in chooser.text, chooser.text[:1000]
        connected = browser.post(
            f"{service.url}/connect/oauth/login/{backend}/",
            data={"csrfmiddlewaretoken": form_fields(chooser.text)["csrfmiddlewaretoken"]},
            headers={"Referer": chooser.url},
            timeout=60,
        )  # to the sandbox, which approves as the demo user, and back
        assert user in connected.text, connected.text[:2000]
        code = (
            "import json; from calendars.models import Event; "
            "print(json.dumps(sorted(set(Event.objects.values_list('summary', flat=True)))))"
        )
        deadline = time.monotonic() + 60
        summaries = []
        while "Stand-up" not in summaries and time.monotonic() < deadline:
            summaries = service.shell_json(code)  # discovery and the first sync: the worker
            time.sleep(0.5)
        assert "Stand-up" in summaries and len(summaries) >= 3, service.log()[-3000:]
    finally:
        service.stop()
