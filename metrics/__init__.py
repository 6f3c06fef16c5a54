"""The service's Prometheus metrics: every counter and histogram, in one place, and their
exposition. Not an app: prometheus-client only, nothing of the project and no Django, so that
any app may record into it (docs/operations.md, "Metrics", names each metric).

The web server's workers, the django-q2 cluster and the delivery process are separate
processes. With PROMETHEUS_MULTIPROC_DIR set (which `manage.py serve` does, a fresh directory
per start), prometheus-client keeps each process's values in files there and `exposition`
adds them up, so any web worker answers for every process of its machine. Without it (tests,
one process), values live in this process's default registry.

prometheus-client reads PROMETHEUS_MULTIPROC_DIR when it is first imported: the directory
must be in the environment before the process starts, never set afterwards.
"""

import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import wraps

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: from a poll that asks the provider one question to the first sync of a large
# calendar.
SYNC_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
# Seconds from a notification's creation to its delivery: from a first attempt that succeeds
# to a retry hours later (the retry window is PUSH_RETRY_WINDOW_HOURS, 24 h by default).
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 86400)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

syncs = Counter(
    "calsync_syncs_total",
    "Calendar syncs, by outcome (synced, unchanged, skipped, failed).",
    ["outcome"],
)
sync_duration = Histogram(
    "calsync_sync_duration_seconds",
    "Time one calendar sync took, by outcome.",
    ["outcome"],
    buckets=SYNC_BUCKETS,
)
sync_errors = Counter(
    "calsync_sync_errors_total",
    "Failed calendar syncs, by the exception class that failed them.",
    ["error_class"],
)
token_refreshes = Counter(
    "calsync_token_refreshes_total",
    "OAuth access-token refreshes, by outcome (refreshed; refused: the grant is dead; "
    "failed: a provider or network error).",
    ["outcome"],
)
deliveries = Counter(
    "calsync_push_deliveries_total",
    "Push delivery attempts to integrators, by outcome (delivered, retrying, failed, stale).",
    ["outcome"],
)
delivery_latency = Histogram(
    "calsync_push_delivery_latency_seconds",
    "From a notification's creation to its delivery (delivered notifications only).",
    buckets=DELIVERY_BUCKETS,
)
http_requests = Counter(
    "calsync_http_requests_total",
    "HTTP requests served, by method, route and status code.",
    ["method", "route", "status"],
)
http_duration = Histogram(
    "calsync_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route.",
    ["method", "route"],
    buckets=REQUEST_BUCKETS,
)


def observe_sync(outcome: str, *, seconds: float) -> None:
    syncs.labels(outcome=outcome).inc()
    sync_duration.labels(outcome=outcome).observe(seconds)


def observed_sync(sync: Callable) -> Callable:
    """Decorates the function that syncs one calendar: counts and times each call by the
    `status` of the outcome it returns, whichever way it returns."""

    @wraps(sync)
    def observed(*args, **kwargs):
        started = time.perf_counter()
        outcome = sync(*args, **kwargs)
        observe_sync(outcome.status, seconds=time.perf_counter() - started)
        return outcome

    return observed


def count_sync_error(error: BaseException) -> None:
    sync_errors.labels(error_class=type(error).__name__).inc()


def count_token_refresh(outcome: str) -> None:
    token_refreshes.labels(outcome=outcome).inc()


def observe_delivery(outcome: str, *, created_at: datetime | None, now: datetime) -> None:
    """One delivery attempt's outcome; for a delivered notification also its latency, from
    its creation (`created_at`) to `now`, when it was recorded delivered."""
    deliveries.labels(outcome=outcome).inc()
    if outcome == "delivered" and created_at is not None:
        delivery_latency.observe(max((now - created_at).total_seconds(), 0.0))


def observe_request(*, method: str, route: str, status: int, seconds: float) -> None:
    http_requests.labels(method=method, route=route, status=str(status)).inc()
    http_duration.labels(method=method, route=route).observe(seconds)


def is_multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_DIR_VARIABLE))


def exposition(scrape_time: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The text format of every recorded metric (of every process sharing the directory in
    multiprocess mode, of this process otherwise), followed by `scrape_time` collectors, which
    compute their values now; and its content type."""
    registry = CollectorRegistry()
    if is_multiprocess():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    for collector in scrape_time:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges (gunicorn's child_exit hook); its counters stay in the
    sum, as they must."""
    if is_multiprocess():
        multiprocess.mark_process_dead(pid)


class _ThisProcess(Collector):
    """The default registry (this process's metrics, and prometheus-client's process and
    platform collectors) inside the registry of one scrape."""

    def collect(self):
        return REGISTRY.collect()
