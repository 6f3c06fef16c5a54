"""Run the whole service: migrations, schedules, the web server (gunicorn), the django-q2 worker,
the delivery process (`manage.py deliver`: push notifications and managed-event writes, woken
on commit, and due polls handed to the worker) and a local Radicale CalDAV server holding a
sample calendar, connected to a demo account, with an access token printed (to try the whole
loop offline in a minute). With
--google-sandbox it also starts the Google provider sandbox and points the service at it, so
that the chooser's Google button works offline; --microsoft-sandbox does the same for
Microsoft (DEBUG only, like the demo).

Its processes share one fresh PROMETHEUS_MULTIPROC_DIR, made at each start and removed at the
stop, so that any web worker's /metrics adds up every process's counters (docs/operations.md,
"Metrics").

A delivery process that exits is started again. Ctrl-C (or SIGTERM) stops every child; a
worker that hangs while stopping (django-q2 can) is escalated to SIGINT and then SIGKILL.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

import metrics
from sync import demo

STOP_GRACE_SECONDS = 8


@dataclass(frozen=True)
class Sandbox:
    """How `serve` starts one provider sandbox and points the service at it."""

    name: str
    module: str
    backend: str  # social-auth's backend name, in our callback URL
    user: str
    probe: str  # a path that answers once the sandbox is up
    url_settings: tuple[str, ...]  # every setting that takes the sandbox's URL
    client_settings: tuple[str, str]  # client id, client secret

    def env(self, url: str, client_id: str, client_secret: str) -> dict:
        return {
            **dict.fromkeys(self.url_settings, url),
            self.client_settings[0]: client_id,
            self.client_settings[1]: client_secret,
        }


GOOGLE = Sandbox(
    name="Google",
    module="sync.sandbox.google",
    backend="google-oauth2",
    user="demo@example.com",
    probe="/.well-known/openid-configuration",
    url_settings=("GOOGLE_ACCOUNTS_URL", "GOOGLE_OAUTH2_URL", "GOOGLE_APIS_URL"),
    client_settings=("GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET"),
)
MICROSOFT = Sandbox(
    name="Microsoft",
    module="sync.sandbox.microsoft",
    backend="microsoft-graph",
    user="demo@contoso.com",
    probe="/common/v2.0/.well-known/openid-configuration",
    url_settings=("MICROSOFT_LOGIN_URL", "MICROSOFT_GRAPH_URL"),
    client_settings=("MICROSOFT_CLIENT_ID", "MICROSOFT_CLIENT_SECRET"),
)


class Command(BaseCommand):
    help = (
        "Migrate, then run the web server, the django-q2 worker and the delivery process "
        "until Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--radicale-port", type=int, default=5232)
        parser.add_argument(
            "--no-radicale", action="store_true", help="do not start the local demo CalDAV server"
        )
        parser.add_argument(
            "--radicale-dir",
            default=str(settings.BASE_DIR / "var" / "radicale"),
            help="storage of the demo CalDAV server (default var/radicale)",
        )
        parser.add_argument(
            "--google-sandbox",
            action="store_true",
            help="start the Google provider sandbox and connect Google through it (DEBUG only)",
        )
        parser.add_argument("--google-sandbox-port", type=int, default=8765)
        parser.add_argument(
            "--microsoft-sandbox",
            action="store_true",
            help="the same for Microsoft 365 / Outlook.com (DEBUG only)",
        )
        parser.add_argument("--microsoft-sandbox-port", type=int, default=8766)

    def handle(
        self,
        *args,
        host: str,
        port: int,
        radicale_port: int,
        no_radicale: bool,
        radicale_dir: str,
        google_sandbox: bool = False,
        google_sandbox_port: int = 8765,
        microsoft_sandbox: bool = False,
        microsoft_sandbox_port: int = 8766,
        **options,
    ):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("setup_schedules", verbosity=0, stdout=self.stdout)
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        self._ensure_admin_user(host, port)
        manage = [sys.executable, "manage.py"]
        children = []
        env = dict(os.environ)
        if not no_radicale and not settings.DEBUG:
            # The demo account, application and printed token have no place in production.
            self.stdout.write("DEBUG is off: the demo CalDAV server is not started.")
        elif not no_radicale:
            _allow_connect_origin(env, f"http://127.0.0.1:{radicale_port}")
            children.append(
                self._start_demo_radicale(
                    radicale_port, Path(radicale_dir), f"http://{host}:{port}"
                )
            )
        wanted = [
            (sandbox, port_)
            for sandbox, on, port_ in (
                (GOOGLE, google_sandbox, google_sandbox_port),
                (MICROSOFT, microsoft_sandbox, microsoft_sandbox_port),
            )
            if on
        ]
        if wanted and not settings.DEBUG:
            self.stdout.write("DEBUG is off: the provider sandboxes are not started.")
        elif wanted:
            # Where the sandboxes post push notifications (they allow loopback http).
            env["PUBLIC_BASE_URL"] = settings.PUBLIC_BASE_URL or f"http://{host}:{port}"
            for sandbox, sandbox_port in wanted:
                process, sandbox_env = self._start_sandbox(
                    sandbox, sandbox_port, f"http://{host}:{port}"
                )
                children.append(process)
                env.update(sandbox_env)
        # Fresh at each start: files left by a previous run would add its dead processes'
        # counters to this one's.
        metrics_dir = tempfile.mkdtemp(prefix="calsync-metrics-")
        env[metrics.MULTIPROC_DIR_VARIABLE] = metrics_dir
        children += [
            subprocess.Popen(self._web_server_command(host, port), env=env),
            subprocess.Popen([*manage, "qcluster"], env=env),
        ]
        delivering = subprocess.Popen([*manage, "deliver"], env=env)
        self.stdout.write(f"Service up: http://{host}:{port}/admin/  (Ctrl-C stops it)")
        stopping = False

        def request_stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        while not stopping and all(child.poll() is None for child in children):
            if delivering.poll() is not None:
                # Like the cluster replacing a dead worker: its claims lapse and are taken
                # over, so a crashed delivery process costs a lease, not the service.
                self.stdout.write(
                    f"The delivery process exited ({delivering.returncode}); starting it again."
                )
                delivering = subprocess.Popen([*manage, "deliver"], env=env)
            time.sleep(0.5)
        _stop(*children, delivering)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        self.stdout.write("Stopped.")

    @staticmethod
    def _web_server_command(host: str, port: int) -> list[str]:
        """gunicorn with threads: Django's runserver refuses connections past a small backlog
        (2 of 40 simultaneous clients), and one process of many threads makes every request
        wait for the others' CPU while it holds a database lock."""
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            # Server hooks: a dead worker's gauges leave the metrics (config/gunicorn.py).
            "--config",
            "python:config.gunicorn",
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(settings.WEB_WORKERS),
            "--threads",
            str(settings.WEB_THREADS),
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--access-logfile",
            "-",
        ]

    def _start_demo_radicale(
        self, radicale_port: int, root: Path, service_url: str
    ) -> subprocess.Popen:
        base_url = f"http://127.0.0.1:{radicale_port}"
        process = demo.start_radicale(root, port=radicale_port)
        try:
            calendar_url = demo.seed_sample_calendar(base_url)
            access = demo.ensure_demo_access(base_url, redirect_uri=f"{service_url}/demo/callback")
        except Exception:
            _stop(process)
            raise
        self.stdout.write(
            f"Local CalDAV server (Radicale): {base_url}/  user {demo.DEMO_USER!r}, "
            f"password {demo.DEMO_PASSWORD!r}\n"
            f"  sample calendar: {calendar_url}, connected to the demo account "
            f"{access.account_id} as profile {access.profile_id} (synced every "
            f"{settings.SYNC_POLL_INTERVAL_SECONDS} s)\n"
            f"  application {demo.DEMO_APPLICATION!r}: client_id {access.client_id}"
            + (
                f", client_secret {access.client_secret} (shown once)"
                if access.client_secret
                else ""
            )
            + "\n  an access token for the demo account (read_write, valid 1 hour):\n"
            f"    {access.access_token}\n"
            "  read its events:\n"
            f"    curl -H 'Authorization: Bearer {access.access_token}' "
            f"'{service_url}/v1/events?tzid=Etc/UTC'\n"
            f"  another token: {sys.executable} manage.py create_access_token "
            f"--account {access.account_id} --application {access.client_id}\n"
            # From another shell the demo server is on loopback, which outbound requests may
            # reach only where CONNECT_ALLOWED_ORIGINS says so (sync/outbound.py).
            "  sync now and see what changed:\n"
            f"    CONNECT_ALLOWED_ORIGINS={','.join(settings.CONNECT_ALLOWED_ORIGINS)} "
            f"{sys.executable} manage.py sync_calendar {access.profile_id}"
        )
        return process

    def _start_sandbox(self, sandbox: Sandbox, port: int, service_url: str):
        """A provider sandbox in its own process, with our client registered and a demo user
        that approves at once and has sample events; returns it and the environment that
        points web and worker at it."""
        client_id, client_secret = "calsync-demo", secrets.token_urlsafe(16)
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                sandbox.module,
                f"--port={port}",
                f"--client-id={client_id}",
                f"--client-secret={client_secret}",
                f"--redirect-uri={service_url}/connect/oauth/complete/{sandbox.backend}/",
                f"--user={sandbox.user}",
                f"--auto-approve-as={sandbox.user}",
                "--sample",
            ],
            stdout=subprocess.DEVNULL,
        )
        _wait_until_up(url + sandbox.probe, process)
        self.stdout.write(
            f"{sandbox.name} sandbox: {url}/  (the chooser's {sandbox.name} button signs in "
            f"as {sandbox.user}, who has sample events)"
        )
        return process, sandbox.env(url, client_id, client_secret)

    def _ensure_admin_user(self, host: str, port: int) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "admin@localhost", password)
        self.stdout.write(f"Created superuser 'admin' with password: {password}")


def _wait_until_up(url: str, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    _stop(process)
    raise RuntimeError(f"the Google sandbox did not start at {url}")


def _allow_connect_origin(env: dict, origin: str) -> None:
    """Let end-user URLs reach the demo Radicale on loopback (CONNECT_ALLOWED_ORIGINS), here
    (this process connects the demo calendar) and in the web server and worker we start."""
    origins = [*settings.CONNECT_ALLOWED_ORIGINS, origin]
    settings.CONNECT_ALLOWED_ORIGINS = origins
    env["CONNECT_ALLOWED_ORIGINS"] = ",".join(origins)


def _stop(*children: subprocess.Popen) -> None:
    """Signal every child at once and give them one grace period together (stopping them one
    after the other made Ctrl-C take the sum of their stops, 17 s); escalate for the rest."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        running = [child for child in children if child.poll() is None]
        if not running:
            return
        for child in running:
            child.send_signal(sig)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and any(child.poll() is None for child in running):
            time.sleep(0.1)
