"""Consent records from files (CSV UTF-8/GBK, XLSX, JSONL, Parquet) into the ledger.

Each row names the member by phone, email or one_id, a purpose and a status (同意/撤回 …).
Good rows go through `consent.record_consent`; a bad row is quarantined (origin 'file',
record kind 'consent') with the field and the rule, and never stops the good rows. The whole
file is one audited transaction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from mecdp.clean.rules import phone_to_e164
from mecdp.collect.mapping import normalize_header
from mecdp.collect.readers import read_file
from mecdp.config import Settings
from mecdp.errors import InputError
from mecdp.privacy import consent
from mecdp.privacy.audit import AuditEntry, append_audit, audited_transaction
from mecdp.privacy.vault import vault_for
from mecdp.store import Store

# canonical field -> accepted headers (matched like source mappings: trim, lower, no spaces)
CONSENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "phone": ("手机号", "手机", "电话", "phone", "mobile"),
    "email": ("邮箱", "电子邮箱", "email"),
    "one_id": ("one_id", "oneid", "客户id"),
    "purpose": ("目的", "用途", "授权目的", "purpose"),
    "status": ("状态", "授权状态", "是否同意", "status"),
    "channel": ("渠道", "触达渠道", "channel"),
    "notice_version": ("告知版本", "隐私政策版本", "notice version", "notice_version"),
    "notice_text": ("告知文本", "notice text", "notice_text"),
    "notice_sha256": ("告知哈希", "告知文本哈希", "notice sha256", "notice_sha256"),
    "source": ("来源", "source"),
    "evidence": ("凭证", "证据", "evidence"),
    "occurred_at": ("时间", "授权时间", "同意时间", "occurred at", "occurred_at"),
}
STATUS_WORDS = {
    "同意": "granted", "已同意": "granted", "授权": "granted", "是": "granted",
    "granted": "granted", "yes": "granted", "y": "granted", "1": "granted",
    "撤回": "withdrawn", "已撤回": "withdrawn", "拒绝": "withdrawn", "否": "withdrawn",
    "withdrawn": "withdrawn", "no": "withdrawn", "n": "withdrawn", "0": "withdrawn",
}  # fmt: skip


@dataclass
class ConsentImportReport:
    file_name: str
    rows_read: int = 0
    recorded: int = 0
    quarantined: int = 0
    rejects_by_rule: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _match_headers(headers: list[str]) -> dict[str, int]:
    lookup = {normalize_header(h): f for f, hs in CONSENT_COLUMNS.items() for h in hs}
    found: dict[str, int] = {}
    for index, header in enumerate(headers):
        name = lookup.get(normalize_header(header))
        if name and name not in found:
            found[name] = index
    return found


_LOCAL = timezone(timedelta(hours=8))  # Asia/Shanghai, no DST since 1991
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def _occurred_at(value: str | None) -> datetime | str | None:
    """A local (Asia/Shanghai) time as written in Chinese exports -> aware UTC; ISO strings
    with an offset pass through; anything else goes on to the ledger's own check."""
    if not value or not value.strip():
        return None
    text = value.strip().replace("/", "-").replace("年", "-").replace("月", "-")
    text = text.replace("日", "").replace("T", " ")
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=_LOCAL).astimezone(UTC)
        except ValueError:
            continue
    return value


def _member_ref(row: dict[str, str | None], key: bytes) -> str:
    if row.get("one_id"):
        return f"one_id:{row['one_id']}"
    phone = row.get("phone")
    if phone:
        e164 = phone_to_e164(phone)
        if not e164:
            raise InputError(
                "field 'phone': value is not a valid phone number", field="phone",
                rule="phone.invalid",
            )  # fmt: skip
        return consent.member_ref_for(key, "phone", e164)
    email = (row.get("email") or "").strip().lower()
    if email:
        return consent.member_ref_for(key, "email", email)
    raise InputError(
        "the row names no member: give 手机号/phone, 邮箱/email or one_id",
        field="member",
        rule="consent.member_ref",
    )


def import_consents(
    store: Store, settings: Settings, path: Path, *, source: str, actor: str
) -> ConsentImportReport:
    """Record every consent row of `path`; bad rows go to quarantine with field and rule."""
    report = ConsentImportReport(file_name=path.name)
    vault = vault_for(settings)
    key = settings.key()
    reader = store.con.cursor()
    try:
        raw = read_file(reader, path, "_consent_file")
        columns = _match_headers(raw.headers)
        missing = [f for f in ("purpose", "status") if f not in columns]
        if missing or not {"phone", "email", "one_id"} & set(columns):
            need = missing or ["手机号/邮箱/one_id"]
            raise InputError(
                f"{path.name}: missing column(s) {', '.join(need)}",
                field=need[0],
                rule="file.missing_columns",
            )
        select = ", ".join(f"c{i} AS {f}" for f, i in columns.items())
        rows = reader.execute(
            f"SELECT ({raw.row_sql})::BIGINT AS _row, {select} FROM {raw.table} ORDER BY 1"
        ).fetchall()
        reader.execute(f"DROP TABLE IF EXISTS {raw.table}")
    finally:
        reader.close()
    names = ["_row", *columns]
    report.rows_read = len(rows)
    with audited_transaction(store, head_file=settings.secrets_dir / "audit.head") as cur:
        for values in rows:
            row: dict[str, Any] = dict(zip(names, values, strict=True))
            try:
                status = STATUS_WORDS.get(str(row.get("status") or "").strip().lower())
                consent.record_consent(
                    cur,
                    recorded_by=actor,
                    member_ref=_member_ref(row, key),
                    purpose=(row.get("purpose") or "").strip(),
                    status=status or str(row.get("status")),
                    channel=row.get("channel") or None,
                    notice_version=row.get("notice_version") or "",
                    notice_text=row.get("notice_text") or None,
                    notice_sha256=row.get("notice_sha256") or None,
                    source=row.get("source") or source,
                    evidence=row.get("evidence") or f"file:{path.name}:{row['_row']}",
                    occurred_at=_occurred_at(row.get("occurred_at")),
                )
                report.recorded += 1
            except InputError as exc:
                report.quarantined += 1
                rule = exc.rule or "consent.invalid"
                report.rejects_by_rule[rule] = report.rejects_by_rule.get(rule, 0) + 1
                consent.quarantine_consent(
                    cur,
                    {k: v for k, v in row.items() if k != "_row"},
                    exc,
                    origin="file",
                    vault=vault,
                    source_id=source,
                    ref=f"{path.name}:{row['_row']}",
                )
        append_audit(
            cur,
            AuditEntry(
                actor=actor,
                action="consent.import",
                target=path.name,
                detail={"recorded": report.recorded, "quarantined": report.quarantined},
            ),
        )
    return report
