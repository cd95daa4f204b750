"""Field encryption (AES-256-GCM), keyed blind indexes (HMAC-SHA256) and per-member keys.

Token formats (ASCII, safe in any VARCHAR column):

* ``e1:<key id>:<base64url(nonce || ciphertext || tag)>`` - encrypted under a workspace
  key-ring key. The key id travels with the value, so after `rotate_keyring` old values
  still decrypt and `reencrypt_column` can move them to the active key.
* ``m1:<member key id>:<base64url(...)>`` - encrypted under one member's data key
  (`MemberKeys`); deleting that key (crypto-shredding) makes the value unreadable.

The blind index is deterministic: the same normalised value always gives the same hex, so
lookups, dedupe and identity matching work on it without decrypting. Its key is the
workspace keyed-hash secret (`Settings.key()`), separate from the encryption keys, and it
does not rotate with them (a rotation would break every lookup).

The pure functions (`encrypt_value`, `decrypt_value`, `blind_index`) and their Arrow
versions (`encrypt_array`, `decrypt_array`, `blind_index_array`) are what pipelines call.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mecdp.clean.codes import IDENTIFIER_TYPES
from mecdp.config import Settings
from mecdp.errors import InputError, MeCdpError

KEYRING_FILE = "data.keys"
NONCE_BYTES = 12
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# Identifier types with their own blind-index key (derived from the workspace secret):
# every identifier type of the cleaning stage, plus plain id-card numbers and names.
BLIND_INDEX_TYPES: tuple[str, ...] = (*IDENTIFIER_TYPES, "id_card", "name")


class DecryptionError(MeCdpError):
    """A token that cannot be decrypted: unknown key, tampered bytes or a malformed token."""

    code = "decryption_failed"


class KeyShredded(DecryptionError):
    """The member key of this value was deleted (crypto-shredded): the value is gone."""

    code = "key_shredded"


# --------------------------------------------------------------------------- key ring


@dataclass
class KeyRing:
    """Named 256-bit AES keys; `active` encrypts, every key decrypts."""

    keys: dict[str, bytes]
    active: str
    path: Path | None = None  # None: came from the environment (read-only)
    _aead: dict[str, AESGCM] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise InputError(f"active key {self.active!r} is not in the key ring", field="active")
        for kid, key in self.keys.items():
            if not KEY_ID.match(kid) or len(key) != 32:
                raise InputError(
                    f"key ring entry {kid!r} must be a 32-byte key with a short id", field="keys"
                )
        self._aead = {kid: AESGCM(key) for kid, key in self.keys.items()}

    def aead(self, kid: str) -> AESGCM:
        try:
            return self._aead[kid]
        except KeyError:
            raise DecryptionError(f"unknown encryption key id {kid!r}", key_id=kid) from None

    def to_json(self) -> str:
        return json.dumps(
            {
                "active": self.active,
                "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()},
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, path: Path | None = None) -> KeyRing:
        try:
            data = json.loads(text)
            keys = {str(k): base64.b64decode(v, validate=True) for k, v in data["keys"].items()}
            active = str(data["active"])
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise InputError(
                "the data key ring is not valid JSON {active, keys: {id: base64}}",
                field="data_keys",
            ) from exc
        return cls(keys=keys, active=active, path=path)

    @classmethod
    def generate(cls, path: Path | None = None, kid: str = "k1") -> KeyRing:
        return cls(keys={kid: AESGCM.generate_key(bit_length=256)}, active=kid, path=path)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    tmp.replace(path)


def load_keyring(settings: Settings) -> KeyRing:
    """The workspace key ring: `MECDP_DATA_KEYS` if set, else secrets/data.keys (created)."""
    if settings.data_keys:
        return KeyRing.from_json(settings.data_keys)
    path = settings.secrets_dir / KEYRING_FILE
    if not path.exists():
        settings.secrets_dir.mkdir(parents=True, exist_ok=True)
        ring = KeyRing.generate(path)
        _write_private(path, ring.to_json())
        return ring
    return KeyRing.from_json(path.read_text(), path)


def rotate_keyring(ring: KeyRing) -> KeyRing:
    """Add a new key and make it active; old keys stay so old values still decrypt."""
    if ring.path is None:
        raise InputError(
            "the key ring comes from MECDP_DATA_KEYS; rotate it where that variable is set",
            field="data_keys",
        )
    n = 1 + max((int(k[1:]) for k in ring.keys if k[1:].isdigit()), default=0)
    kid = f"k{n}"
    rotated = KeyRing(
        keys={**ring.keys, kid: AESGCM.generate_key(bit_length=256)}, active=kid, path=ring.path
    )
    _write_private(ring.path, rotated.to_json())
    return rotated


# --------------------------------------------------------------------------- values


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _seal(aead: AESGCM, prefix: str, plaintext: str, nonce: bytes, aad: bytes) -> str:
    return prefix + _b64e(nonce + aead.encrypt(nonce, plaintext.encode("utf-8"), aad))


def _aad(context: str) -> bytes | None:
    return context.encode("utf-8") if context else None


def encrypt_value(keyring: KeyRing, plaintext: str, *, context: str = "") -> str:
    """Encrypt one value under the active key: ``e1:<kid>:<base64url>``.

    `context` (e.g. ``"contacts.name"``) is bound as associated data: a value moved to another
    column does not decrypt there.
    """
    kid = keyring.active
    aad = _aad(context)
    return _seal(keyring.aead(kid), f"e1:{kid}:", plaintext, os.urandom(NONCE_BYTES), aad or b"")


def _split(token: str) -> tuple[str, str, bytes]:
    parts = token.split(":", 2)
    if len(parts) != 3 or parts[0] not in ("e1", "m1"):
        raise DecryptionError("not an encrypted value token")
    try:
        raw = _b64d(parts[2])
    except (binascii.Error, ValueError):
        raise DecryptionError("encrypted value token is not base64url") from None
    if len(raw) < NONCE_BYTES + 16:
        raise DecryptionError("encrypted value token is too short")
    return parts[0], parts[1], raw


def _open(aead: AESGCM, raw: bytes, aad: bytes, kid: str) -> str:
    try:
        return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad).decode("utf-8")
    except InvalidTag:
        raise DecryptionError(
            "encrypted value failed authentication (tampered, wrong key or wrong context)",
            key_id=kid,
        ) from None


def decrypt_value(keyring: KeyRing, token: str, *, context: str = "") -> str:
    """Decrypt an ``e1:`` token (any key in the ring). ``m1:`` tokens need `MemberKeys`."""
    version, kid, raw = _split(token)
    if version != "e1":
        raise DecryptionError("member-key tokens decrypt through MemberKeys.decrypt")
    return _open(keyring.aead(kid), raw, _aad(context) or b"", kid)


def token_key_id(token: str) -> str:
    """The key id an encrypted token names."""
    return _split(token)[1]


def encrypt_array(keyring: KeyRing, values: pa.Array, *, context: str = "") -> pa.Array:
    """Vectorised `encrypt_value` over an Arrow string array (nulls stay null). Every value
    is sealed by `cryptography`'s AESGCM with its own random nonce: a hand-written batch
    GCM measured faster, but its table-driven GHASH is not constant-time, and callers
    already seal each distinct value once."""
    kid = keyring.active
    aead = keyring.aead(kid)
    prefix = f"e1:{kid}:".encode("ascii")
    aad = _aad(context) or b""
    pylist = values.to_pylist()
    nonces = os.urandom(NONCE_BYTES * len(pylist))
    enc = aead.encrypt
    b64 = base64.urlsafe_b64encode
    out: list[str | None] = []
    append = out.append
    for i, value in enumerate(pylist):
        if value is None:
            append(None)
            continue
        nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
        append((prefix + b64(nonce + enc(nonce, value.encode("utf-8"), aad))).decode("ascii"))
    return pa.array(out, type=pa.string())


def decrypt_array(keyring: KeyRing, tokens: pa.Array, *, context: str = "") -> pa.Array:
    """Vectorised `decrypt_value` for ``e1:`` tokens (nulls stay null)."""
    aad = _aad(context) or b""
    aeads: dict[str, AESGCM] = {}
    out: list[str | None] = []
    append = out.append
    for token in tokens.to_pylist():
        if token is None:
            append(None)
            continue
        version, kid, raw = _split(token)
        if version != "e1":
            raise DecryptionError("member-key tokens decrypt through MemberKeys.decrypt")
        aead = aeads.get(kid) or aeads.setdefault(kid, keyring.aead(kid))
        append(_open(aead, raw, aad, kid))
    return pa.array(out, type=pa.string())


# --------------------------------------------------------------------------- blind index

_DIGITS = re.compile(r"[\s\-().]")


def normalise_for_index(id_type: str, value: str) -> str:
    """The canonical form the blind index hashes (idempotent on cleaned values).

    phone: E.164 (11-digit mainland mobiles get +86); email: lower-case; id_card: upper-case;
    name: inner whitespace collapsed; others: trimmed.
    """
    v = value.strip()
    if id_type == "phone":
        v = _DIGITS.sub("", v)
        if v.startswith("00"):
            v = "+" + v[2:]
        if not v.startswith("+"):
            v = "+86" + v if len(v) == 11 and v.startswith("1") else "+" + v
        return v
    if id_type == "email":
        return v.lower()
    if id_type == "id_card":
        return v.upper()
    if id_type == "name":
        return " ".join(v.split())
    return v


# Values matching these are already what `normalise_for_index` returns (ASCII, no spaces).
_CANONICAL_FORMS = {"phone": r"^\+[0-9]+$", "email": r"^[!-~]+$"}


def normalise_array(id_type: str, values: pa.Array) -> pa.Array:
    """Vectorised `normalise_for_index` (nulls stay null): values already in canonical form
    (E.164 phones, lower-case ASCII emails) are kept as they are, the others normalised."""
    values = values.cast(pa.string())
    pattern = _CANONICAL_FORMS.get(id_type)
    canonical = pc.is_null(values)  # nulls stay null
    if pattern:
        canonical = pc.or_(canonical, pc.match_substring_regex(values, pattern))
    if id_type == "email":
        canonical = pc.and_(canonical, pc.equal(values, pc.ascii_lower(values)))
    to_fix = pc.invert(pc.fill_null(canonical, True))
    if not pc.any(to_fix).as_py():
        return values
    fixed = [normalise_for_index(id_type, v) for v in pc.filter(values, to_fix).to_pylist()]
    return pc.replace_with_mask(values, to_fix, pa.array(fixed, pa.string()))


def _type_key(key: bytes, id_type: str) -> bytes:
    if id_type not in BLIND_INDEX_TYPES:
        raise InputError(
            f"unknown identifier type {id_type!r} for a blind index; one of: "
            + ", ".join(BLIND_INDEX_TYPES),
            field="id_type",
            value=id_type,
            rule="blind_index.id_type",
        )
    return hmac.digest(key, b"mecdp-blind-index:" + id_type.encode(), "sha256")


class _Hmac:
    """HMAC-SHA256 with the padded-key states precomputed (same output as `hmac`, 3x faster)."""

    def __init__(self, key: bytes) -> None:
        padded = key.ljust(64, b"\0")  # type keys are 32 bytes: never longer than a block
        self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def hexdigest(self, message: bytes) -> str:
        inner = self.inner.copy()
        inner.update(message)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def blind_index(key: bytes, id_type: str, value: str) -> str:
    """Keyed HMAC-SHA256 of the normalised value, per identifier type, as 64 hex chars."""
    return hmac.digest(
        _type_key(key, id_type), normalise_for_index(id_type, value).encode("utf-8"), "sha256"
    ).hex()


def blind_index_array(key: bytes, id_type: str, values: pa.Array) -> pa.Array:
    """Vectorised `blind_index` over an Arrow string array (nulls stay null)."""
    mac = _Hmac(_type_key(key, id_type))
    inner_copy, outer_copy = mac.inner.copy, mac.outer.copy
    norm = normalise_for_index
    out: list[str | None] = []
    append = out.append
    for value in values.to_pylist():
        if value is None:
            append(None)
            continue
        if id_type == "phone":
            v = value if value[1:].isdigit() and value[:1] == "+" else norm(id_type, value)
        elif id_type in ("email", "id_card", "name"):
            v = norm(id_type, value)
        else:
            v = value.strip()
        inner = inner_copy()
        inner.update(v.encode("utf-8"))
        outer = outer_copy()
        outer.update(inner.digest())
        append(outer.hexdigest())
    return pa.array(out, type=pa.string())


# --------------------------------------------------------------------------- member keys


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class MemberKeys:
    """Per-member data keys, wrapped by the key ring, in the `member_keys` table."""

    def __init__(self, cur: duckdb.DuckDBPyConnection, keyring: KeyRing) -> None:
        self.cur = cur
        self.keyring = keyring
        self._cache: dict[str, tuple[str, AESGCM] | None] = {}

    def _key_for_member(self, member_ref: str, *, create: bool) -> tuple[str, AESGCM] | None:
        row = self.cur.execute(
            "SELECT key_id, wrapped_key FROM member_keys WHERE member_ref = ?", [member_ref]
        ).fetchone()
        if row is not None:
            raw = _b64d(decrypt_value(self.keyring, str(row[1]), context="member_keys"))
            return str(row[0]), AESGCM(raw)
        if not create:
            return None
        kid = "mk" + secrets.token_hex(8)
        raw = AESGCM.generate_key(bit_length=256)
        wrapped = encrypt_value(self.keyring, _b64e(raw), context="member_keys")
        self.cur.execute(
            "INSERT INTO member_keys VALUES (?, ?, ?, ?)", [kid, member_ref, wrapped, _now()]
        )
        return kid, AESGCM(raw)

    def encrypt(self, member_ref: str, plaintext: str, *, context: str = "") -> str:
        """Encrypt under the member's own key (created on first use)."""
        found = self._key_for_member(member_ref, create=True)
        assert found is not None  # noqa: S101 - create=True always returns a key
        kid, aead = found
        return _seal(aead, f"m1:{kid}:", plaintext, os.urandom(NONCE_BYTES), _aad(context) or b"")

    def decrypt(self, token: str, *, context: str = "") -> str:
        version, kid, raw = _split(token)
        if version == "e1":
            return decrypt_value(self.keyring, token, context=context)
        if kid not in self._cache:
            row = self.cur.execute(
                "SELECT wrapped_key FROM member_keys WHERE key_id = ?", [kid]
            ).fetchone()
            self._cache[kid] = (
                None
                if row is None
                else (
                    kid,
                    AESGCM(_b64d(decrypt_value(self.keyring, str(row[0]), context="member_keys"))),
                )
            )
        found = self._cache[kid]
        if found is None:
            raise KeyShredded("the member key of this value was deleted", key_id=kid)
        return _open(found[1], raw, _aad(context) or b"", kid)

    def shred(self, member_ref: str) -> bool:
        """Delete the member's key: every value encrypted under it becomes unreadable."""
        row = self.cur.execute(
            "DELETE FROM member_keys WHERE member_ref = ? RETURNING key_id", [member_ref]
        ).fetchone()
        if row is not None:
            self._cache[str(row[0])] = None
        return row is not None

    def rewrap(self) -> int:
        """Re-encrypt wrapped member keys that are not under the active ring key."""
        rows = self.cur.execute("SELECT key_id, wrapped_key FROM member_keys").fetchall()
        moved = 0
        for kid, wrapped in rows:
            if token_key_id(str(wrapped)) == self.keyring.active:
                continue
            raw = decrypt_value(self.keyring, str(wrapped), context="member_keys")
            self.cur.execute(
                "UPDATE member_keys SET wrapped_key = ? WHERE key_id = ?",
                [encrypt_value(self.keyring, raw, context="member_keys"), kid],
            )
            moved += 1
        return moved


