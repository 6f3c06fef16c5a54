"""The figures of the support dashboard: each a cheap count (an index serves each one) and
the admin list that shows the rows behind it, filtered the same way."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse
from django_q.models import Schedule, Task

from accounts.models import Profile
from calendars import freshness
from calendars.models import ManagedEventWrite
from notifications.models import Channel, Notification
from sync.freshness import calendars_in_state
from sync.models import CalendarSyncState, ProviderSubscription

RECENT = timedelta(hours=24)  # "in the last 24 h" for channels
RECENT_DISCONNECTIONS = 5  # listed by name on the dashboard, newest first
# A schedule whose next run is this far in the past has not been picked up: no worker runs it.
SCHEDULE_OVERDUE_AFTER = timedelta(minutes=2)


@dataclass(frozen=True)
class Figure:
    label: str
    count: int
    url: str

    @property
    def is_alarm(self) -> bool:
        return self.count > 0


@dataclass(frozen=True)
class Section:
    title: str
    figures: list[Figure]


@dataclass(frozen=True)
class ScheduleRun:
    name: str
    func: str
    url: str
    last_run_at: datetime | None
    last_success: bool | None
    next_run_at: datetime | None
    is_overdue: bool


def changelist_url(app_model: str, **params) -> str:
    url = reverse(f"admin:{app_model.replace('.', '_')}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def connection_figures() -> list[Figure]:
    disconnected = Profile.Status.DISCONNECTED
    return [
        Figure(
            "Disconnected profiles",
            Profile.objects.filter(status=disconnected).count(),
            changelist_url("accounts.profile", status__exact=disconnected),
        )
    ]


def recent_disconnections() -> list[Profile]:
    """The newest disconnected profiles, with their reason and time (one query)."""
    return list(
        Profile.objects.filter(status=Profile.Status.DISCONNECTED)
        .select_related("account")
        .order_by("-disconnected_at")[:RECENT_DISCONNECTIONS]
    )


def sync_figures(now: datetime) -> list[Figure]:
    return [
        Figure(
            f"Calendars {state}",
            calendars_in_state(state, now).count(),
            changelist_url("calendars.calendar", health=state),
        )
        for state in (freshness.FAILING, freshness.LAGGING)
    ]


def push_figures(now: datetime) -> list[Figure]:
    margin = settings.SYNC_PUSH_RENEW_BEFORE_SECONDS
    subscriptions = ProviderSubscription.objects
    return [
        Figure(
            "Provider push subscriptions expired",
            subscriptions.expired(now).count(),
            changelist_url("sync.providersubscription", push="expired"),
        ),
        Figure(
            "Provider push subscriptions due for renewal",
            subscriptions.expiring(now, margin).count(),
            changelist_url("sync.providersubscription", push="expiring"),
        ),
        Figure(
            "Calendars whose push subscription failed",
            CalendarSyncState.objects.filter(push_failures__gt=0).count(),
            changelist_url("sync.calendarsyncstate", push_failures__gt=0),
        ),
    ]


def channel_figures(now: datetime) -> list[Figure]:
    since = now - RECENT
    return [
        Figure(
            "Integrator channels failing",
            Channel.objects.failing(since).count(),
            changelist_url("notifications.channel", trouble="failing"),
        ),
        Figure(
            "Integrator channels closed in the last 24 h",
            Channel.objects.closed_since(since).count(),
            changelist_url("notifications.channel", trouble="closed"),
        ),
    ]


@dataclass(frozen=True)
class Outbox:
    label: str
    key: str  # its name in the metrics (console/gauges.py)
    model: type
    app_model: str


OUTBOXES = (
    Outbox("Event writes", "event_writes", ManagedEventWrite, "calendars.managedeventwrite"),
    Outbox("Notifications", "notifications", Notification, "notifications.notification"),
)
# The statuses counted: an index serves each (the failed rows are few, the retention purge
# keeps them).
OUTBOX_STATUSES = ("pending", "failed")


def outbox_figures() -> list[Figure]:
    return [
        Figure(
            f"{outbox.label} {status}",
            outbox.model.objects.filter(status=status).count(),
            changelist_url(outbox.app_model, status__exact=status),
        )
        for outbox in OUTBOXES
        for status in OUTBOX_STATUSES
    ]


def is_schedule_overdue(schedule: Schedule, now: datetime) -> bool:
    """Its next run is more than SCHEDULE_OVERDUE_AFTER in the past: it did not run within its
    period plus that grace, so no cluster runs it (the dashboard and /readyz both judge so).
    A schedule with no repeats left is finished, never overdue (django-q2 skips it too)."""
    return bool(
        schedule.repeats != 0
        and schedule.next_run
        and schedule.next_run < now - SCHEDULE_OVERDUE_AFTER
    )


def schedule_runs(now: datetime) -> list[ScheduleRun]:
    """Every periodic job with its last run (two queries): a worker that stopped shows as
    overdue schedules at once."""
    schedules = list(Schedule.objects.order_by("name"))
    tasks = Task.objects.in_bulk([s.task for s in schedules if s.task])
    runs = []
    for schedule in schedules:
        task = tasks.get(schedule.task)
        runs.append(
            ScheduleRun(
                name=schedule.name or schedule.func,
                func=schedule.func,
                url=reverse("admin:django_q_schedule_change", args=[schedule.pk]),
                last_run_at=task.stopped if task else None,
                last_success=task.success if task else None,
                next_run_at=schedule.next_run,
                is_overdue=is_schedule_overdue(schedule, now),
            )
        )
    return runs


def dashboard(now: datetime) -> dict:
    """Everything the dashboard shows, as template context."""
    return {
        "sections": [
            Section("Connections", connection_figures()),
            Section("Sync", sync_figures(now)),
            Section("Push at the providers", push_figures(now)),
            Section("Integrator channels", channel_figures(now)),
            Section("Outboxes", outbox_figures()),
        ],
        "recent_disconnections": recent_disconnections(),
        "schedules": schedule_runs(now),
    }
