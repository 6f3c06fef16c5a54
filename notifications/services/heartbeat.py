"""Heartbeats of the delivery process, for readiness checks (docs/operations.md, "The delivery
process"): each process upserts its row at most every HEARTBEAT_SECONDS; a reader asks how old
the freshest beat of a kind of process is."""

from datetime import datetime

from django.db.models import Max
from django.utils import timezone

from notifications.models import ProcessHeartbeat

HEARTBEAT_SECONDS = 10.0
DELIVERY_PROCESS = "deliver"


def record_heartbeat(*, name: str, now: datetime | None = None) -> None:
    """Upsert this process's beat (`name` is `<kind>@<host>:<pid>`, see heartbeat_age)."""
    ProcessHeartbeat.objects.update_or_create(
        name=name, defaults={"beat_at": now or timezone.now()}
    )


def forget_heartbeat(*, name: str) -> None:
    """A process that stops cleanly removes its row: its age no longer counts."""
    ProcessHeartbeat.objects.filter(name=name).delete()


def heartbeat_age(kind: str = DELIVERY_PROCESS, *, now: datetime | None = None) -> float | None:
    """Seconds since the freshest beat of any process of this kind (names `<kind>@…`); None
    when none has ever beaten. A healthy delivery process keeps it under HEARTBEAT_SECONDS
    plus one loop (a readiness check might allow 3 × HEARTBEAT_SECONDS)."""
    newest = ProcessHeartbeat.objects.filter(name__startswith=f"{kind}@").aggregate(
        newest=Max("beat_at")
    )["newest"]
    if newest is None:
        return None
    return max(0.0, ((now or timezone.now()) - newest).total_seconds())
