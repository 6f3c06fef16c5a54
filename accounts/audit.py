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


LOG_ENTRY_ACTIONS = {1: "add", 2: "change", 3: "delete"}  # django.contrib.admin.models


def record_admin_edit(sender, instance, created: bool, **kwargs) -> None:
    """post_save of the admin's own LogEntry: an add, change or delete made through an admin
    form (not an action) goes into the audit log too, so that it is the one record of what
    staff did. Named by type and primary key (the object may be gone: a delete); the change
    message is not copied, since it can quote what was typed (an address, a name)."""
    if not created or instance.content_type_id is None:
        return
    content_type = instance.content_type
    AuditEntry.objects.create(
        actor_id=instance.user_id,
        actor_username=instance.user.get_username(),
        action=LOG_ENTRY_ACTIONS.get(instance.action_flag, "edit"),
        object_type=f"{content_type.app_label}.{content_type.model}",
        object_id=str(instance.object_id or "")[:64],
    )
