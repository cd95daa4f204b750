"""Personal data at rest: what the pipeline encrypts, and the in-service ways to read it back.

What is protected where (phase B of issue 3):

* ``record_identifiers``: for ``id_type`` in `ENCRYPTED_ID_TYPES` (phone, email) ``id_value``
  is the keyed blind index (`crypto.blind_index_array`, deterministic, so equality joins,
  dedupe and the identity graph keep working) and ``id_value_enc`` the AES-GCM token of the
  normalised value. ``id_card_hash`` is a keyed hash already. Other identifier types (openids,
  unionids, device ids, member and customer numbers, SDK ids) are pseudonymous ids issued by
  a platform or the chain: they say nothing about the person without the issuer's records,
  and OneID needs them as they are, so they stay plain.
* ``contacts.name``: token; ``contacts.name_bidx``: blind index of the normalised name.
* ``raw_events.payload`` (and so ``events.traits`` / ``events.context``): the values of the
  keys in `PERSONAL_KEYS` under ``traits`` and ``context.traits`` (and ``context.externalIds``
  entries of those types) are replaced by tokens before the write (`protect_message`); the
  stream processor decrypts them in SQL with `REVEAL_UDF` before cleaning.
* ``quarantine``: ``value`` and ``payload`` are tokens; the value inside ``reason`` is masked
  for personal fields (`seal_quarantine`).
* raw file copies (``raw/files/<sha256>.<ext>.enc``): the whole file, sealed in chunks
  (`seal_file` / `open_file`).

Tokens carry their key id (`crypto`), so rotation keeps old values readable; a `Vault`
reloads the key ring when it meets a key id it does not know.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mecdp.config import Settings
from mecdp.privacy.crypto import (
    NONCE_BYTES,
    DecryptionError,
    KeyRing,
    blind_index,
    blind_index_array,
    decrypt_value,
    encrypt_array,
    encrypt_value,
    load_keyring,
    normalise_array,
)
from mecdp.privacy.masking import FIELD_KINDS, mask_value
from mecdp.store.engine import ScalarUdf

ENCRYPTED_ID_TYPES: tuple[str, ...] = ("phone", "email")

# Associated-data contexts: a token only decrypts in the column family it was made for.
CTX_IDENTIFIER = "record_identifiers.id_value"
CTX_NAME = "contacts.name"
CTX_PAYLOAD = "payload"  # raw_events.payload, events.traits / events.context
CTX_QUARANTINE_VALUE = "quarantine.value"
CTX_QUARANTINE_PAYLOAD = "quarantine.payload"
CTX_DSR = "dsr"
CTX_RESTRICTED = "restricted_records.document"
CTX_CORRECTION = "profile_corrections"

# Keys whose values are personal data in event payloads (traits, context.traits): name,
# phone, email and id-card spellings the collector accepts (see collect.processor.TRAIT_NAMES).
PERSONAL_KEYS: frozenset[str] = frozenset(
    {
        "name",
        "fullName",
        "full_name",
        "firstName",
        "first_name",
        "lastName",
        "last_name",
        "phone",
        "mobile",
        "phoneNumber",
        "phone_number",
        "phone2",
        "email",
        "id_card",
        "idCard",
        "id_card_no",
        "idCardNo",
    }
)
# externalIds types encrypted in payloads
PERSONAL_ID_TYPES: frozenset[str] = frozenset(
    {"phone", "mobile", "phone2", "email", "id_card", "idCard"}
)
# Quarantine fields whose value is masked inside the reason text (the value column is a token).
PERSONAL_FIELDS: dict[str, str] = {
    **{k: v for k, v in FIELD_KINDS.items() if v in ("name", "phone", "email", "id_card")},
    "phone2": "phone",
}
TOKEN_PREFIX = "e1:"  # noqa: S105 - the prefix of an encrypted value, not a secret
REVEAL_UDF_NAME = "mecdp_reveal"


@dataclass
class Vault:
    """The workspace's key ring and blind-index secret, for encrypting and decrypting fields."""

    settings: Settings
    keyring: KeyRing
    hash_key: bytes
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _udf: ScalarUdf | None = field(default=None, repr=False)

    # keys ---------------------------------------------------------------------------------

    def _reload(self) -> None:
        with self._lock:
            self.keyring = load_keyring(self.settings)

    def _ensure_key(self, token: str) -> None:
        kid = token.split(":", 2)[1] if token.count(":") >= 2 else ""
        if kid and kid not in self.keyring.keys:
            self._reload()

    # values --------------------------------------------------------------------------------

    def seal(self, value: str, context: str) -> str:
        return encrypt_value(self.keyring, value, context=context)

    def open(self, token: str, context: str) -> str:
        self._ensure_key(token)
        return decrypt_value(self.keyring, token, context=context)

    def open_or_none(self, token: str | None, context: str) -> str | None:
        if token is None:
            return None
        if not token.startswith(TOKEN_PREFIX):
            return token
        try:
            return self.open(token, context)
        except DecryptionError:
            return None

    def seal_array(self, values: pa.Array | pa.ChunkedArray, context: str) -> pa.Array:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        return encrypt_array(self.keyring, values, context=context)

    def open_array(self, tokens: pa.Array | pa.ChunkedArray, context: str) -> pa.Array:
        if isinstance(tokens, pa.ChunkedArray):
            tokens = tokens.combine_chunks()
        return pa.array(
            [self.open_or_none(t, context) for t in tokens.to_pylist()], type=pa.string()
        )

    def bidx(self, id_type: str, value: str) -> str:
        return blind_index(self.hash_key, id_type, value)

    # the stream processor's SQL function ---------------------------------------------------

    def reveal_udf(self) -> ScalarUdf:
        """``mecdp_reveal(x)``: decrypts a payload token, passes other values through."""
        if self._udf is None:

            def reveal(value: str) -> str | None:
                return self.open_or_none(value, CTX_PAYLOAD)

            self._udf = ScalarUdf(REVEAL_UDF_NAME, reveal, "VARCHAR")
        return self._udf


