"""The README's default setup under real use: `manage.py serve` (web server + worker) on its
own database, a first sync of a large CalDAV calendar, and meanwhile 40 concurrent end-users
and integrators going through the hosted connect page, consent, code exchange (pycronofy),
refreshes, reads and upserts. Nothing may answer 5xx or fail to connect, the sync must
complete, and every upsert must reach the CalDAV server exactly once.

Runs on a temporary SQLite file, and on a throw-away PostgreSQL database when DATABASE_URL
points at PostgreSQL (as in CI).
"""

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

import icalendar
import pycronofy
import pycronofy.settings
import pytest
import requests
from pycronofy.exceptions import PyCronofyRequestError

from tests.live_service import LiveService, service_database

CLIENTS = 40
EVENTS = 1200
UPSERTS_PER_CLIENT = 3
REDIRECT_URI = "https://integrator.example.com/callback"
SCOPE = "read_account list_calendars read_events create_event delete_event"


@dataclass
class Recorder:
    """Every HTTP exchange any client made: (what, status, seconds); 0 = no connection."""

    calls: list = field(default_factory=list)
    paths: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, response, *args, **kwargs):
        path = urlsplit(response.url).path
        kind = "api" if path.startswith("/v1/") else path.split("/")[1] or "root"
        what = f"{response.request.method} {kind}"
        self.add(what, response.status_code, response.elapsed, path=path)

    def add(self, what: str, status: int, elapsed: timedelta | None = None, path="") -> None:
        with self.lock:
            self.calls.append((what, status, elapsed.total_seconds() if elapsed else 0.0))
            self.paths.append(path)

    def statuses(self) -> Counter:
        return Counter(status for _, status, _ in self.calls)

    def summary(self) -> dict:
        by_kind = Counter(what for what, _, _ in self.calls)
        return {
            "requests": len(self.calls),
            "by_status": dict(sorted(self.statuses().items())),
            "by_kind": dict(sorted(by_kind.items())),
            "longest_wait_s": round(max(s for _, _, s in self.calls), 3),
            "p95_wait_s": round(
                sorted(s for _, _, s in self.calls)[int(len(self.calls) * 0.95)], 3
            ),
            "slowest": sorted(
                ((round(s, 2), w, p) for (w, _, s), p in zip(self.calls, self.paths, strict=True)),
                reverse=True,
            )[:8],
        }


class _Forms(HTMLParser):
    """The <input> name/value pairs of a page."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") and attrs.get("type") != "submit":
            self.fields[attrs["name"]] = attrs.get("value") or ""


def form_fields(html: str) -> dict[str, str]:
    parser = _Forms()
    parser.feed(html)
    return parser.fields


def seed_calendar(server, user: str, count: int) -> str:
    """One PUT of a whole VCALENDAR (Radicale splits it by UID): `count` events around now."""
    url = f"{server.base_url}/{user}/work/"
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=20)
    fmt = "%Y%m%dT%H%M%SZ"
    body = ["BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//load//EN\r\n"]
    for n in range(count):
        start = base + timedelta(hours=2 * n)
        body.append(
            f"BEGIN:VEVENT\r\nUID:seed-{n}\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART:{start:{fmt}}\r\nDTEND:{start + timedelta(minutes=45):{fmt}}\r\n"
            f"SUMMARY:Seeded {n}\r\nEND:VEVENT\r\n"
        )
    body.append("END:VCALENDAR\r\n")
    server.session(user).put(
        url, data="".join(body).encode(), headers={"Content-Type": "text/calendar"}, timeout=300
    ).raise_for_status()
    return url


class EndUser:
    """A browser that connects the CalDAV account on the hosted pages and allows access."""

    def __init__(self, service: LiveService, recorder: Recorder, client_id: str, caldav: dict):
        self.service, self.client_id, self.caldav = service, client_id, caldav
        self.browser = requests.Session()
        self.browser.hooks["response"].append(recorder.hook)

    def authorize(self) -> str:
        """Integrator's link -> connect page -> CalDAV form -> consent -> Allow; the code."""
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": REDIRECT_URI,
                "scope": SCOPE,
                "state": "s",
            }
        )
        page = self.browser.get(f"{self.service.url}/oauth/authorize?{query}", timeout=60)
        if "/connect/" in page.url and "caldav" not in page.url:
            form = self.browser.get(f"{self.service.url}/connect/caldav/", timeout=60)
            page = self.browser.post(
                f"{self.service.url}/connect/caldav/",
                data={**form_fields(form.text), **self.caldav},
                timeout=120,
            )
        assert page.status_code == 200 and "authorizationForm" in page.text, page.text[:2000]
        allowed = self.browser.post(
            page.url,
            data={**form_fields(page.text), "allow": "on"},
            allow_redirects=False,
            timeout=60,
        )
        assert allowed.status_code == 302, allowed.text[:2000]
        return parse_qs(urlsplit(allowed.headers["Location"]).query)["code"][0]


def integrator_session(
    service, recorder, app, user: EndUser, index: int, calendar_id: list, start_at: float
):
    """One client's whole run; any exception is recorded and ends this client's run."""
    try:
        time.sleep(max(0.0, start_at - time.monotonic()))
        code = user.authorize()
        client = pycronofy.Client(client_id=app["client_id"], client_secret=app["client_secret"])
        client.request_handler.base_url = service.url
        client.app_base_url = service.url
        client.get_authorization_from_code(code, redirect_uri=REDIRECT_URI)
        client.refresh_authorization()
        if not calendar_id:
            calendar_id.append(client.list_calendars()[0]["calendar_id"])
        now = datetime.now(UTC)
        for n in range(UPSERTS_PER_CLIENT):
            start = (now + timedelta(days=1 + index, hours=n)).replace(microsecond=0)
            client.upsert_event(
                calendar_id[0],
                {
                    "event_id": f"load-{index}-{n}",
                    "summary": f"Load {index}-{n}",
                    "start": start,
                    "end": start + timedelta(minutes=30),
                    "tzid": "Etc/UTC",
                },
            )
            list(client.read_events(from_date=now.date(), to_date=(now + timedelta(days=7)).date()))
        client.refresh_authorization()
        client.list_calendars()
    except requests.ConnectionError as exc:
        recorder.add(f"connection error: {exc}", 0)
    except PyCronofyRequestError:
        pass  # the hook recorded its status
    except Exception as exc:  # noqa: BLE001 - any client-side failure fails the test
        recorder.add(f"client error: {type(exc).__name__}: {str(exc)[:300]}", -1)


