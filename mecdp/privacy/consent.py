"""The consent ledger (PIPL Art. 14-16, 23, 24, 29) and `may()`, the gate other areas call.

The ledger is append-only: granting and withdrawing are both new rows; the current state of
a member's purpose (and channel) is its latest event (by occurred_at, then seq). Without a
grant the answer is deny.

* Sensitive medical data (PIPL Art. 28/29: treatments) may drive segmentation,
  recommendation or export only with the separate consent (单独同意)
  ``sensitive_medical_processing``: callers pass ``sensitive=True``.
* Personalised marketing honours the Art. 24 opt-out: callers pass ``personalised=True``
  and a withdrawn ``personalised_recommendation`` denies.

Members are referenced by ``one_id:<id>`` or, until OneID exists, ``<id_type>:bi:<blind
index>`` computed from the identifier (the ledger never holds contact values).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb

from mecdp.errors import InputError
from mecdp.privacy.crypto import BLIND_INDEX_TYPES, blind_index, sha256_hex
from mecdp.profiles import serving

if TYPE_CHECKING:
    from mecdp.privacy.vault import Vault

log = logging.getLogger("mecdp.privacy.consent")

PURPOSES: dict[str, str] = {
    "marketing_sms": "sms",  # 短信营销
    "marketing_email": "email",  # 邮件营销
    "wechat_push": "wechat_oa",  # 微信推送 (official account / mini-program messages)
    "wecom_contact": "wecom",  # 企业微信联系
    "ad_sharing": "*",  # sharing with ad platforms (Tencent Ads, Ocean Engine)
    "personalised_recommendation": "*",  # 个性化推荐 (Art. 24 opt-out)
    "sensitive_medical_processing": "*",  # 敏感个人信息单独同意 (Art. 29)
    "cross_border": "*",  # 跨境提供 (Art. 38-39)
}
SENSITIVE_PURPOSE = "sensitive_medical_processing"
PERSONALISED_PURPOSE = "personalised_recommendation"
CHANNELS = ("*", "sms", "email", "wechat_oa", "wechat_mp", "wecom", "phone", "app_push", "ads")
STATUSES = ("granted", "withdrawn")
MEMBER_REF = re.compile(r"^(one_id:[A-Za-z0-9_.:-]{1,80}|[a-z_]+:bi:[0-9a-f]{64})$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
SHORT_TEXT = re.compile(r"^[\w.:/#@-]{1,80}$")


@dataclass(frozen=True)
class ConsentRecord:
    consent_id: str
    seq: int
    member_ref: str
    purpose: str
    channel: str
    status: str
    notice_version: str
    notice_sha256: str
    source: str
    evidence: str | None
    occurred_at: datetime
    recorded_at: datetime
    recorded_by: str

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["occurred_at"] = self.occurred_at.isoformat() + "Z"
        d["recorded_at"] = self.recorded_at.isoformat() + "Z"
        return d


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    consent_ref: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reason": self.reason, "consent_ref": self.consent_ref}


def member_ref_for(key: bytes, id_type: str, value: str) -> str:
    """The ledger's reference for a member known only by an identifier (no plaintext kept)."""
    return f"{id_type}:bi:{blind_index(key, id_type, value)}"


def _utc(value: datetime | str | None, field: str) -> datetime:
    if value is None:
        return datetime.now(UTC).replace(tzinfo=None)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(
                f"{field} must be an ISO 8601 time", field=field, value=value, rule="consent.time"
            ) from None
    if value.tzinfo is None:
        raise InputError(
            f"{field} needs a time zone (e.g. +08:00 or Z)",
            field=field,
            value=value.isoformat(),
            rule="consent.time_zone",
        )
    utc = value.astimezone(UTC).replace(tzinfo=None)
    if utc > datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=5):
        raise InputError(
            f"{field} is in the future", field=field, value=value.isoformat(), rule="consent.time"
        )
    return utc


def _purpose_channel(purpose: str, channel: str | None) -> str:
    """Check the purpose and the channel (default: the purpose's own); returns the channel."""
    if purpose not in PURPOSES:
        raise InputError(
            f"unknown consent purpose {purpose!r}; one of: {', '.join(PURPOSES)}",
            field="purpose",
            value=purpose,
            rule="consent.purpose",
        )
    channel = channel or PURPOSES[purpose]
    if channel not in CHANNELS:
        raise InputError(
            f"unknown consent channel {channel!r}; one of: {', '.join(CHANNELS)}",
            field="channel",
            value=channel,
            rule="consent.channel",
        )
    return channel


