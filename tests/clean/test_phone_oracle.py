"""The SQL phone rule agrees with phonenumbers (the oracle) over a generated corpus."""

from __future__ import annotations

import random

import duckdb
import phonenumbers
from clean.helpers import clean_values

from mecdp.clean.kinds import Field, FieldType
from mecdp.store.engine import DuckDBEngine

FULL = str.maketrans("0123456789+", "０１２３４５６７８９＋")


def oracle(raw: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def spell(digits: str, rng: random.Random) -> str:
    """A number the way people type it: groups, dashes, prefixes, full-width."""
    style = rng.randrange(6)
    if style == 1:
        digits = f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    elif style == 2:
        digits = f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    elif style == 3:
        digits = digits.translate(FULL)
    elif style == 4:
        digits = f" {digits} "
    return digits


def corpus(size: int) -> list[str]:
    """Varied inputs, valid and invalid; no letters (we reject vanity letters on purpose)."""
    rng = random.Random(20240305)
    out: list[str] = []
    for _ in range(size):
        kind = rng.randrange(10)
        if kind <= 3:  # mobiles, every prefix 10-19 so unassigned ranges are covered
            n = f"1{rng.randrange(0, 10)}{rng.randrange(10**9):09d}"
            prefix = rng.choice(["", "", "+86", "+86 ", "0086", "86", "+86-"])
            out.append(prefix + spell(n, rng))
        elif kind == 4:  # wrong lengths
            out.append(f"1{rng.randrange(3, 10)}{rng.randrange(10**9):09d}"[: rng.randrange(5, 14)])
        elif kind == 5:  # landlines with area codes
            area = rng.choice(["010", "021", "020", "0755", "0571", "028", "0512", "0991", "099"])
            local = f"{rng.randrange(10**8):08d}"[: rng.choice([7, 8, 8])]
            sep = rng.choice(["-", " ", "", "(", "+86 "])
            out.append(f"({area}) {local}" if sep == "(" else f"{area}{sep}{local}")
        elif kind == 6:  # international
            out.append(
                rng.choice(
                    [
                        "+1 650 253 0000",
                        "+44 20 7946 0958",
                        "+852 9123 4567",
                        "+886 912 345 678",
                        "+81 3-1234-5678",
                        "00852 91234567",
                        "+1 200 555 0100",
                        "+7 999 123 45 67",
                    ]
                )
            )
        elif kind == 7:  # random digit strings
            out.append(str(rng.randrange(10 ** rng.randrange(2, 16))))
        elif kind == 8:  # junk punctuation and spaces
            out.append(rng.choice(["", " ", "-", "()", "+", "+86", "0086", "86"]))
        else:  # other valid-looking forms
            n = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
            out.append(rng.choice([f"+86 ({n[:3]}) {n[3:]}", f"86-{n}", f"+{n}", f"0{n}"]))
    return out


def test_sql_phone_rule_matches_phonenumbers() -> None:
    inputs = corpus(4000)
    got = clean_values(DuckDBEngine(duckdb.connect()), Field("phone", FieldType.PHONE), inputs)
    mismatches = []
    for raw, (value, error) in zip(inputs, got, strict=True):
        expected = oracle(raw) if raw.strip() else None
        if value != expected:
            mismatches.append((raw, value, expected))
        if raw.strip(" -()+") and expected is None:
            assert error == "phone.invalid", raw
    assert not mismatches, mismatches[:20]
    valid = sum(1 for v, _ in got if v)
    assert 1000 < valid < 3500  # the corpus really mixes valid and invalid numbers
