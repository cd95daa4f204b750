"""Reading personal values at rest inside the identity service (privacy phase B).

When the privacy stage encrypts at rest, `record_identifiers.id_value` holds the keyed blind
index of phones and emails (their AES-GCM token in `id_value_enc`) and `contacts.name` holds a
token. The graph links on the blind index as on any value; what needs the plain value stays
inside this service and never leaves it: blocklist values and patterns, the phone last-4 and
email user part of matching, the pinyin of names, and lookups by a plain phone or email.
Everything here passes plain values through unchanged, so it works before and after the
encryption lands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mecdp.config import Settings
from mecdp.errors import MeCdpError
from mecdp.privacy.crypto import KeyRing, blind_index, decrypt_value, load_keyring

TOKEN_PREFIX = "e1:"  # noqa: S105 - marks an encrypted value, not a secret
NAME_CONTEXT = "contacts.name"
IDENTIFIER_CONTEXT = "record_identifiers.id_value"
ENCRYPTED_TYPES = ("phone", "email")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class PlainValues:
    """Decrypts tokens and computes blind indexes with the workspace's keys (lazily)."""

    workspace: Path | None
    _ring: KeyRing | None = None
    _key: bytes | None = None

    def _settings(self) -> Settings:
        return Settings(workspace=self.workspace) if self.workspace else Settings()

    def ring(self) -> KeyRing:
        if self._ring is None:
            self._ring = load_keyring(self._settings())
        return self._ring

    def key(self) -> bytes:
        if self._key is None:
            self._key = self._settings().key()
        return self._key

    def open(self, value: str | None, context: str) -> str | None:
        """The plain value of a token; other values as they are; None when unreadable."""
        if value is None or not value.startswith(TOKEN_PREFIX):
            return value
        try:
            return decrypt_value(self.ring(), value, context=context)
        except (MeCdpError, OSError):
            return None

    def stored(self, cur: duckdb.DuckDBPyConnection, id_type: str, value: str) -> str:
        """What `record_identifiers.id_value` holds for a plain identifier value."""
        if id_type in ENCRYPTED_TYPES and identifiers_encrypted(cur, id_type):
            try:
                return blind_index(self.key(), id_type, value)
            except (MeCdpError, OSError):
                return value
        return value


def has_column(cur: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    row = cur.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = ? AND column_name = ?",
        [table, column],
    ).fetchone()
    return bool(row and row[0])


def identifiers_encrypted(cur: duckdb.DuckDBPyConnection, id_type: str) -> bool:
    """True when values of `id_type` are stored as blind indexes (with a token beside)."""
    if not has_column(cur, "record_identifiers", "id_value_enc"):
        return False
    row = cur.execute(
        "SELECT id_value FROM record_identifiers WHERE id_type = ? AND id_value_enc IS NOT NULL "
        "LIMIT 1",
        [id_type],
    ).fetchone()
    return bool(row and _HEX64.match(str(row[0])))


def plain_identifier_sql(cur: duckdb.DuckDBPyConnection) -> str:
    """A column expression for the stored token (or the value) of `ri` rows."""
    if has_column(cur, "record_identifiers", "id_value_enc"):
        return "coalesce(ri.id_value_enc, ri.id_value)"
    return "ri.id_value"