# --------------------------------------------------------------------------- re-encrypt job

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def reencrypt_column(
    cur: duckdb.DuckDBPyConnection,
    table: str,
    key_column: str,
    column: str,
    keyring: KeyRing,
    *,
    context: str = "",
    progress: Callable[[int], Any] | None = None,
) -> int:
    """Move every ``e1:`` value of `table.column` not under the active key to it.

    Identifiers come from code, never from callers' input (checked). Returns rows moved.
    """
    for ident in (table, key_column, column):
        if not _IDENT.match(ident):
            raise InputError(f"not a plain identifier: {ident!r}", field="column", value=ident)
    prefix = f"e1:{keyring.active}:"
    rows: Iterable[tuple[Any, Any]] = cur.execute(
        f"SELECT {key_column}, {column} FROM {table} "
        f"WHERE {column} LIKE 'e1:%' AND NOT starts_with({column}, ?)",
        [prefix],
    ).fetchall()
    moved = 0
    for key, token in rows:
        plain = decrypt_value(keyring, str(token), context=context)
        cur.execute(
            f"UPDATE {table} SET {column} = ? WHERE {key_column} = ?",
            [encrypt_value(keyring, plain, context=context), key],
        )
        moved += 1
        if progress is not None:
            progress(moved)
    return moved


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
