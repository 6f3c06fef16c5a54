"""The whole service as a newcomer runs it: `manage.py serve` (web server + django-q2 worker) in
its own processes, on a database of its own (a temporary SQLite file, or a throw-away
PostgreSQL database when DATABASE_URL points at PostgreSQL).

Tests talk to it over real HTTP and inspect its database with `manage.py shell`, never through
the test process's own connection (the service must see committed data only).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.radicale import free_port

ROOT = Path(__file__).resolve().parent.parent


def throwaway_postgres_url(base_url: str) -> str:
    """Create an empty database next to the one `base_url` names; returns its URL."""
    import psycopg

    name = f"calsync_live_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_with_database(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_database(base_url, name)


@contextmanager
def service_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database for a service under test: a SQLite file in `tmp_path`, or
    (kind "postgresql") a throw-away PostgreSQL database next to DATABASE_URL, dropped
    afterwards; skips the test when DATABASE_URL is not PostgreSQL."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.sqlite3'}"
        return
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        pytest.skip("needs PostgreSQL: set DATABASE_URL")
    url = throwaway_postgres_url(base)
    try:
        yield url
    finally:
        drop_postgres_database(url)


def drop_postgres_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@dataclass
class LiveService:
    database_url: str
    workdir: Path
    port: int = field(default_factory=free_port)
    env_overrides: dict = field(default_factory=dict)
    radicale_port: int | None = None  # run serve's demo CalDAV server on this port
    extra_args: list = field(default_factory=list)  # more `serve` options
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "serve.log"

    def env(self) -> dict:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "PYTEST_")) and key not in ("REDIS_URL",)
        }
        env.update(
            DATABASE_URL=self.database_url,
            DJANGO_SETTINGS_MODULE="config.settings",
            PYTHONUNBUFFERED="1",
            **self.env_overrides,
        )
        return env

    def start(self, timeout: float = 120) -> None:
        with self.log_path.open("w") as log_file:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "serve",
                    "--port",
                    str(self.port),
                    *self._demo(),
                    *self.extra_args,
                ],
                cwd=ROOT,
                env=self.env(),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends every child
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"serve exited early:\n{self.log()}")
            try:
                # A gunicorn worker loads the application on its first request: under load
                # that takes seconds, so a slow answer is "not yet", not a failure.
                if requests.get(f"{self.url}/connect/", timeout=10).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"serve did not answer within {timeout} s:\n{self.log()}")

    def _demo(self) -> list[str]:
        if not self.radicale_port:
            return ["--no-radicale"]
        return [
            "--radicale-port",
            str(self.radicale_port),
            "--radicale-dir",
            str(self.workdir / "dav"),
        ]

    def stop(self) -> None:
        """End serve and every process it started (its whole process group), even when serve
        itself has already exited. A test is done with the service by now, so the graceful
        stop gets a short grace: django-q2's waits for the worker's current task, and the
        worker may be in the middle of a task (a 17 s teardown)."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return  # the group is empty: everything has ended
            try:
                self.process.wait(timeout=wait)
                if sig == signal.SIGTERM:
                    time.sleep(0.5)  # children stopped by serve; then sweep what is left
            except subprocess.TimeoutExpired:
                continue

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def manage(self, *args: str, timeout: float = 120) -> str:
        """Run a management command against the service's database; returns its stdout."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def shell_json(self, code: str, timeout: float = 120):
        """Run Python in `manage.py shell` that prints one JSON document; returns it."""
        output = self.manage("shell", "-c", code, timeout=timeout)
        return json.loads(output.strip().splitlines()[-1])
