"""Model fields that store secrets encrypted at rest (see accounts.crypto)."""

import json
from typing import Any

from django.db import models

from accounts import crypto


class EncryptedTextField(models.TextField):
    """A text column holding Fernet ciphertext; Python code sees the plaintext.

    Not searchable or orderable: equal plaintexts encrypt differently every time.
    """

    def _purpose(self) -> str:
        return f"{self.model._meta.label}.{self.name}"

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return self._decode(crypto.decrypt(value, purpose=self._purpose()))

    def to_python(self, value):
        return value

    def get_prep_value(self, value):
        if value is None:
            return None
        return crypto.encrypt(self._encode(value), purpose=self._purpose())

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
