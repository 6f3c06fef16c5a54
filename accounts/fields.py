"""Model fields that store secrets encrypted at rest (see accounts.crypto).

A ciphertext is bound to its column (the purpose "app_label.Model.field") and, with `bind_to`,
to its row: the value of an immutable field of the row that exists before the first save
(a public id, a checksum) is part of the purpose. A ciphertext copied into another column or
another row then fails to decrypt instead of handing one user's secret to another.

Bound fields decrypt on first attribute access, because `from_db_value` does not know the row,
and encrypt in `pre_save`, which does. They can therefore only be written by `save()` or
`bulk_create()`: `QuerySet.update()` and `bulk_update()` are refused with a ValueError.
"""

import json
from typing import Any

from django.db import models
from django.db.models.query_utils import DeferredAttribute

from accounts import crypto


class Sealed(str):
    """A ciphertext as stored (not yet decrypted, or about to be written)."""


class _DecryptOnAccess(DeferredAttribute):
    """The model attribute: opens a Sealed value with the row's binding on first access."""

    # A data descriptor (it defines __set__), so that reads pass through __get__ even though
    # the value lives in the instance's __dict__.
    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = value

    def __get__(self, instance, cls=None):
        value = super().__get__(instance, cls)
        if instance is not None and isinstance(value, Sealed):
            value = self.field.open(value, instance)
            instance.__dict__[self.field.attname] = value
        return value


class EncryptedTextField(models.TextField):
    """A text column holding Fernet ciphertext; Python code sees the plaintext.

    Not searchable or orderable: equal plaintexts encrypt differently every time.
    """

    descriptor_class = _DecryptOnAccess

    def __init__(self, *args, bind_to: str = "", **kwargs):
        self.bind_to = bind_to
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.bind_to:
            kwargs["bind_to"] = self.bind_to
        return name, path, args, kwargs

    def purpose(self, instance=None) -> str:
        column = f"{self.model._meta.label}.{self.name}"
        if not self.bind_to:
            return column
        binding = getattr(instance, self.bind_to, "")
        if not binding:
            raise ValueError(f"{column} is bound to {self.bind_to}, which is empty")
        return f"{column}#{binding}"

    def open(self, ciphertext: str, instance) -> Any:
        """Decrypt a stored value of `instance`. Raises crypto.DecryptionError."""
        return self._decode(crypto.decrypt(ciphertext, purpose=self.purpose(instance)))

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        if self.bind_to:
            return Sealed(value)
        return self._decode(crypto.decrypt(value, purpose=self.purpose()))

    def to_python(self, value):
        return value

    def pre_save(self, model_instance, add):
        stored = model_instance.__dict__.get(self.attname)
        if isinstance(stored, Sealed):  # loaded and never opened: the ciphertext still fits
            return stored
        value = getattr(model_instance, self.attname)
        if value is None or not self.bind_to:
            return value
        return Sealed(crypto.encrypt(self._encode(value), purpose=self.purpose(model_instance)))

    def get_prep_value(self, value):
        if value is None:
            return None
        if isinstance(value, Sealed):
            return str(value)
        if self.bind_to:
            raise ValueError(
                f"{self.model._meta.label}.{self.name} is bound to its row: assign it and save()"
            )
        return crypto.encrypt(self._encode(value), purpose=self.purpose())

    def _encode(self, value: Any) -> str:
        return str(value)

    def _decode(self, text: str) -> Any:
        return text


class EncryptedJSONField(EncryptedTextField):
    """A JSON document (dict/list) stored encrypted."""

    def _encode(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)

    def _decode(self, text: str) -> Any:
        return json.loads(text)


def encrypted_fields(model: type[models.Model]) -> list[EncryptedTextField]:
    return [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
