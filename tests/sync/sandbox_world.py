"""Provider worlds for tests and benches: a sandbox, a profile connected to it, the real
service pointed at it, and provider-shaped event bodies (Google and Microsoft)."""

import json
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pycronofy
import requests
from django.test import Client

from accounts.models import Profile
from calendars.models import Calendar
from sync import services
from sync.connect import connect_oauth_profile
from sync.providers import base
from sync.sandbox.google import GoogleSandbox
from sync.sandbox.microsoft import MicrosoftSandbox
from tests.factories import make_access_token
from tests.live_service import LiveService, service_database
from tests.sync.test_service_under_load import form_fields

SCOPES = ["openid", "email", "https://www.googleapis.com/auth/calendar"]
REDIRECT_URI = "https://integrator.example.com/callback"
SCOPE = (
    "read_account list_calendars read_events create_event delete_event read_free_busy"
    " change_participation_status"
)
EVENT_COUNT_QUERY = """
import json
from calendars.models import Event
print(json.dumps(Event.objects.filter(
    calendar__provider_calendar_id=%r, is_deleted=False, event_id__isnull=True).count()))
"""

MICROSOFT_SCOPES = ["offline_access", "Calendars.ReadWrite", "User.Read"]


def use_google_sandbox(settings, sandbox: GoogleSandbox, client: tuple[str, str]) -> None:
    """Point this process at the sandbox as our Google OAuth client `client` (id, secret),
    with writes reconciled only when a test runs the reconciler."""
    client_id, client_secret = client
    settings.GOOGLE_APIS_URL = sandbox.url
    settings.GOOGLE_TOKEN_URL = f"{sandbox.url}/token"
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = client_id
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = client_secret
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    sandbox.add_client(client_id, client_secret, ["http://testserver/complete/google-oauth2/"])


def use_microsoft_sandbox(settings, sandbox: MicrosoftSandbox, client: tuple[str, str]) -> None:
    """The same for Microsoft Graph."""
    client_id, client_secret = client
    settings.MICROSOFT_GRAPH_URL = sandbox.url
    settings.MICROSOFT_TOKEN_URL = f"{sandbox.url}/common/oauth2/v2.0/token"
    settings.SOCIAL_AUTH_MICROSOFT_GRAPH_KEY = client_id
    settings.SOCIAL_AUTH_MICROSOFT_GRAPH_SECRET = client_secret
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    sandbox.add_client(client_id, client_secret, ["http://testserver/connect/oauth/complete/"])


def connect_google(sandbox: GoogleSandbox, email: str, client_id: str) -> Profile:
    """A Google profile for `email` with tokens the sandbox issued (what the hosted connect
    stores), and its calendars discovered."""
    return _connect(sandbox, email, client_id, SCOPES, Profile.Provider.GOOGLE, "google")


def connect_microsoft(sandbox: MicrosoftSandbox, email: str, client_id: str) -> Profile:
    """The same for a Microsoft 365 profile."""
    return _connect(
        sandbox, email, client_id, MICROSOFT_SCOPES, Profile.Provider.MICROSOFT, "office365"
    )


def _connect(sandbox, email, client_id, scopes, provider_key, service) -> Profile:
    access, refresh = sandbox.issue_tokens(email, client_id, scopes)
    profile = connect_oauth_profile(
        account=None,
        provider_key=provider_key,
        credentials={
            "access_token": access,
            "refresh_token": refresh,
            "expires_at": time.time() + 3599,
        },
        provider_account=base.ProviderAccount(f"id-{email}", email, service),
    )
    services.discover_calendars(profile_id=profile.pk)
    return profile


