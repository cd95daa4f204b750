"""Small factories for OneID tests: source records as the cleaning stage writes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from mecdp.config import Settings
from mecdp.identity.plain import ENCRYPTED_TYPES, IDENTIFIER_CONTEXT, identifiers_encrypted
from mecdp.privacy.crypto import blind_index, encrypt_value, load_keyring
from mecdp.store import Store


@dataclass
class Records:
    """Writes `contacts` + `record_identifiers` rows as the cleaning stage would."""

    store: Store
    _n: int = 0

    def add(
        self,
        record_id: str | None = None,
        *,
        name: str | None = None,
        birthday: str | None = None,
        gender: str | None = None,
        city: str | None = None,
        source: str = "crm",
        when: str = "2025-01-01 10:00:00",
        **identifiers: str | list[str],
    ) -> str:
        self._n += 1
        record_id = record_id or f"{source}:r{self._n:04d}"
        observed = datetime.fromisoformat(when)
        cur = self.store.cursor()
        cur.execute(
            "INSERT INTO contacts (record_id, record_kind, source_id, name, gender, birthday, "
            "city, observed_at) VALUES (?, 'contacts', ?, ?, ?, ?, ?, ?)",
            [
                record_id,
                source,
                name,
                gender,
                date.fromisoformat(birthday) if birthday else None,
                city,
                observed,
            ],
        )
        for id_type, values in identifiers.items():
            for value in [values] if isinstance(values, str) else values:
                stored, token = self._stored(id_type, value)
                cur.execute(
                    "INSERT INTO record_identifiers (record_id, record_kind, source_id, id_type, "
                    "id_value, observed_at) VALUES (?, 'contacts', ?, ?, ?, ?)",
                    [record_id, source, id_type, stored, observed],
                )
                if token is not None:
                    cur.execute(
                        "UPDATE record_identifiers SET id_value_enc = ? WHERE record_id = ? "
                        "AND id_type = ? AND id_value = ?",
                        [token, record_id, id_type, stored],
                    )
        return record_id

    def _stored(self, id_type: str, value: str) -> tuple[str, str | None]:
        """Phones and emails as the store keeps them: blind index + token once the workspace
        encrypts at rest (privacy phase B), else plain."""
        cur = self.store.cursor()
        if id_type not in ENCRYPTED_TYPES or not identifiers_encrypted(cur, id_type):
            return value, None
        assert self.store.path is not None
        settings = Settings(workspace=self.store.path.parent)
        token = encrypt_value(load_keyring(settings), value, context=IDENTIFIER_CONTEXT)
        return blind_index(settings.key(), id_type, value), token


def one_id(store: Store, record_id: str) -> str:
    row = (
        store.cursor()
        .execute("SELECT one_id FROM identity_records WHERE record_id = ?", [record_id])
        .fetchone()
    )
    assert row is not None, f"{record_id} has no one_id"
    return str(row[0])
