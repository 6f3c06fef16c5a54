"""Run the whole service for development: migrations, schedules, web server, django-q2 worker
and a local Radicale CalDAV server holding a sample calendar (to try the sync loop offline).

Ctrl-C (or SIGTERM) stops both children; a worker that hangs while stopping (django-q2 can)
is escalated to SIGINT and then SIGKILL.
"""

import secrets
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from sync import demo

STOP_GRACE_SECONDS = 8


class Command(BaseCommand):
    help = "Migrate, then run the web server and the django-q2 worker until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--radicale-port", type=int, default=5232)
        parser.add_argument(
            "--no-radicale", action="store_true", help="do not start the local demo CalDAV server"
        )

    def handle(self, *args, host: str, port: int, radicale_port: int, no_radicale: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("setup_schedules", verbosity=0, stdout=self.stdout)
        self._ensure_admin_user(host, port)
        manage = [sys.executable, "manage.py"]
        children = []
        if not no_radicale:
            children.append(self._start_demo_radicale(radicale_port))
        children += [
            subprocess.Popen([*manage, "runserver", "--noreload", f"{host}:{port}"]),
            subprocess.Popen([*manage, "qcluster"]),
        ]
        self.stdout.write(f"Service up: http://{host}:{port}/admin/  (Ctrl-C stops it)")
        stopping = False

        def request_stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.5)
        for child in children:
            _stop(child)
        self.stdout.write("Stopped.")

    def _start_demo_radicale(self, radicale_port: int) -> subprocess.Popen:
        base_url = f"http://127.0.0.1:{radicale_port}"
        process = demo.start_radicale(settings.BASE_DIR / "var" / "radicale", port=radicale_port)
        calendar_url = demo.seed_sample_calendar(base_url)
        connect = (
            "from accounts.models import Account; from sync.services import connect_profile; "
            "from django.contrib.auth import get_user_model; "
            "u, _ = get_user_model().objects.get_or_create(username='demo'); "
            "a, _ = Account.objects.get_or_create(user=u, defaults={'email': 'demo@localhost'}); "
            f"print(connect_profile(account=a, provider_key='caldav', credentials_dict={{"
            f"'url': '{base_url}/', 'username': '{demo.DEMO_USER}', "
            f"'password': '{demo.DEMO_PASSWORD}'}}))"
        )
        self.stdout.write(
            f"Local CalDAV server (Radicale): {base_url}/  user {demo.DEMO_USER!r}, "
            f"password {demo.DEMO_PASSWORD!r}\n"
            f"  sample calendar: {calendar_url}\n"
            "  connect it to a demo account (the worker then syncs it every "
            f"{settings.SYNC_POLL_INTERVAL_SECONDS} s):\n"
            f'    {sys.executable} manage.py shell -c "{connect}"\n'
            f"  then: {sys.executable} manage.py sync_calendar pro_…  (prints what changed)"
        )
        return process

    def _ensure_admin_user(self, host: str, port: int) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "admin@localhost", password)
        self.stdout.write(f"Created superuser 'admin' with password: {password}")


def _stop(child: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        if child.poll() is not None:
            return
        child.send_signal(sig)
        try:
            child.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            continue
