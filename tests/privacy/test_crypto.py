"""Field encryption, key rotation, blind indexes and crypto-shredding on the real store."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from mecdp.config import Settings
from mecdp.privacy.crypto import (
    DecryptionError,
    KeyRing,
    KeyShredded,
    MemberKeys,
    blind_index,
    blind_index_array,
    decrypt_array,
    decrypt_value,
    encrypt_array,
    encrypt_value,
    load_keyring,
    reencrypt_column,
    rotate_keyring,
    token_key_id,
)
from mecdp.store import Store

KEY = b"k" * 32


def test_round_trip_hides_the_value_and_binds_the_context(settings: Settings) -> None:
    ring = load_keyring(settings)
    token = encrypt_value(ring, "13812345678", context="contacts.phone")
    assert token.startswith("e1:k1:") and "13812345678" not in token
    assert encrypt_value(ring, "13812345678", context="contacts.phone") != token  # fresh nonce
    assert decrypt_value(ring, token, context="contacts.phone") == "13812345678"
    with pytest.raises(DecryptionError):
        decrypt_value(ring, token, context="contacts.email")
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(DecryptionError):
        decrypt_value(ring, tampered, context="contacts.phone")


def test_keyring_file_is_created_private_and_reloaded(settings: Settings) -> None:
    ring = load_keyring(settings)
    path = settings.secrets_dir / "data.keys"
    assert path.stat().st_mode & 0o077 == 0
    assert load_keyring(settings).keys == ring.keys
    from_env = Settings(workspace=settings.workspace, data_keys=ring.to_json())
    assert load_keyring(from_env).keys == ring.keys
    with pytest.raises(ValueError, match="data key ring"):
        load_keyring(Settings(workspace=settings.workspace, data_keys="{nope"))


def test_rotation_keeps_old_values_readable_and_reencrypt_moves_them(
    settings: Settings, store: Store
) -> None:
    ring = load_keyring(settings)
    cur = store.cursor()
    cur.execute("CREATE TABLE secrets_demo (id INTEGER, phone VARCHAR)")
    for i in range(5):
        cur.execute(
            "INSERT INTO secrets_demo VALUES (?, ?)", [i, encrypt_value(ring, f"+861380000000{i}")]
        )
    rotated = rotate_keyring(ring)
    assert rotated.active == "k2" and set(rotated.keys) == {"k1", "k2"}
    assert json.loads((settings.secrets_dir / "data.keys").read_text())["active"] == "k2"
    reloaded = load_keyring(settings)
    old = cur.execute("SELECT phone FROM secrets_demo WHERE id = 0").fetchone()
    assert old is not None and token_key_id(old[0]) == "k1"
    assert decrypt_value(reloaded, old[0]) == "+8613800000000"
    assert reencrypt_column(cur, "secrets_demo", "id", "phone", reloaded) == 5
    assert reencrypt_column(cur, "secrets_demo", "id", "phone", reloaded) == 0
    rows = cur.execute("SELECT id, phone FROM secrets_demo ORDER BY id").fetchall()
    assert all(token_key_id(t) == "k2" for _, t in rows)
    assert [decrypt_value(reloaded, t) for _, t in rows] == [f"+861380000000{i}" for i in range(5)]
    with pytest.raises(ValueError, match="rotate it where"):
        rotate_keyring(KeyRing.from_json(ring.to_json()))


def test_blind_index_is_keyed_per_type_and_normalises() -> None:
    a = blind_index(KEY, "phone", "+8613812345678")
    assert a == blind_index(KEY, "phone", "138 1234 5678")
    assert a == blind_index(KEY, "phone", "13812345678")
    assert len(a) == 64 and "13812345678" not in a
    assert a != blind_index(KEY, "user_id", "+8613812345678")  # per-type keys
    assert a != blind_index(b"x" * 32, "phone", "+8613812345678")  # keyed
    assert blind_index(KEY, "email", " Z@QQ.com") == blind_index(KEY, "email", "z@qq.com")
    with pytest.raises(ValueError, match="identifier type"):
        blind_index(KEY, "shoe_size", "42")


def test_arrow_versions_match_the_scalar_functions_and_keep_nulls() -> None:
    values = pa.array(["13812345678", None, "+8613900000000", " 139-0000-0001 "])
    expected = [None if v is None else blind_index(KEY, "phone", v) for v in values.to_pylist()]
    assert blind_index_array(KEY, "phone", values).to_pylist() == expected
    emails = pa.array(["A@b.com", None])
    assert blind_index_array(KEY, "email", emails).to_pylist() == [
        blind_index(KEY, "email", "a@b.com"),
        None,
    ]
    ring = KeyRing.generate()
    tokens = encrypt_array(ring, values, context="c")
    assert tokens.null_count == 1
    assert decrypt_array(ring, tokens, context="c").to_pylist() == values.to_pylist()
    assert decrypt_value(ring, tokens[0].as_py(), context="c") == "13812345678"


def test_shredding_a_member_key_makes_their_values_unreadable(
    settings: Settings, store: Store
) -> None:
    ring = load_keyring(settings)
    keys = MemberKeys(store.cursor(), ring)
    mine = keys.encrypt("one_id:m1", "张三")
    other = keys.encrypt("one_id:m2", "李四")
    assert mine.startswith("m1:") and "张三" not in mine
    assert keys.decrypt(mine) == "张三"
    rotated = rotate_keyring(ring)
    assert MemberKeys(store.cursor(), rotated).rewrap() == 2
    keys = MemberKeys(store.cursor(), rotated)
    assert keys.decrypt(mine) == "张三"
    assert keys.shred("one_id:m1") is True
    with pytest.raises(KeyShredded):
        keys.decrypt(mine)
    with pytest.raises(KeyShredded):
        MemberKeys(store.cursor(), rotated).decrypt(mine)
    assert keys.decrypt(other) == "李四"
    wrapped = store.cursor().execute("SELECT wrapped_key FROM member_keys").fetchall()
    assert len(wrapped) == 1 and wrapped[0][0].startswith("e1:k2:")