_VAULTS: dict[tuple[str, str | None, str | None], Vault] = {}
_VAULTS_LOCK = threading.Lock()


def vault_for(settings: Settings) -> Vault:
    """The (cached) vault of a workspace."""
    key = (str(settings.workspace.resolve()), settings.data_keys, settings.secret_key)
    with _VAULTS_LOCK:
        found = _VAULTS.get(key)
        if found is None:
            found = Vault(settings, load_keyring(settings), settings.key())
            _VAULTS[key] = found
        return found


# --------------------------------------------------------------------------- event payloads


def _seal_traits(traits: Any, vault: Vault) -> None:
    if not isinstance(traits, dict):
        return
    for key in PERSONAL_KEYS.intersection(traits):
        value = traits[key]
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            text = str(value)
            if text and not text.startswith(TOKEN_PREFIX):
                traits[key] = vault.seal(text, CTX_PAYLOAD)


def protect_message(message: dict[str, Any], vault: Vault) -> None:
    """Replace personal values of a tracking message by tokens, in place (cheap when absent)."""
    traits = message.get("traits")
    if traits:
        _seal_traits(traits, vault)
    context = message.get("context")
    if not isinstance(context, dict):
        return
    ctx_traits = context.get("traits")
    if ctx_traits:
        _seal_traits(ctx_traits, vault)
    external = context.get("externalIds")
    if isinstance(external, list):
        for item in external:
            if (
                isinstance(item, dict)
                and item.get("type") in PERSONAL_ID_TYPES
                and isinstance(item.get("id"), str)
                and not item["id"].startswith(TOKEN_PREFIX)
            ):
                item["id"] = vault.seal(item["id"], CTX_PAYLOAD)


