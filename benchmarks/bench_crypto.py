"""Field encryption and blind-index throughput, beside a bare hand-written loop.

Run: .venv/bin/python benchmarks/bench_crypto.py [--values N]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import time
from collections.abc import Callable

import pyarrow as pa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rich.console import Console
from rich.table import Table

from mecdp.privacy.crypto import KeyRing, blind_index_array, decrypt_array, encrypt_array


def best_rate(n: int, run: Callable[[], object], repeat: int = 3) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = max(best, n / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=300_000)
    n = parser.parse_args().values
    values = pa.array([f"+86138{i:08d}" for i in range(n)])
    plain = values.to_pylist()
    ring = KeyRing.generate()
    key = os.urandom(32)
    tokens = encrypt_array(ring, values)

    aead = AESGCM(os.urandom(32))

    def bare_encrypt() -> list[bytes]:
        return [aead.encrypt(os.urandom(12), v.encode(), None) for v in plain]

    def bare_hmac() -> list[str]:
        return [hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in plain]

    rows = [
        (
            "encrypt (AES-GCM)",
            best_rate(n, lambda: encrypt_array(ring, values)),
            best_rate(n, bare_encrypt),
        ),
        ("decrypt (AES-GCM)", best_rate(n, lambda: decrypt_array(ring, tokens)), None),
        (
            "blind index (HMAC-SHA256)",
            best_rate(n, lambda: blind_index_array(key, "phone", values)),
            best_rate(n, bare_hmac),
        ),
    ]
    table = Table(
        "operation",
        "MeCDP values/s",
        "bare loop values/s",
        "ratio",
        title=f"Field crypto, {n:,} phone numbers, one core",
    )
    for name, ours, ref in rows:
        ratio = f"{ours / ref:.2f}" if ref else "-"
        table.add_row(name, f"{ours:,.0f}", f"{ref:,.0f}" if ref else "-", ratio)
    Console().print(table)


if __name__ == "__main__":
    main()
