"""Reading one person's contact data for the privacy-aware views.

Until OneID and the golden record exist (issues 3-4), the person is a source contact record
(`contacts` + `record_identifiers`, owned by the cleaning stage; read here, never written).
"""

from __future__ import annotations

from typing import Any

import duckdb

from mecdp.config import Settings
from mecdp.errors import NotFound
from mecdp.privacy.vault import plain_contacts, plain_identifiers

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


def read_contact(
    cur: duckdb.DuckDBPyConnection, settings: Settings, record_id: str
) -> dict[str, Any]:
    """The contact record with its first identifier of each contact type (decrypted: callers
    mask it with `masking.mask_record` unless the role and purpose allow otherwise)."""
    contacts = plain_contacts(cur, settings, record_ids=[record_id]).to_pylist()
    if not contacts:
        raise NotFound(f"no contact record {record_id!r}", field="record_id", value=record_id)
    row = contacts[0]
    record: dict[str, Any] = {
        "record_id": row["record_id"],
        "record_kind": row["record_kind"],
        "source_id": row["source_id"],
        "name": row["name"],
        "gender": row["gender"],
        "birthday": row["birthday"].isoformat() if row["birthday"] else None,
        "city": row["city"],
        "store_code": row["store_code"],
    }
    found: dict[str, str] = {}
    for ident in plain_identifiers(cur, settings, record_ids=[record_id]).to_pylist():
        id_type, value = str(ident["id_type"]), ident["value"]
        if value is not None and (id_type not in found or str(value) < found[id_type]):
            found[id_type] = str(value)
    for id_type in CONTACT_IDENTIFIERS:
        record[id_type] = found.get(id_type)
    return record