def _reveal_tree(value: Any, vault: Vault) -> Any:
    if isinstance(value, str) and value.startswith(TOKEN_PREFIX):
        return vault.open_or_none(value, CTX_PAYLOAD)
    if isinstance(value, dict):
        return {k: _reveal_tree(v, vault) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal_tree(v, vault) for v in value]
    return value


def reveal_json(text: str | None, vault: Vault) -> Any:
    """A stored payload/traits/context JSON with its tokens decrypted (for the data subject)."""
    if text is None:
        return None
    try:
        return _reveal_tree(json.loads(text), vault)
    except ValueError:
        return text


# --------------------------------------------------------------------------- stage outputs


def _replace_table(cur: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    view = f"{name}__sealed"
    cur.register(view, table)
    try:
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {view}")
    finally:
        cur.unregister(view)


def seal_contacts_table(table: pa.Table, vault: Vault) -> pa.Table:
    """contacts rows: name -> token, plus name_bidx."""
    names = table.column("name").combine_chunks()
    bidx = blind_index_array(vault.hash_key, "name", names)
    sealed = vault.seal_array(names, CTX_NAME)
    at = table.schema.get_field_index("name")
    table = table.set_column(at, "name", sealed)
    if "name_bidx" in table.schema.names:
        table = table.drop(["name_bidx"])
    return table.append_column("name_bidx", bidx)


def seal_identifiers_table(table: pa.Table, vault: Vault) -> pa.Table:
    """record_identifiers rows: phone/email values -> blind index, token in id_value_enc."""
    values = table.column("id_value").combine_chunks()
    types = table.column("id_type").combine_chunks()
    enc: pa.Array = pa.nulls(len(values), pa.string())
    for id_type in ENCRYPTED_ID_TYPES:
        mask = pc.fill_null(pc.equal(types, id_type), False)
        if not pc.any(mask).as_py():
            continue
        picked = pc.filter(values, mask)
        normalised = normalise_array(id_type, picked)
        values = pc.replace_with_mask(
            values, mask, blind_index_array(vault.hash_key, id_type, normalised)
        )
        enc = pc.replace_with_mask(enc, mask, vault.seal_array(normalised, CTX_IDENTIFIER))
    at = table.schema.get_field_index("id_value")
    table = table.set_column(at, "id_value", values)
    if "id_value_enc" in table.schema.names:
        table = table.drop(["id_value_enc"])
    return table.append_column("id_value_enc", enc)


def seal_stage_outputs(
    cur: duckdb.DuckDBPyConnection, contacts: str, identifiers: str, vault: Vault
) -> None:
    """Encrypt the cleaning stage's contacts and identifiers work tables in place."""
    _replace_table(cur, contacts, seal_contacts_table(cur.table(contacts).to_arrow_table(), vault))
    _replace_table(
        cur, identifiers, seal_identifiers_table(cur.table(identifiers).to_arrow_table(), vault)
    )


# --------------------------------------------------------------------------- quarantine

QUARANTINE_COLUMNS = (
    "source_id",
    "origin",
    "record_kind",
    "ref",
    "field",
    "value",
    "rule",
    "reason",
    "payload",
    "quarantined_at",
)


def seal_quarantine(table: pa.Table, vault: Vault) -> pa.Table:
    """Quarantine rows: value and payload -> tokens; personal values masked in the reason."""
    fields = table.column("field").to_pylist()
    values = table.column("value").to_pylist()
    reasons = table.column("reason").to_pylist()
    masked: list[str | None] = []
    for fld, value, reason in zip(fields, values, reasons, strict=True):
        kind = PERSONAL_FIELDS.get(fld or "")
        if reason is not None and kind is not None and value:
            reason = reason.replace(str(value), str(mask_value(kind, str(value))))
        masked.append(reason)
    out = table
    for name, column in (
        ("value", vault.seal_array(table.column("value").cast(pa.string()), CTX_QUARANTINE_VALUE)),
        (
            "payload",
            vault.seal_array(table.column("payload").cast(pa.string()), CTX_QUARANTINE_PAYLOAD),
        ),
        ("reason", pa.array(masked, pa.string())),
    ):
        out = out.set_column(out.schema.get_field_index(name), name, column)
    return out


def insert_quarantine(cur: duckdb.DuckDBPyConnection, table: pa.Table, vault: Vault) -> None:
    """Insert quarantine rows (columns `QUARANTINE_COLUMNS`), sealed."""
    if table.num_rows == 0:
        return
    sealed = seal_quarantine(table.select(list(QUARANTINE_COLUMNS)), vault)
    cur.register("_quarantine_sealed", sealed)
    try:
        cur.execute(
            f"INSERT INTO quarantine ({', '.join(QUARANTINE_COLUMNS)}) "
            "SELECT * FROM _quarantine_sealed"
        )
    finally:
        cur.unregister("_quarantine_sealed")


def read_quarantine(
    cur: duckdb.DuckDBPyConnection, vault: Vault, *, limit: int = 100, source_id: str | None = None
) -> list[dict[str, Any]]:
    """Quarantine rows decrypted (compliance, audited by the caller)."""
    columns = ("quarantine_id", *QUARANTINE_COLUMNS)
    sql = f"SELECT {', '.join(columns)} FROM quarantine"
    params: list[Any] = []
    if source_id is not None:
        sql += " WHERE source_id = ?"
        params.append(source_id)
    sql += " ORDER BY quarantine_id LIMIT ?"
    params.append(limit)
    out = []
    for row in cur.execute(sql, params).fetchall():
        item = dict(zip(columns, row, strict=True))
        item["value"] = vault.open_or_none(item["value"], CTX_QUARANTINE_VALUE)
        item["payload"] = vault.open_or_none(item["payload"], CTX_QUARANTINE_PAYLOAD)
        item["quarantined_at"] = item["quarantined_at"].isoformat() + "Z"
        out.append(item)
    return out


# --------------------------------------------------------------------------- reading


def plain_contacts(
    cur: duckdb.DuckDBPyConnection,
    settings: Settings,
    *,
    record_ids: list[str] | None = None,
) -> pa.Table:
    """``contacts`` with ``name`` decrypted (in-service use only: matching, profiles, DSR)."""
    vault = vault_for(settings)
    sql = (
        "SELECT record_id, record_kind, source_id, name, name_bidx, gender, birthday, city, "
        "store_code, observed_at FROM contacts"
    )
    table = _select(cur, sql, record_ids)
    at = table.schema.get_field_index("name")
    return table.set_column(at, "name", vault.open_array(table.column("name"), CTX_NAME))


def plain_identifiers(
    cur: duckdb.DuckDBPyConnection,
    settings: Settings,
    *,
    record_ids: list[str] | None = None,
) -> pa.Table:
    """``record_identifiers`` with ``value`` = the plain normalised value (phone, email
    decrypted; other types as stored) next to the stored ``id_value`` (the blind index)."""
    vault = vault_for(settings)
    sql = (
        "SELECT record_id, record_kind, source_id, id_type, id_value, id_value_enc, observed_at "
        "FROM record_identifiers"
    )
    table = _select(cur, sql, record_ids)
    enc = vault.open_array(table.column("id_value_enc"), CTX_IDENTIFIER)
    plain = pc.coalesce(enc, table.column("id_value").combine_chunks())
    return table.append_column("value", plain)


def _select(cur: duckdb.DuckDBPyConnection, sql: str, record_ids: list[str] | None) -> pa.Table:
    if record_ids is None:
        return cur.execute(sql).to_arrow_table()
    ids = pa.table({"record_id": pa.array(record_ids, pa.string())})
    cur.register("_vault_ids", ids)
    try:
        return cur.execute(
            f"SELECT * FROM ({sql}) WHERE record_id IN (SELECT record_id FROM _vault_ids)"
        ).to_arrow_table()
    finally:
        cur.unregister("_vault_ids")


def stored_identifier(vault: Vault, id_type: str, value: str) -> str:
    """What ``record_identifiers.id_value`` holds for this identifier (blind index or value)."""
    if id_type in ENCRYPTED_ID_TYPES:
        return vault.bidx(id_type, value)
    if id_type == "id_card_hash":
        return value
    return value.strip()


def find_records(
    cur: duckdb.DuckDBPyConnection, settings: Settings, id_type: str, value: str
) -> list[str]:
    """Record ids carrying an identifier (phone/email: normalise -> blind index -> match)."""
    if id_type == "phone":
        from mecdp.clean.rules import phone_to_e164

        value = phone_to_e164(value) or value
    stored = stored_identifier(vault_for(settings), id_type, value)
    rows = cur.execute(
        "SELECT DISTINCT record_id FROM record_identifiers WHERE id_type = ? AND id_value = ? "
        "ORDER BY 1",
        [id_type, stored],
    ).fetchall()
    return [str(r[0]) for r in rows]


# --------------------------------------------------------------------------- raw file copies

FILE_MAGIC = b"MECDPENC1\n"
CHUNK = 1 << 20


def _file_aad(kid: str, index: int, last: bool) -> bytes:
    return f"raw-file:{kid}:{index}:{int(last)}".encode()


def seal_file(src: Path, target: Path, vault: Vault) -> Path:
    """Write `src` encrypted to `target` (chunks of 1 MiB, each AES-GCM with its index and a
    last-chunk flag as associated data, so chunks cannot be reordered or cut off)."""
    kid = vault.keyring.active
    aead = vault.keyring.aead(kid)
    tmp = target.with_name(".incoming-" + target.name)
    with src.open("rb") as fin, tmp.open("wb") as out:
        out.write(FILE_MAGIC + kid.encode() + b"\n")
        index = 0
        chunk = fin.read(CHUNK)
        while True:
            following = fin.read(CHUNK)
            last = not following
            nonce = os.urandom(NONCE_BYTES)
            sealed = aead.encrypt(nonce, chunk, _file_aad(kid, index, last))
            out.write(struct.pack(">I", len(sealed)) + nonce + sealed)
            if last:
                break
            chunk = following
            index += 1
    os.chmod(tmp, 0o400)
    os.replace(tmp, target)
    return target


def open_file(path: Path, vault: Vault) -> Iterator[bytes]:
    """The plain bytes of a sealed raw file copy, chunk by chunk."""
    with path.open("rb") as fin:
        magic = fin.read(len(FILE_MAGIC))
        if magic != FILE_MAGIC:
            raise DecryptionError("not a sealed raw file copy")
        kid = fin.readline().strip().decode()
        if kid not in vault.keyring.keys:
            vault._reload()
        aead: AESGCM = vault.keyring.aead(kid)
        index = 0
        while True:
            head = fin.read(4)
            if not head:
                raise DecryptionError("sealed raw file copy is truncated")
            size = struct.unpack(">I", head)[0]
            nonce = fin.read(NONCE_BYTES)
            sealed = fin.read(size)
            following = fin.peek(1)[:1] if hasattr(fin, "peek") else b""
            last = not following
            try:
                yield aead.decrypt(nonce, sealed, _file_aad(kid, index, last))
            except InvalidTag:
                raise DecryptionError("sealed raw file copy failed authentication") from None
            if last:
                return
            index += 1


# --------------------------------------------------------------------------- writing


def write_people(
    cur: duckdb.DuckDBPyConnection,
    vault: Vault,
    *,
    contacts: pa.Table | None = None,
    identifiers: pa.Table | None = None,
) -> None:
    """Insert plain contacts / identifier rows (columns named as in the tables), sealed."""
    for target, table, seal in (
        ("contacts", contacts, seal_contacts_table),
        ("record_identifiers", identifiers, seal_identifiers_table),
    ):
        if table is None or table.num_rows == 0:
            continue
        cur.register("_people_sealed", seal(table, vault))
        try:
            cur.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _people_sealed")
        finally:
            cur.unregister("_people_sealed")
