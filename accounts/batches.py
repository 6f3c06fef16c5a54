"""Deleting many rows without one huge transaction (retention purges, account erasure)."""

from collections.abc import Callable
from contextlib import nullcontext

from django.db import transaction


def delete_in_batches(
    queryset, *, batch_size: int = 5000, lock: Callable[[], object] | None = None
) -> int:
    """Delete what `queryset` selects by primary-key batches, so that a retention purge never
    holds one huge transaction. Returns the number of rows deleted (cascades not counted).

    `lock`: each batch then runs in a transaction of its own that calls it first, so that the
    batch is selected and deleted under that lock (the event history purge takes the account's
    event lock, which every writer of its events takes first)."""
    deleted = 0
    while True:
        with transaction.atomic() if lock is not None else nullcontext():
            if lock is not None:
                lock()
            batch = list(queryset.values_list("pk", flat=True)[:batch_size])
            if not batch:
                return deleted
            queryset.model.objects.filter(pk__in=batch).delete()
        deleted += len(batch)
