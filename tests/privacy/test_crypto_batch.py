"""The array paths of field encryption and identifier normalisation give exactly what the
per-value functions give."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from mecdp.privacy.crypto import (
    KeyRing,
    decrypt_array,
    decrypt_value,
    encrypt_array,
    normalise_array,
    normalise_for_index,
)


def test_encrypt_array_round_trips_mixed_lengths_and_nulls() -> None:
    rng = random.Random(3)
    alphabet = "ab张三😀 "
    values = [
        None
        if rng.random() < 0.1
        else "".join(rng.choice(alphabet) for _ in range(rng.randrange(20)))
        for _ in range(1280)
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
