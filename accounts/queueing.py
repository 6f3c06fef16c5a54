"""Enqueueing a task, for every app: best effort, logged and counted.

A task is only a trigger; the row it points at is the truth and a periodic sweep claims it
(docs/architecture.md, "Outbox rows first, tasks second"). So a broker that cannot take a task
(Redis unreachable, say) must not turn a request that has already committed into a 500, nor
skip the other after-commit callbacks. The count is per process, for tests and support
(docs/operations.md, "When the broker is down").

The frequent tasks (polls, syncs, write reconciles, deliveries) are queued with `save=False`:
django-q2 then stores only their failures. Storing every success cost the cluster's single
monitor process a lock over all `save_limit` stored results per task, a third of the cluster's
CPU at 10,000 polled calendars; their outcome is in our own rows anyway.
"""

import logging
import threading
from collections import Counter
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

_failures: Counter[str] = Counter()
_failures_lock = threading.Lock()


def enqueue_now(enqueue: Callable[[], object], *, what: str) -> bool:
    """Call `enqueue`; a failure is logged and counted under `what`, never raised. Returns
    whether the task was queued."""
    try:
        enqueue()
    except Exception as exc:
        with _failures_lock:
            _failures[what] += 1
            total = _failures[what]
        logger.warning(
            "could not enqueue %s (%s: %s); the periodic sweep will pick it up "
            "(%d such failures in this process)",
            what,
            type(exc).__name__,
            exc,
            total,
        )
        return False
    return True


def enqueue_after_commit(enqueue: Callable[[], object], *, what: str) -> None:
    """`enqueue_now` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: enqueue_now(enqueue, what=what))


def enqueue_failures() -> dict[str, int]:
    """Enqueue failures in this process so far, per kind of task."""
    with _failures_lock:
        return dict(_failures)
