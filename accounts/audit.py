"""The staff audit log: every support-console action writes one AuditEntry."""

from django.db import models

from accounts.models import AuditEntry


def public_id_of(obj: models.Model) -> str:
    """The id support staff search for: the public id where the model has one, else the pk."""
    for field in ("public_id", "delivery_id", "event_uid"):
        if value := getattr(obj, field, None):
            return str(value)
    return str(obj.pk)


def record_staff_action(*, user, action: str, target: models.Model, detail: str = "") -> AuditEntry:
    """Append one entry: `user` did `action` on `target`. Called by admin actions after the
    service they call has returned, so a refused action is recorded with its outcome in
    `detail` rather than not at all."""
    return AuditEntry.objects.create(
        actor=user if user.is_authenticated else None,
        actor_username=user.get_username(),
        action=action,
        object_type=target._meta.label_lower,
        object_id=public_id_of(target),
        detail=detail[:500],
    )


def record_for_each(request, *, action: str, targets, detail: str = "") -> int:
    """One entry per target of an admin action run by `request.user`; returns the count."""
    count = 0
    for target in targets:
        record_staff_action(user=request.user, action=action, target=target, detail=detail)
        count += 1
    return count