def validate_consent(
    *,
    member_ref: str,
    purpose: str,
    status: str,
    notice_version: str,
    source: str,
    channel: str | None = None,
    notice_text: str | None = None,
    notice_sha256: str | None = None,
    evidence: str | None = None,
    occurred_at: datetime | str | None = None,
) -> dict[str, Any]:
    """Check one consent event; raises InputError naming the field. Returns the row values."""
    if not isinstance(member_ref, str) or not MEMBER_REF.match(member_ref):
        raise InputError(
            "member_ref must be 'one_id:<id>' or '<id_type>:bi:<64 hex blind index>'",
            field="member_ref",
            rule="consent.member_ref",
        )
    id_type = member_ref.split(":", 1)[0]
    if id_type != "one_id" and id_type not in BLIND_INDEX_TYPES:
        raise InputError(
            f"member_ref identifier type {id_type!r} is unknown",
            field="member_ref",
            value=id_type,
            rule="consent.member_ref",
        )
    channel = _purpose_channel(purpose, channel)
    if status not in STATUSES:
        raise InputError(
            f"consent status must be granted or withdrawn, not {status!r}",
            field="status",
            value=status,
            rule="consent.status",
        )
    if not notice_version or not SHORT_TEXT.match(notice_version):
        raise InputError(
            "notice_version is required (the version of the privacy notice shown)",
            field="notice_version",
            value=notice_version or None,
            rule="consent.notice_version",
        )
    if notice_text:
        digest = sha256_hex(notice_text.encode("utf-8"))
        if notice_sha256 and notice_sha256 != digest:
            raise InputError(
                "notice_sha256 does not match the notice text",
                field="notice_sha256",
                value=notice_sha256,
                rule="consent.notice_hash",
            )
        notice_sha256 = digest
    if not notice_sha256 or not SHA256_HEX.match(notice_sha256):
        raise InputError(
            "notice_sha256 (64 lower-case hex) or notice_text is required",
            field="notice_sha256",
            value=notice_sha256 or None,
            rule="consent.notice_hash",
        )
    if not source or not SHORT_TEXT.match(source):
        raise InputError(
            "source is required: where the consent was captured (e.g. mini_program)",
            field="source",
            value=source or None,
            rule="consent.source",
        )
    if status == "granted" and not evidence:
        raise InputError(
            "a grant needs evidence (form id, event id, signed document reference)",
            field="evidence",
            rule="consent.evidence",
        )
    if evidence is not None and len(evidence) > 2000:
        raise InputError(
            "evidence is a reference, at most 2000 characters",
            field="evidence",
            rule="consent.evidence",
        )
    return {
        "member_ref": member_ref,
        "purpose": purpose,
        "channel": channel,
        "status": status,
        "notice_version": notice_version,
        "notice_sha256": notice_sha256,
        "source": source,
        "evidence": evidence,
        "occurred_at": _utc(occurred_at, "occurred_at"),
    }


_COLUMNS = (
    "consent_id, seq, member_ref, purpose, channel, status, notice_version, notice_sha256, "
    "source, evidence, occurred_at, recorded_at, recorded_by"
)


def record_consent(
    cur: duckdb.DuckDBPyConnection, *, recorded_by: str, **fields: Any
) -> ConsentRecord:
    """Validate and append one consent event (grant or withdrawal). See `validate_consent`.

    Call inside `audit.audited_transaction` and append a ``consent.recorded`` audit row.
    """
    values = validate_consent(**fields)
    consent_id = "cs_" + uuid.uuid4().hex
    now = datetime.now(UTC).replace(tzinfo=None)
    cur.execute(
        "INSERT INTO consents (consent_id, member_ref, purpose, channel, status, "
        "notice_version, notice_sha256, source, evidence, occurred_at, recorded_at, "
        "recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            consent_id,
            values["member_ref"],
            values["purpose"],
            values["channel"],
            values["status"],
            values["notice_version"],
            values["notice_sha256"],
            values["source"],
            values["evidence"],
            values["occurred_at"],
            now,
            recorded_by,
        ],
    )
    serving.changed(cur, [serving.member_ref_name(values["member_ref"])])
    log.info("consent.recorded", extra={"consent_purpose": values["purpose"]})
    row = cur.execute(
        f"SELECT {_COLUMNS} FROM consents WHERE consent_id = ?", [consent_id]
    ).fetchone()
    assert row is not None  # noqa: S101 - just inserted
    return ConsentRecord(*row)


