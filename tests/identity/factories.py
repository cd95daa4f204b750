"""Small factories for OneID tests: source records as the cleaning stage writes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

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
                cur.execute(
                    "INSERT INTO record_identifiers (record_id, record_kind, source_id, id_type, "
                    "id_value, observed_at) VALUES (?, 'contacts', ?, ?, ?, ?)",
                    [record_id, source, id_type, value, observed],
                )
        return record_id


def one_id(store: Store, record_id: str) -> str:
    row = (
        store.cursor()
        .execute("SELECT one_id FROM identity_records WHERE record_id = ?", [record_id])
        .fetchone()
    )
    assert row is not None, f"{record_id} has no one_id"
    return str(row[0])
