"""The batch paths of field encryption and identifier normalisation give exactly what the
per-value functions give (AES-GCM byte for byte against `cryptography`'s AESGCM)."""

from __future__ import annotations

import base64
import os
import random

import numpy as np
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mecdp.privacy.crypto import (
    BATCH_MIN_VALUES,
    NONCE_BYTES,
    KeyRing,
    _b64url_rows,
    _gcm_seal_rows,
    decrypt_array,
    decrypt_value,
    encrypt_array,
    normalise_array,
    normalise_for_index,
)


@pytest.mark.parametrize("length", [0, 1, 11, 14, 15, 16, 17, 32, 33, 100])
@pytest.mark.parametrize("aad", [b"", b"contacts.name", b"a" * 16, b"b" * 40])
def test_batch_gcm_is_aesgcm_byte_for_byte(length: int, aad: bytes) -> None:
    key = os.urandom(32)
    rows = 5
    plain = np.frombuffer(os.urandom(rows * length), np.uint8).reshape(rows, length)
    nonces = np.frombuffer(os.urandom(rows * NONCE_BYTES), np.uint8).reshape(rows, NONCE_BYTES)
    sealed = _gcm_seal_rows(key, plain, nonces, aad)
    text = _b64url_rows(sealed)
    for i in range(rows):
        nonce = nonces[i].tobytes()
        expected = nonce + AESGCM(key).encrypt(nonce, plain[i].tobytes(), aad or None)
        assert sealed[i].tobytes() == expected
        assert text[i].tobytes() == base64.urlsafe_b64encode(expected).rstrip(b"=")


def test_batch_encrypt_array_round_trips_mixed_lengths_and_nulls() -> None:
    rng = random.Random(3)
    alphabet = "ab张三😀 "
    values = [
        None
        if rng.random() < 0.1
        else "".join(rng.choice(alphabet) for _ in range(rng.randrange(20)))
        for _ in range(BATCH_MIN_VALUES * 20)
    ]
    ring = KeyRing.generate()
    tokens = encrypt_array(ring, pa.array(values, pa.string()), context="contacts.name")
    assert tokens.null_count == values.count(None)
    assert decrypt_array(ring, tokens, context="contacts.name").to_pylist() == values
    first = next(i for i, v in enumerate(values) if v)
    assert decrypt_value(ring, tokens[first].as_py(), context="contacts.name") == values[first]
    same = [t for t, v in zip(tokens.to_pylist(), values, strict=True) if v == values[first]]
    assert len(set(same)) == len(same)  # a fresh nonce per value, equal values too


@pytest.mark.parametrize(
    ("id_type", "values"),
    [
        ("phone", ["+8613812345678", " 138-1234-5678 ", "008613812345678", None, "13812345678"]),
        ("email", ["a@b.com", "A@B.com", " x@y.cn ", None, "张@b.com"]),
        ("name", [" 张  三 ", "李四", None]),
        ("wechat_openid", [" o1 ", "o2", None]),
    ],
)
def test_normalise_array_matches_normalise_for_index(
    id_type: str, values: list[str | None]
) -> None:
    expected = [None if v is None else normalise_for_index(id_type, v) for v in values]
    assert normalise_array(id_type, pa.array(values, pa.string())).to_pylist() == expected
