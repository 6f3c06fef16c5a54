"""Run the whole service for development: migrations, web server and django-q2 worker.

Ctrl-C (or SIGTERM) stops both children; a worker that hangs while stopping (django-q2 can,
see field-notes.md) is escalated to SIGINT and then SIGKILL.
"""

import secrets
import signal
import subprocess
import sys
import time

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

STOP_GRACE_SECONDS = 8


class Command(BaseCommand):
    help = "Migrate, then run the web server and the django-q2 worker until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host: str, port: int, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self._ensure_admin_user(host, port)
        manage = [sys.executable, "manage.py"]
        children = [
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
