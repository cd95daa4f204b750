"""The stream processor: follows the raw log by `seq` and normalises each message into
`events`, plus the person data it carries into `contacts` and `record_identifiers`.

It runs as a background thread of the server. Each step reads the messages after its
checkpoint (`stream_checkpoints` row 'clean_events'), writes everything, and advances the
checkpoint in the same transaction: after a crash it resumes exactly where the last commit
left it, and every write is idempotent on `record_id = source_id:messageId` anyway.

Personal values (name, phone, email, id-card) arrive as AES-GCM tokens (the collector seals
them, `mecdp.privacy.vault.protect_message`); they are decrypted here by the SQL function
`mecdp_reveal` before cleaning, and the cleaned contacts and identifiers are sealed again
(`vault.seal_stage_outputs`) before they are written.

Person data of a message (in order of precedence): `traits` of an identify, `context.traits`,
`context.externalIds` ([{id, type}], type named like an identifier field), and
`context.device.advertisingId` (idfa on iOS, oaid on Android/HarmonyOS). Trait names are
matched in snake_case and camelCase (`wechat_unionid`, `wechatUnionId`, `unionid`, ...). They
go through the shared cleaning stage as kind `contacts`; a value that breaks a rule (a bad
phone) quarantines the message's person data with origin 'stream' (the event itself is kept).
`userId` and `anonymousId` become identifiers 'user_id' and 'anonymous_id'.

What is counted where: the collector's `ingest_log` rows (origin 'http') count what was
received, accepted, quarantined and duplicated. This processor adds rows with origin
'stream' only when it quarantines person data (received = accepted = duplicates = 0), so
`received` is never counted twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pyarrow as pa

from mecdp.clean.kinds import PERSON_FIELDS, RECORD_KINDS
from mecdp.config import Settings
from mecdp.privacy.vault import (
    QUARANTINE_COLUMNS,
    REVEAL_UDF_NAME,
    insert_quarantine,
    seal_stage_outputs,
    vault_for,
)
from mecdp.store import Store

log = logging.getLogger("mecdp.collect.processor")

CHECKPOINT = "clean_events"
BATCH_SIZE = 20_000

# person field -> trait names accepted for it (first match wins)
TRAIT_NAMES: dict[str, tuple[str, ...]] = {
    "name": ("name", "fullName", "full_name"),
    "gender": ("gender", "sex"),
    "birthday": ("birthday", "birthdate", "dateOfBirth", "date_of_birth"),
    "city": ("city", "address.city"),
    "phone": ("phone", "mobile", "phoneNumber", "phone_number"),
    "phone2": ("phone2",),
    "email": ("email",),
    "wechat_unionid": ("wechat_unionid", "wechatUnionId", "unionid", "unionId"),
    "wechat_openid": ("wechat_openid", "wechatOpenId", "openid", "openId"),
    "wechat_appid": ("wechat_appid", "wechatAppId"),
    "wecom_external_userid": ("wecom_external_userid", "wecomExternalUserId"),
    "douyin_open_id": ("douyin_open_id", "douyinOpenId"),
    "xhs_user_id": ("xhs_user_id", "xhsUserId"),
    "weibo_uid": ("weibo_uid", "weiboUid"),
    "idfa": ("idfa",),
    "oaid": ("oaid",),
    "imei": ("imei",),
    "android_id": ("android_id", "androidId"),
    "member_no": ("member_no", "memberNo"),
    "id_card": ("id_card", "idCard"),
    "customer_no": ("customer_no", "customerNo"),
    "store_code": ("store_code", "storeCode"),
}
_ID_FIELDS = {f.name for f in PERSON_FIELDS if f.id_type}
# fields whose payload values may be tokens (mecdp.privacy.vault.PERSONAL_KEYS)
_SEALED_FIELDS = frozenset({"name", "phone", "phone2", "email", "id_card"})


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _trait_sql(field: str) -> str:
    """SQL for one person field from the message JSON `p` (a column of type JSON)."""
    candidates = []
    names = TRAIT_NAMES[field]
    for name in names:
        candidates.append(
            f"CASE WHEN p->>'$.type' = 'identify' THEN p->>{_lit('$.traits.' + name)} END"
        )
    for name in names:
        candidates.append(f"p->>{_lit('$.context.traits.' + name)}")
    if field in _ID_FIELDS:
        types = ", ".join(_lit(n) for n in names)
        candidates.append(
            "list_filter(CAST(json_extract(p, '$.context.externalIds[*]') AS JSON[]), "
            f"x -> (x->>'$.type') IN ({types}))[1]->>'$.id'"
        )
    if field == "idfa":
        candidates.append(
            "CASE WHEN lower(p->>'$.context.os.name') IN ('ios', 'ipados') "
            "THEN p->>'$.context.device.advertisingId' END"
        )
    if field == "oaid":
        candidates.append(
            "CASE WHEN lower(p->>'$.context.os.name') IN ('android', 'harmonyos') "
            "THEN p->>'$.context.device.advertisingId' END"
        )
    return f"nullif(trim(coalesce({', '.join(candidates)})), '') AS {field}"


# Where person data can come from (see `_trait_sql`): messages with none of these (most
# tracks) skip the extraction of every field.
_MAY_CARRY_PERSON = (
    "((p->>'$.type') = 'identify' OR (p->'$.context.traits') IS NOT NULL "
    "OR (p->'$.context.externalIds') IS NOT NULL "
    "OR (p->'$.context.device.advertisingId') IS NOT NULL)"
)


def _reveal_sql() -> str:
    """`* REPLACE` list decrypting the personal fields that arrive as tokens (collect.events);
    the Python function runs only on token rows."""
    return ", ".join(
        f"CASE WHEN starts_with({f}, 'e1:') THEN {REVEAL_UDF_NAME}({f}) ELSE {f} END AS {f}"
        for f in sorted(_SEALED_FIELDS)
    )


def _consent_member_ref(message: dict[str, Any], vault: Any) -> str:
    """The ledger reference of a consent event's member: phone, then email from the traits
    (tokens decrypted), then userId; never the plain value."""
    from mecdp.clean.rules import phone_to_e164
    from mecdp.errors import InputError
    from mecdp.privacy.vault import CTX_PAYLOAD

    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    for traits in (message.get("traits"), (context or {}).get("traits")):
        if not isinstance(traits, dict):
            continue
        for id_type, keys in (("phone", TRAIT_NAMES["phone"]), ("email", TRAIT_NAMES["email"])):
            for key in keys:
                value = traits.get(key)
                if isinstance(value, str) and value:
                    plain = vault.open_or_none(value, CTX_PAYLOAD)
                    if plain:
                        if id_type == "phone":
                            plain = phone_to_e164(plain) or plain
                        return f"{id_type}:bi:{vault.bidx(id_type, plain)}"
    user_id = message.get("userId")
    if isinstance(user_id, str) and user_id.strip():
        return f"user_id:bi:{vault.bidx('user_id', user_id.strip())}"
    raise InputError(
        "a consent event names no member: give traits.phone, traits.email or userId",
        field="member",
        rule="consent.member_ref",
    )


class StreamProcessor:
    """Background worker: raw_events -> events, contacts, record_identifiers."""

    def __init__(self, store: Store, settings: Settings, *, batch_size: int = BATCH_SIZE) -> None:
        self._store = store
        self._settings = settings
        self._batch_size = batch_size
        self._interval = settings.stream_interval_ms / 1000
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        self.checkpoint = 0
        self.head = 0
        self.batches = 0
        self.events_written = 0
        self.last_error: str | None = None

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        cur = self._store.cursor()
        row = cur.execute(
            "SELECT seq FROM stream_checkpoints WHERE name = ?", [CHECKPOINT]
        ).fetchone()
        self.checkpoint = int(row[0]) if row else 0
        head = cur.execute("SELECT coalesce(max(seq), 0) FROM raw_events").fetchone()
        self.head = int(head[0]) if head else 0
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="mecdp-stream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=60)
        self._thread = None

    def notify(self, seq: int) -> None:
        """Called by the raw-log writer after each commit."""
        if seq > self.head:
            self.head = seq
        self._wake.set()

    def drain(self, timeout: float) -> bool:
        """Wait until everything committed to the raw log so far is processed."""
        target = self.head
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._progress:
            while self.checkpoint < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait(min(left, 0.5))
        return True

    def status(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "head": max(self.head, self.checkpoint),
            "lag": max(0, self.head - self.checkpoint),
            "batches": self.batches,
            "events_written": self.events_written,
            "last_error": self.last_error,
        }

    # the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                # one batch per wake-up: under load, messages gather for an interval and are
                # processed in larger batches (the cleaning pipeline has a fixed cost per batch)
                if self.process_batch() >= self._batch_size:
                    self._wake.set()  # far behind: go on at once
                self.last_error = None
            except Exception as exc:  # keep following; the batch is retried next round
                log.exception("stream processing failed at seq %d", self.checkpoint)
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._stopping.wait(1.0)

    def process_batch(self) -> int:
        """Process the next batch after the checkpoint; returns how many messages it read."""
        from mecdp.collect.importer import _import_transaction
        from mecdp.compute.service import WRITE_LOCK

        # the layering lock: a full compute run's rewrite of customer_tags never overlaps
        # this batch's event-tag refresh (both would write the same rows)
        with WRITE_LOCK, _import_transaction(self._store) as (cur, engine):
            row = cur.execute(
                "SELECT seq FROM stream_checkpoints WHERE name = ?", [CHECKPOINT]
            ).fetchone()
            checkpoint = int(row[0]) if row else 0
            cur.execute(
                "CREATE OR REPLACE TEMP TABLE _stream_batch AS "
                "SELECT r.seq, r.source_id, r.message_id, r.received_at, "
                "coalesce(r.event_time, r.received_at) AS event_time, r.payload, "
                "CAST(r.payload AS JSON) AS p, s.channel "
                "FROM raw_events r LEFT JOIN sources s USING (source_id) "
                f"WHERE r.seq > ? ORDER BY r.seq LIMIT {int(self._batch_size)}",
                [checkpoint],
            )
            stats = cur.execute("SELECT count(*), max(seq) FROM _stream_batch").fetchone()
            count = int(stats[0]) if stats else 0
            if count == 0:
                cur.execute("DROP TABLE temp._stream_batch")
                return 0
            new_checkpoint = int(stats[1]) if stats else checkpoint
            written = self._write_events(cur)
            self._record_consents(cur)
            self._write_people(cur, engine, checkpoint + 1)
            self._stitch(cur)
            cur.execute(
                "INSERT INTO stream_checkpoints VALUES (?, ?, now()::TIMESTAMP) "
                "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, "
                "updated_at = excluded.updated_at",
                [CHECKPOINT, new_checkpoint],
            )
            cur.execute("DROP TABLE temp._stream_batch")
        with self._progress:
            self.checkpoint = new_checkpoint
            self.head = max(self.head, new_checkpoint)
            self.batches += 1
            self.events_written += written
            self._progress.notify_all()
        return count

    def _stitch(self, cur: Any) -> None:
        """Real-time OneID: link this batch's records into the graph and refresh the golden
        record and the event-refresh tags of every person they touched, in the batch's
        transaction."""
        from mecdp.compute.service import refresh_event_tags
        from mecdp.identity.service import stitch_records
        from mecdp.profiles.service import refresh_profiles

        record_ids = [
            str(r[0])
            for r in cur.execute(
                "SELECT source_id || ':' || message_id FROM _stream_batch ORDER BY seq"
            ).fetchall()
        ]
        workspace = self._settings.workspace
        stitched = stitch_records(cur, record_ids, workspace=workspace)
        if not stitched.affected:
            return
        cur.register("_stream_affected", pa.table({"one_id": list(stitched.affected)}))
        try:
            merged_away = [
                str(r[0])
                for r in cur.execute(
                    "SELECT from_one_id FROM identity_redirects "
                    "WHERE to_one_id IN (SELECT one_id FROM _stream_affected)"
                ).fetchall()
            ]
        finally:
            cur.unregister("_stream_affected")
        refresh_profiles(cur, [*stitched.affected, *merged_away], workspace=workspace)
        refresh_event_tags(cur, [*stitched.affected, *merged_away], workspace=workspace)

    @staticmethod
    def _write_events(cur: Any) -> int:
        rows = cur.execute(
            """
            INSERT INTO events (record_id, source_id, seq, message_id, type, event, user_id,
                anonymous_id, previous_id, group_id, channel, occurred_at, received_at,
                properties, traits, context)
            SELECT source_id || ':' || message_id, source_id, seq, message_id, p->>'$.type',
                coalesce(p->>'$.event', p->>'$.name'), p->>'$.userId', p->>'$.anonymousId',
                p->>'$.previousId', p->>'$.groupId', channel, event_time, received_at,
                CAST(p->'$.properties' AS VARCHAR),
                CAST(coalesce(p->'$.traits', p->'$.context.traits') AS VARCHAR),
                CAST(p->'$.context' AS VARCHAR)
            FROM _stream_batch
            ON CONFLICT DO NOTHING
            RETURNING record_id
            """
        ).fetchall()
        return len(rows)

    def _record_consents(self, cur: Any) -> None:
        """Consent events into the ledger (`mecdp.privacy.consent.record_consent`): a track
        named 'Consent Granted' / 'Consent Withdrawn' with the consent fields in `properties`,
        or any message with a `properties.consent` object. Malformed ones are quarantined
        (origin 'stream', record kind 'consent') with the field and the rule."""
        from datetime import UTC

        from mecdp.errors import InputError
        from mecdp.privacy import consent

        rows = cur.execute(
            "SELECT source_id, message_id, event_time, payload FROM _stream_batch "
            "WHERE p->>'$.event' IN ('Consent Granted', 'Consent Withdrawn') "
            "OR json_type(p, '$.properties.consent') = 'OBJECT' ORDER BY seq"
        ).fetchall()
        if not rows:
            return
        vault = vault_for(self._settings)
        for source_id, message_id, event_time, payload in rows:
            message = json.loads(payload)
            props = message.get("properties")
            props = props if isinstance(props, dict) else {}
            nested = props.get("consent")
            fields: dict[str, Any] = nested if isinstance(nested, dict) else props
            event = message.get("event")
            status = fields.get("status") or (
                "granted" if event == "Consent Granted" else "withdrawn"
            )
            try:
                ref = _consent_member_ref(message, vault)
                consent.record_consent(
                    cur,
                    recorded_by=f"collector:{source_id}",
                    member_ref=ref,
                    purpose=fields.get("purpose"),
                    status=status,
                    channel=fields.get("channel"),
                    notice_version=fields.get("notice_version") or fields.get("noticeVersion"),
                    notice_text=fields.get("notice_text"),
                    notice_sha256=fields.get("notice_sha256"),
                    source=fields.get("source") or "collector",
                    evidence=fields.get("evidence") or f"event:{source_id}:{message_id}",
                    occurred_at=event_time.replace(tzinfo=UTC),
                )
            except InputError as exc:
                consent.quarantine_consent(
                    cur,
                    {"source_id": source_id, "message_id": message_id, "payload": payload},
                    exc,
                    origin="stream",
                    vault=vault,
                    source_id=source_id,
                    ref=message_id,
                )

    def _write_people(self, cur: Any, engine: Any, first_seq: int) -> None:
        from mecdp.clean.stage import CleanOptions, clean_records

        # userId / anonymousId: identifiers of the event record itself
        cur.execute(
            """
            INSERT INTO record_identifiers (record_id, record_kind, source_id, id_type, id_value,
                observed_at)
            SELECT DISTINCT source_id || ':' || message_id, 'events', source_id, id_type,
                id_value, event_time
            FROM (
                SELECT source_id, message_id, event_time, 'user_id' AS id_type,
                    nullif(trim(p->>'$.userId'), '') AS id_value FROM _stream_batch
                UNION ALL
                SELECT source_id, message_id, event_time, 'anonymous_id',
                    nullif(trim(p->>'$.anonymousId'), '') FROM _stream_batch
            )
            WHERE id_value IS NOT NULL
            """
        )
        vault = vault_for(self._settings)
        engine.register_udf(vault.reveal_udf())
        fields = [f.name for f in PERSON_FIELDS] + ["store_code"]
        person_sql = ",\n".join(_trait_sql(f) for f in fields)
        cur.execute(
            # MATERIALIZED: inlined, the filter below evaluated every extraction once more
            "CREATE OR REPLACE TEMP TABLE _stream_people AS "
            "WITH extracted AS MATERIALIZED ("
            "SELECT seq AS _row, message_id AS _ref, source_id, message_id AS contact_no, "
            "strftime(event_time, '%Y-%m-%dT%H:%M:%S.%fZ') AS observed_at,\n"
            f"{person_sql}\nFROM _stream_batch WHERE {_MAY_CARRY_PERSON}) "
            f"SELECT * REPLACE ({_reveal_sql()}) FROM extracted "
            f"WHERE coalesce({', '.join(fields)}) IS NOT NULL"
        )
        sources = [
            str(r[0])
            for r in cur.execute(
                "SELECT DISTINCT source_id FROM _stream_people ORDER BY 1"
            ).fetchall()
        ]
        kind = RECORD_KINDS["contacts"]
        columns = ", ".join(["_row", "_ref", "contact_no", "observed_at", *fields])
        for source_id in sources:
            staged = "_stream_staged"
            cur.execute(
                f"CREATE OR REPLACE TEMP VIEW {staged} AS SELECT {columns} "
                "FROM _stream_people WHERE source_id = ?".replace("?", _lit(source_id))
            )
            options = CleanOptions(source_id=source_id, hash_key=self._settings.key())
            out = clean_records(engine, kind, staged, options, "_stream_clean")
            try:
                seal_stage_outputs(cur, out.contacts, out.identifiers, vault)
                cur.execute(
                    "INSERT INTO contacts (record_id, record_kind, source_id, name, gender, "
                    "birthday, city, store_code, observed_at, name_bidx) "
                    "SELECT record_id, 'events', source_id, name, gender, birthday, city, "
                    f"store_code, observed_at, name_bidx FROM {out.contacts}"
                )
                cur.execute(
                    "INSERT INTO record_identifiers (record_id, record_kind, source_id, "
                    "id_type, id_value, observed_at, id_value_enc) "
                    "SELECT record_id, 'events', source_id, id_type, id_value, observed_at, "
                    f"id_value_enc FROM {out.identifiers}"
                )
                rejected = cur.execute(
                    f"SELECT {_lit(source_id)} AS source_id, 'stream' AS origin, "
                    "'events' AS record_kind, j._ref AS ref, j.field, j.value, j.rule, j.reason, "
                    "b.payload, now()::TIMESTAMP AS quarantined_at "
                    f"FROM {out.rejects} j JOIN _stream_batch b ON b.seq = j._row"
                ).to_arrow_table()
                insert_quarantine(cur, rejected.select(list(QUARANTINE_COLUMNS)), vault)
                if rejected.num_rows:
                    refs = set(rejected.column("ref").to_pylist())
                    cur.execute(
                        "INSERT INTO ingest_log VALUES (?, 'stream', ?, 0, 0, ?, 0, "
                        "now()::TIMESTAMP)",
                        [source_id, f"seq:{first_seq}", len(refs)],
                    )
            finally:
                for table in (out.records, out.contacts, out.identifiers, out.rejects):
                    engine.drop(table)
                cur.execute(f"DROP VIEW IF EXISTS {staged}")
        cur.execute("DROP TABLE temp._stream_people")