def create_calendar_through_the_api(profile: Profile, name: str) -> Calendar:
    """POST /v1/calendars as an integrator of the profile's account; the calendar cached."""
    token = make_access_token(account=profile.account, scope="create_calendar")
    response = Client().post(
        "/v1/calendars",
        {"profile_id": profile.public_id, "name": name},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200, response.content
    return Calendar.objects.get(public_id=response.json()["calendar"]["calendar_id"])


def google_service(
    sandbox: GoogleSandbox,
    *,
    database_url: str,
    workdir: Path,
    client: tuple[str, str],
    email: str,
    env: dict | None = None,
) -> LiveService:
    """`manage.py serve` (not started) with every Google URL, our client and the push address
    pointed at the sandbox; the client and `email` registered there; `env` on top."""
    client_id, client_secret = client
    env = {
        **(env or {}),
        "GOOGLE_CLIENT_ID": client_id,
        "GOOGLE_CLIENT_SECRET": client_secret,
        "GOOGLE_ACCOUNTS_URL": sandbox.url,
        "GOOGLE_OAUTH2_URL": sandbox.url,
        "GOOGLE_APIS_URL": sandbox.url,
    }
    return _service(sandbox, env, "google-oauth2", database_url, workdir, client, email)


def microsoft_service(
    sandbox: MicrosoftSandbox,
    *,
    database_url: str,
    workdir: Path,
    client: tuple[str, str],
    email: str,
    env: dict | None = None,
) -> LiveService:
    """The same for Microsoft."""
    client_id, client_secret = client
    env = {
        **(env or {}),
        "MICROSOFT_CLIENT_ID": client_id,
        "MICROSOFT_CLIENT_SECRET": client_secret,
        "MICROSOFT_LOGIN_URL": sandbox.url,
        "MICROSOFT_GRAPH_URL": sandbox.url,
    }
    return _service(sandbox, env, "microsoft-graph", database_url, workdir, client, email)


@contextmanager
def running_world(kind: str, tmp_path: Path, sandbox, make_service, email: str, client, env=None):
    """A started sandbox (approving as `email`) and the real service pointed at it (with the
    settings `env` on top), on a database of `kind` (sqlite or postgresql); both stopped
    afterwards."""
    with service_database(kind, tmp_path) as url:
        sandbox.auto_approve_as = email
        sandbox.start()
        service = make_service(
            sandbox, database_url=url, workdir=tmp_path, client=client, email=email, env=env
        )
        try:
            service.start()
            yield sandbox, service
        finally:
            service.stop()
            sandbox.stop()


def _service(sandbox, env, backend, database_url, workdir, client, email) -> LiveService:
    service = LiveService(database_url=database_url, workdir=workdir)
    service.env_overrides = {
        "API_RATE_LIMIT_PER_SECOND": "0",
        "API_RATE_LIMIT_PER_MINUTE": "0",
        # Where the provider posts: the sandboxes allow loopback http.
        "PUBLIC_BASE_URL": service.url,
        "PUSH_CALLBACK_ALLOWED_NETWORKS": "127.0.0.1/32",
        **env,
    }
    redirect = f"{service.url}/connect/oauth/complete/{backend}/"
    sandbox.add_client(*client, [redirect])
    sandbox.add_user(email, name=email.split("@")[0].title())
    return service


def at(days: float, hour: int = 10) -> datetime:
    """`hour`:00 UTC, `days` from today."""
    day = (datetime.now(UTC) + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def timed(summary: str, start: datetime, minutes: int = 30, **fields) -> dict:
    """A Google event body with UTC times."""
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    end = start + timedelta(minutes=minutes)
    return {
        "summary": summary,
        "start": {"dateTime": start.strftime(stamp), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime(stamp), "timeZone": "UTC"},
        **fields,
    }


def invitation(summary: str, start: datetime, invitee: str) -> dict:
    """An event someone else organizes, with `invitee` not having answered yet."""
    return {
        **timed(summary, start),
        "organizer": {"email": "boss@example.com"},
        "attendees": [
            {"email": "boss@example.com", "organizer": True, "responseStatus": "accepted"},
            {"email": invitee, "responseStatus": "needsAction"},
        ],
    }


# --- the real service, driven as a browser and an integrator do ---
class Receiver:
    """The integrator's callback URL: records each notification body and when it came."""

    def __init__(self):
        self.received: list[tuple[float, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append((time.monotonic(), json.loads(body or b"{}")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"

    def changes_after(self, moment: float) -> list[float]:
        return [
            at
            for at, body in self.received
            if at > moment and body.get("notification", {}).get("type") == "change"
        ]


def wait_for(what, condition, timeout=120.0, every=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def connect_through_the_hosted_pages(
    service: LiveService, client_id: str, *, backend: str, provider_name: str
) -> str:
    """Integrator's link → chooser → the provider (its sandbox approves) → consent → Allow;
    the code."""
    browser = requests.Session()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": SCOPE,
            "state": "s",
            "provider_name": provider_name,
        }
    )
    chooser = browser.get(f"{service.url}/oauth/authorize?{query}", timeout=60)
    assert "/connect/" in chooser.url and backend in chooser.text, chooser.text[:500]
    begin = browser.post(
        f"{service.url}/connect/oauth/login/{backend}/",
        data={"csrfmiddlewaretoken": form_fields(chooser.text)["csrfmiddlewaretoken"]},
        headers={"Referer": chooser.url},
        allow_redirects=False,
        timeout=60,
    )
    assert begin.status_code == 302, begin.text[:500]
    consent = browser.get(begin.headers["Location"], timeout=60)  # the provider, then us
    assert "authorizationForm" in consent.text, consent.text[:2000]
    allowed = browser.post(
        consent.url,
        data={**form_fields(consent.text), "allow": "on"},
        allow_redirects=False,
        timeout=60,
    )
    assert allowed.status_code == 302, allowed.text[:2000]
    return parse_qs(urlsplit(allowed.headers["Location"]).query)["code"][0]


def integrator_client(service: LiveService, *, backend: str, provider_name: str):
    """An integrator application in the service, an end-user connected through the hosted
    pages, and pycronofy holding the integrator's tokens."""
    app = service.shell_json(
        "import json; from accounts.oauth_services import create_application as c; "
        f"a = c(name='E2E', redirect_uris=[{REDIRECT_URI!r}]); "
        "print(json.dumps({'client_id': a.application.client_id, "
        "'client_secret': a.client_secret}))"
    )
    code = connect_through_the_hosted_pages(
        service, app["client_id"], backend=backend, provider_name=provider_name
    )
    client = pycronofy.Client(client_id=app["client_id"], client_secret=app["client_secret"])
    client.request_handler.base_url = service.url
    client.app_base_url = service.url
    client.get_authorization_from_code(code, redirect_uri=REDIRECT_URI)
    return client


def graph_meeting(subject: str, start: datetime, minutes: int = 30, **fields) -> dict:
    """A Graph event body with UTC times."""
    stamp = "%Y-%m-%dT%H:%M:%S"
    end = start + timedelta(minutes=minutes)
    return {
        "subject": subject,
        "start": {"dateTime": start.strftime(stamp), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime(stamp), "timeZone": "UTC"},
        **fields,
    }


def graph_invitation(subject: str, start: datetime, invitee: str) -> dict:
    """A Graph meeting someone else organizes, with `invitee` not having answered yet."""
    return graph_meeting(
        subject,
        start,
        organizer={"emailAddress": {"address": "boss@contoso.com", "name": "Boss"}},
        attendees=[
            {
                "type": "required",
                "status": {"response": "none"},
                "emailAddress": {"address": invitee, "name": invitee.split("@")[0].title()},
            }
        ],
        isOrganizer=False,
        responseStatus={"response": "notResponded"},
    )


def assert_answer_held_after_it_took_effect(sandbox, send, landed) -> None:
    """`send()` is a write that `fail_next(hold=)` holds: it takes effect (`landed()`) while
    its answer is held back, and `held_requests()` names it with the sender's TCP port."""
    answers = []
    sender = threading.Thread(target=lambda: answers.append(send()))
    sender.start()
    [held] = wait_for("the held request", sandbox.held_requests, timeout=5, every=0.02)
    assert landed() and not answers
    sender.join(10)
    [answer] = answers
    assert answer.status_code in (200, 201) and not sandbox.held_requests()
    assert sandbox.requests_log[-1].peer_port == held.peer_port > 0
