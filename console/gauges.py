"""The metrics read from the database when Prometheus scrapes (docs/operations.md, "Metrics"):
outbox depths and polling lag. A handful of COUNTs and one ordered LIMIT 1, each served by an
index, so a scrape stays cheap however many calendars there are.

They describe the whole service, not the process that answers: every web process reports the
same values (aggregate them with max(), not sum())."""

import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from console.dashboard import OUTBOX_STATUSES, OUTBOXES
from sync.models import CalendarSyncState


class DatabaseGauges(Collector):
    def collect(self):
        started = time.perf_counter()
        up = GaugeMetricFamily(
            "calsync_database_gauges_up", "1 when the scrape-time database gauges were read."
        )
        try:
            families = list(_families())
        except DatabaseError:
            families = []
        up.add_metric([], 1 if families else 0)
        yield from families
        yield up
        yield GaugeMetricFamily(
            "calsync_database_gauges_seconds",
            "Time this scrape spent reading the database gauges.",
            value=time.perf_counter() - started,
        )


def _families():
    yield _outbox_depths()
    yield from _polling_lag()


def _outbox_depths() -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "calsync_outbox_depth",
        "Rows waiting (pending) or given up (failed) in each outbox: event_writes "
        "(integrators' writes to providers) and notifications (push to integrators).",
        labels=["outbox", "status"],
    )
    for outbox in OUTBOXES:
        for status in OUTBOX_STATUSES:
            count = outbox.model.objects.filter(status=status).count()
            family.add_metric([outbox.key, status], count)
    return family


def _polling_lag():
    now = timezone.now()
    interval = timedelta(seconds=settings.SYNC_POLL_INTERVAL_SECONDS)
    overdue = CalendarSyncState.objects.due(now - interval).count()
    oldest = (
        CalendarSyncState.objects.due(now)
        .order_by("next_poll_at")
        .values_list("next_poll_at", flat=True)
        .first()
    )
    yield GaugeMetricFamily(
        "calsync_calendars_overdue",
        "Calendars whose poll was due more than SYNC_POLL_INTERVAL_SECONDS ago and has not "
        "been claimed: polling does not keep up.",
        value=overdue,
    )
    yield GaugeMetricFamily(
        "calsync_poll_oldest_due_seconds",
        "How long the longest-waiting due calendar has waited for its poll (0: none due).",
        value=(now - oldest).total_seconds() if oldest else 0.0,
    )
