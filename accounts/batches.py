"""Deleting many rows without one huge transaction (retention purges, account erasure)."""


def delete_in_batches(queryset, *, batch_size: int = 5000) -> int:
    """Delete what `queryset` selects by primary-key batches, so that a retention purge never
    holds one huge transaction. Returns the number of rows deleted (cascades not counted)."""
    deleted = 0
    while batch := list(queryset.values_list("pk", flat=True)[:batch_size]):
        queryset.model.objects.filter(pk__in=batch).delete()
        deleted += len(batch)
    return deleted