def quarantine_consent(
    cur: duckdb.DuckDBPyConnection,
    payload: dict[str, Any],
    error: InputError,
    *,
    origin: str,
    vault: Vault,
    source_id: str | None = None,
    ref: str | None = None,
) -> None:
    """Put a rejected consent event in the shared quarantine table with its field and rule
    (value and payload sealed with `vault`: they may carry personal data)."""
    import pyarrow as pa

    from mecdp.privacy.vault import insert_quarantine

    value = None if error.details.get("value") is None else str(error.details["value"])
    row = {
        "source_id": source_id,
        "origin": origin,
        "record_kind": "consent",
        "ref": ref,
        "field": error.field,
        "value": value,
        "rule": error.rule or "consent.invalid",
        "reason": error.message,
        "payload": json.dumps(payload, ensure_ascii=False, default=str),
    }
    table = pa.table({k: pa.array([v], pa.string()) for k, v in row.items()})
    table = table.append_column(
        "quarantined_at",
        pa.array([datetime.now(UTC).replace(tzinfo=None)], pa.timestamp("us")),
    )
    insert_quarantine(cur, table, vault)
    log.info("consent.quarantined", extra={"consent_rule": error.rule})


def list_consents(cur: duckdb.DuckDBPyConnection, member_ref: str) -> list[ConsentRecord]:
    rows = cur.execute(
        f"SELECT {_COLUMNS} FROM consents WHERE member_ref = ? ORDER BY occurred_at, seq",
        [member_ref],
    ).fetchall()
    return [ConsentRecord(*r) for r in rows]


def current_consents(cur: duckdb.DuckDBPyConnection, member_ref: str) -> list[ConsentRecord]:
    """The latest event per purpose and channel (the member's current state)."""
    rows = cur.execute(
        f"SELECT {_COLUMNS} FROM consents WHERE member_ref = ? "
        "QUALIFY row_number() OVER (PARTITION BY purpose, channel "
        "ORDER BY occurred_at DESC, seq DESC) = 1 ORDER BY purpose, channel",
        [member_ref],
    ).fetchall()
    return [ConsentRecord(*r) for r in rows]


def _latest(
    cur: duckdb.DuckDBPyConnection, member_ref: str, purpose: str, channel: str
) -> tuple[str, str] | None:
    """(status, consent_id) of the latest event for the purpose covering `channel`."""
    row = cur.execute(
        "SELECT status, consent_id FROM consents WHERE member_ref = ? AND purpose = ? "
        "AND (channel = ? OR channel = '*') ORDER BY occurred_at DESC, seq DESC LIMIT 1",
        [member_ref, purpose, channel],
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def may(
    cur: duckdb.DuckDBPyConnection,
    member_ref: str,
    purpose: str,
    channel: str | None = None,
    *,
    sensitive: bool = False,
    personalised: bool = False,
) -> Decision:
    """May this member's data be used for `purpose` on `channel`? Default: deny.

    `sensitive`: the use involves sensitive medical data (treatments) - also needs the
    separate consent ``sensitive_medical_processing``. `personalised`: the message or
    ranking is personalised - a withdrawn ``personalised_recommendation`` (Art. 24) denies.
    """
    channel = _purpose_channel(purpose, channel)
    latest = _latest(cur, member_ref, purpose, channel)
    if latest is None:
        return Decision(False, f"no consent for {purpose} on {channel}")
    status, ref = latest
    if status != "granted":
        return Decision(False, f"{purpose} was withdrawn", ref)
    if sensitive and purpose != SENSITIVE_PURPOSE:
        separate = _latest(cur, member_ref, SENSITIVE_PURPOSE, "*")
        if separate is None or separate[0] != "granted":
            return Decision(
                False,
                "sensitive medical data needs the separate consent sensitive_medical_processing",
                separate[1] if separate else None,
            )
    if personalised and purpose != PERSONALISED_PURPOSE:
        opt_out = _latest(cur, member_ref, PERSONALISED_PURPOSE, "*")
        if opt_out is not None and opt_out[0] == "withdrawn":
            return Decision(
                False, "the member opted out of personalised recommendation", opt_out[1]
            )
    return Decision(True, f"{purpose} granted", ref)
