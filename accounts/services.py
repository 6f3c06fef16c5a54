"""Account-level writes: end-user accounts, profile disconnection, re-encryption of secrets."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts import crypto
from accounts.fields import encrypted_fields
from accounts.models import Account, Profile


@dataclass
class ReencryptionReport:
    model: str
    fields: tuple[str, ...] = ()
    # Rows in the table when its pass started; `scanned` counts up to it as batches commit.
    total: int = 0
    scanned: int = 0
    reencrypted: int = 0


def reencrypt_secrets(
    *, batch_size: int = 500, on_batch: Callable[[ReencryptionReport], None] | None = None
) -> list[ReencryptionReport]:
    """Re-encrypt every encrypted column of every model under the primary key.

    Works on the raw ciphertext (the plaintext never leaves the crypto module), one batch per
    transaction, and skips values already under the primary key: an interrupted run is
    resumed by running it again. Raises crypto.DecryptionError if a value fits no key.
    `on_batch` is called with the model's running report after each committed batch.
    """
    reports = []
    for model in apps.get_models():
        fields = encrypted_fields(model)
        if fields:
            reports.append(_reencrypt_model(model, fields, batch_size, on_batch))
    return reports


def _reencrypt_model(model, fields, batch_size, on_batch) -> ReencryptionReport:
    report = ReencryptionReport(model=model._meta.label, fields=tuple(f.name for f in fields))
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    columns = [quote(f.column) for f in fields]
    select = (
        f"SELECT {pk}, {', '.join(columns)} FROM {table} WHERE {pk} > %s ORDER BY {pk} LIMIT %s"  # noqa: S608 (quoted identifiers from model metadata)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 (quoted identifier)
        (report.total,) = cursor.fetchone()
    last_pk = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(select, [last_pk, batch_size])
            rows = cursor.fetchall()
            for row_pk, *values in rows:
                updates = {
                    column: crypto.reencrypt(value)
                    for column, value in zip(columns, values, strict=True)
                    if value and not crypto.is_encrypted_under_primary_key(value)
                }
                if updates:
                    assignments = ", ".join(f"{column} = %s" for column in updates)
                    cursor.execute(
                        f"UPDATE {table} SET {assignments} WHERE {pk} = %s",  # noqa: S608
                        [*updates.values(), row_pk],
                    )
                    report.reencrypted += 1
            report.scanned += len(rows)
        if not rows:
            return report
        last_pk = rows[-1][0]
        if on_batch:
            on_batch(report)


def create_account(*, email: str = "", name: str = "") -> Account:
    """A new end-user: a Django user without a usable password (end-users sign in only by
    connecting a calendar) and its Account."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(username=f"u-{uuid.uuid4().hex}", email=email)
        return Account.objects.create(user=user, email=email, name=name)


REVOKED_BY_APPLICATION = "revoked by application"


def disconnect_profile(*, profile: Profile, reason: str, at: datetime | None = None) -> Profile:
    """Mark a profile disconnected: it stops syncing (the poller skips disconnected profiles)
    and shows `profile_connected: false` with a relink URL. Idempotent: an already
    disconnected profile keeps its first reason and time."""
    with transaction.atomic():
        locked = Profile.objects.select_for_update(no_key=True).get(pk=profile.pk)
        if locked.status != Profile.Status.DISCONNECTED:
            locked.status = Profile.Status.DISCONNECTED
            locked.disconnected_reason = reason[:255]
            locked.disconnected_at = at or timezone.now()
            locked.save(
                update_fields=["status", "disconnected_reason", "disconnected_at", "updated_at"]
            )
            _run_disconnect_hooks(locked)
    return locked


def _run_disconnect_hooks(profile: Profile) -> None:
    """Tell the apps that care (settings.PROFILE_DISCONNECTED_HOOKS: dotted paths of callables
    taking the profile), inside the transaction that flips the status, so that what they write
    (the `profile_disconnected` outbox rows) commits or rolls back with it. accounts never
    imports the apps to its right; they name themselves here instead."""
    for dotted in settings.PROFILE_DISCONNECTED_HOOKS:
        import_string(dotted)(profile)


def revoke_profile(*, profile: Profile) -> Profile:
    """POST /v1/profiles/{id}/revoke: the integrator asks us to stop syncing this profile."""
    return disconnect_profile(profile=profile, reason=REVOKED_BY_APPLICATION)