STATE_QUERY = """
import json
from django_q.models import Failure
from calendars.models import ChangeLogEntry, Event, ManagedEventWrite
from sync.models import CalendarSyncState
state = CalendarSyncState.objects.select_related("calendar").get(
    calendar__provider_calendar_id=%r)
created = ChangeLogEntry.objects.filter(
    kind="event_created", event__calendar=state.calendar, event__event_id__isnull=True)
print(json.dumps({
    "last_synced_at": state.last_synced_at and state.last_synced_at.isoformat(),
    "consecutive_failures": state.consecutive_failures,
    "last_error": state.last_error,
    "events": Event.objects.filter(calendar=state.calendar, is_deleted=False,
                                   event_id__isnull=True).count(),
    "last_seed_applied_at": created.order_by("-changed_at").values_list(
        "changed_at", flat=True).first().isoformat() if created.exists() else None,
    "writes": dict((s, ManagedEventWrite.objects.filter(status=s).count())
                   for s in ("pending", "done", "failed", "superseded")),
    "task_failures": [f.name + ": " + str(f.result)[:300] for f in Failure.objects.all()],
}))
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request, tmp_path, radicale_server):
    with service_database(request.param, tmp_path) as url:
        live = LiveService(
            database_url=url,
            workdir=tmp_path,
            env_overrides={
                # The per-application API limits (50/s) are not what this test measures.
                "API_RATE_LIMIT_PER_SECOND": "0",
                "API_RATE_LIMIT_PER_MINUTE": "0",
                # The end-users connect to the test's Radicale on loopback.
                "CONNECT_ALLOWED_ORIGINS": radicale_server.base_url,
            },
        )
        try:
            live.start()
            yield live
        finally:
            live.stop()


def test_service_under_load_no_5xx_sync_completes_upserts_once(service, radicale_server):
    user = radicale_server.make_user()
    calendar_url = seed_calendar(radicale_server, user, EVENTS)
    caldav = {
        "server_url": radicale_server.base_url + "/",
        "username": user,
        "password": radicale_server.password(user),
    }
    app = service.shell_json(
        "import json; from accounts.oauth_services import create_application as c; "
        f"a = c(name='Load test', redirect_uris=[{REDIRECT_URI!r}]); "
        "print(json.dumps({'client_id': a.application.client_id, "
        "'client_secret': a.client_secret}))"
    )
    recorder = Recorder()
    previous_hook = pycronofy.settings.REQUEST_HOOK
    pycronofy.settings.REQUEST_HOOK = {"response": [recorder.hook]}
    try:
        # The first end-user connects the calendar (its 1,200-event sync is queued at once)...
        first = EndUser(service, recorder, app["client_id"], caldav)
        first.authorize()
        load_started = datetime.now(UTC)
        # ... and 40 clients start while that sync runs.
        calendar_id: list = []
        start_at = time.monotonic() + 0.5
        threads = [
            threading.Thread(
                target=integrator_session,
                args=(
                    service,
                    recorder,
                    app,
                    EndUser(service, recorder, app["client_id"], caldav),
                    index,
                    calendar_id,
                    start_at,
                ),
            )
            for index in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 300
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in threads), "clients still running"
    finally:
        pycronofy.settings.REQUEST_HOOK = previous_hook
    summary = recorder.summary()
    print(json.dumps({"backend": service.database_url.split(":")[0], **summary}))
    failures = [call for call in recorder.calls if call[1] >= 500 or call[1] <= 0]
    assert not failures, (failures[:20], summary, service.log()[-5000:])
    assert set(recorder.statuses()) <= {200, 202, 302}, summary
    assert summary["by_kind"].get("POST oauth", 0) >= 3 * CLIENTS  # code + 2 refreshes each
    assert summary["by_kind"].get("POST api", 0) == CLIENTS * UPSERTS_PER_CLIENT

    # Every write reaches the server; the sync completed and overlapped the load.
    deadline = time.monotonic() + 180
    while True:
        state = service.shell_json(STATE_QUERY % calendar_url)
        settled = state["writes"]["pending"] == 0 and state["last_synced_at"]
        if settled or time.monotonic() > deadline:
            break
        time.sleep(2)
    print(json.dumps(state))
    assert state["writes"]["pending"] == 0 and state["writes"]["failed"] == 0, state
    assert state["task_failures"] == [], state
    assert state["last_synced_at"] and state["consecutive_failures"] == 0, state
    assert state["events"] == EVENTS, state
    assert datetime.fromisoformat(state["last_seed_applied_at"]) > load_started, state

    whole = radicale_server.session(user).get(calendar_url, timeout=60)
    whole.raise_for_status()
    summaries = Counter(
        str(component.get("SUMMARY"))
        for component in icalendar.Calendar.from_ical(whole.content).walk("VEVENT")
    )
    expected = {f"Load {i}-{n}" for i in range(CLIENTS) for n in range(UPSERTS_PER_CLIENT)}
    assert {s: summaries[s] for s in expected if summaries[s] != 1} == {}
