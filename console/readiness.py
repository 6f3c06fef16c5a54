"""GET /readyz: whether this process can do its work now. Each check reads what one dependency
says; the body names every failing check and what is stale (docs/operations.md, "Readiness").

A check is a function `(now) -> dict` of what it saw, raising NotReady (or any error) when the
process must not take traffic. CHECKS is the one list of them: a new check goes there.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis
from django.conf import settings
from django.db import connections
from django_q.models import OrmQ

from console import dashboard
from notifications import services as notification_services

# A broker that does not answer within this many seconds is down: a probe must not hang.
BROKER_TIMEOUT_SECONDS = 1


class NotReady(Exception):
    """A dependency answered, and what it said means not ready (`detail` says what)."""

    def __init__(self, message: str, **detail):
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class Result:
    name: str
    ok: bool
    detail: dict

    def as_json(self) -> dict:
        return {"ok": self.ok, **self.detail}


def database(now: datetime) -> dict:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
    return {}


def broker(now: datetime) -> dict:
    """django-q2's broker: Redis answers PING, or the ORM broker's table answers a query."""
    cluster = settings.Q_CLUSTER
    if "redis" in cluster:
        client = _redis_client(cluster["redis"])
        try:
            client.ping()
        finally:
            client.close()
        return {"kind": "redis"}
    OrmQ.objects.using(cluster.get("orm", "default")).exists()
    return {"kind": "orm"}


def schedules(now: datetime) -> dict:
    """Every django-q schedule ran within its period plus the dashboard's grace: a cluster
    runs them (the dashboard's own judgement, console.dashboard.is_schedule_overdue)."""
    stale = [
        {
            "name": run.name,
            "next_run_at": run.next_run_at.isoformat(),
            "last_run_at": run.last_run_at.isoformat() if run.last_run_at else None,
        }
        for run in dashboard.schedule_runs(now)
        if run.is_overdue
    ]
    if stale:
        raise NotReady(f"{len(stale)} schedules overdue", stale=stale)
    return {"stale": []}


# A delivery process beats every HEARTBEAT_SECONDS: three missed beats mean none is running.
DELIVERY_STALE_SECONDS = 3 * notification_services.HEARTBEAT_SECONDS


def delivery(now: datetime) -> dict:
    """A delivery process (`manage.py deliver`) beat recently, where it is the path of push
    notifications and writes (PUSH_ENQUEUE_ON_COMMIT off, the default). With the task-queue
    triggers on, the worker does that work and no process is needed."""
    if settings.PUSH_ENQUEUE_ON_COMMIT:
        return {"required": False}
    age = notification_services.heartbeat_age(now=now)
    if age is None:
        raise NotReady("no delivery process has ever run (manage.py deliver)")
    if age > DELIVERY_STALE_SECONDS:
        raise NotReady("no delivery process is running", heartbeat_age_seconds=round(age, 1))
    return {"heartbeat_age_seconds": round(age, 1)}


# The checks /readyz runs, in order. Add a further one here (a function as above).
CHECKS: tuple[tuple[str, Callable[[datetime], dict]], ...] = (
    ("database", database),
    ("broker", broker),
    ("schedules", schedules),
    ("delivery", delivery),
)


def run_checks(now: datetime) -> list[Result]:
    return [_run(name, check, now) for name, check in CHECKS]


def _run(name: str, check: Callable[[datetime], dict], now: datetime) -> Result:
    try:
        return Result(name, True, check(now))
    except NotReady as exc:
        return Result(name, False, {"error": str(exc), **exc.detail})
    except Exception as exc:  # noqa: BLE001 - a failing dependency is the answer, not a 500
        return Result(name, False, {"error": f"{type(exc).__name__}: {exc}"[:500]})


def _redis_client(location) -> redis.Redis:
    timeouts = {
        "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
        "socket_timeout": BROKER_TIMEOUT_SECONDS,
    }
    if isinstance(location, str):
        return redis.Redis.from_url(location, **timeouts)
    return redis.Redis(**{**location, **timeouts})
