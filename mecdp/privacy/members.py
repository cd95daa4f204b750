"""Reading one person's contact data for the privacy-aware views (phase A).

Until OneID and the golden record exist (issues 3-4), the person is a source contact record
(`contacts` + `record_identifiers`, owned by the cleaning stage; read here, never written).
"""

from __future__ import annotations

from typing import Any

import duckdb

from mecdp.errors import NotFound

CONTACT_IDENTIFIERS = (
    "phone",
    "email",
    "wechat_unionid",
    "wechat_openid",
    "wecom_external_userid",
    "douyin_open_id",
    "xhs_user_id",
)


def member_ref_of_record(record_id: str) -> str:
    """How the audit log names a person known by a source record."""
    return f"record:{record_id}"


def read_contact(cur: duckdb.DuckDBPyConnection, record_id: str) -> dict[str, Any]:
    """The contact record with its first identifier of each contact type (unmasked)."""
    row = cur.execute(
        "SELECT record_id, record_kind, source_id, name, gender, birthday, city, store_code "
        "FROM contacts WHERE record_id = ?",
        [record_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no contact record {record_id!r}", field="record_id", value=record_id)
    record: dict[str, Any] = {
        "record_id": row[0],
        "record_kind": row[1],
        "source_id": row[2],
        "name": row[3],
        "gender": row[4],
        "birthday": row[5].isoformat() if row[5] else None,
        "city": row[6],
        "store_code": row[7],
    }
    ids = cur.execute(
        "SELECT id_type, min(id_value) FROM record_identifiers WHERE record_id = ? "
        "GROUP BY id_type",
        [record_id],
    ).fetchall()
    found = {str(t): str(v) for t, v in ids}
    for id_type in CONTACT_IDENTIFIERS:
        record[id_type] = found.get(id_type)
    return record
