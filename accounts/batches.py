"""Writing many rows: deleting without one huge transaction (retention purges, account erasure),
and updating changed objects (the cache, the resource map)."""

from collections.abc import Callable, Sequence
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


def update_rows(model, objs: Sequence, fields: Sequence[str], *, batch_size: int = 500) -> None:
    """Save `fields` of `objs` (instances of `model`) in as few statements as it takes.

    bulk_update builds a CASE over the batch for every field, which for a lone row (the write
    reconciler's confirmation of one event, a one-event sync) costs several times a plain
    UPDATE; so one row is written with one, and more with bulk_update."""
    if len(objs) == 1:
        obj = objs[0]
        model.objects.filter(pk=obj.pk).update(**{name: getattr(obj, name) for name in fields})
    elif objs:
        model.objects.bulk_update(objs, fields, batch_size=batch_size)
