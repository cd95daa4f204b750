"""Synthetic member facts written straight into a store with set-based SQL (no importer, no
OneID run): golden records, OneID record links, the demo catalog, orders (10 per member on
average, skewed so a few members buy much more than most), appointments (3 per member),
treatments (2) and interactions (3) over the three years before `AS_OF`.

For the layering benchmark (benchmarks/bench_layering.py) and the engine parity test: the
same rows at any size, reproducible (values come from `hash` of the row number).
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from mecdp.demo import reference as ref

AS_OF = datetime(2026, 11, 20)
DAYS = 3 * 365


def _rand(i: str, salt: int, n: int) -> str:
    """A reproducible pseudo-random integer in [0, n) from row number `i`."""
    return f"(hash({i}, {salt}) % {n})"


def synthesise(con: duckdb.DuckDBPyConnection, members: int) -> dict[str, int]:
    catalog = ref.CATALOG
    codes = "[" + ", ".join(f"'{c[0]}'" for c in catalog) + "]"
    stores = "[" + ", ".join(f"'{s[0]}'" for s in ref.STORES) + "]"
    nc, ns = len(catalog), len(ref.STORES)
    as_of = f"TIMESTAMP '{AS_OF.isoformat(sep=' ')}'"
    con.executemany(
        "INSERT INTO catalog VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(c[0], c[1], c[2], c[3] * 100, c[4], c[5], c[6]) for c in catalog],
    )
    con.execute(
        f"""
        INSERT INTO profiles (one_id, gender, birthday, city, home_store, member_level,
                              first_seen, last_seen, orders, visits, total_spend_fen,
                              records, built_at)
        SELECT 'P' || i, CASE WHEN {_rand("i", 1, 10)} < 8 THEN 'F' ELSE 'M' END,
               DATE '1970-01-01' + CAST({_rand("i", 2, 365 * 35)} AS INTEGER) + 7300,
               '上海', {stores}[CAST(1 + {_rand("i", 3, ns)} AS BIGINT)], 'regular',
               {as_of} - INTERVAL (CAST({_rand("i", 4, DAYS)} AS INTEGER)) DAY, {as_of},
               0, 0, 0, 0, {as_of}
        FROM range({members}) t(i)
        """
    )
    # facts: member chosen with a skew (a few members buy much more than most)
    member = f"'P' || CAST(({_rand('i', 10, members)} * {_rand('i', 11, 1000)}) / 1000 AS BIGINT)"
    when = (
        f"{as_of} - INTERVAL (CAST({_rand('i', 12, DAYS)} AS INTEGER)) DAY "
        f"- INTERVAL (CAST({_rand('i', 13, 86400)} AS INTEGER)) SECOND"
    )
    item = f"{codes}[CAST(1 + {_rand('i', 14, nc)} AS BIGINT)]"
    counts = {
        "orders": members * 10,
        "appointments": members * 3,
        "treatments": members * 2,
        "interactions": members * 3,
    }
    con.execute(
        f"""
        INSERT INTO orders (record_id, source_id, order_no, customer_no, store_code, channel,
                            ordered_at, item_code, item_name, category, quantity, amount_fen,
                            paid_fen, promo, order_type, sessions, status, ingested_at)
        SELECT 'o' || i, 'pos', 'SO' || i, NULL, {stores}[CAST(1 + {_rand("i", 3, ns)} AS BIGINT)],
               'pos', {when}, c.item_code, c.name, c.category, 1, c.price_fen, c.price_fen,
               {_rand("i", 15, 10)} < 3,
               CASE WHEN {_rand("i", 16, 10)} = 0 THEN 'course_card' ELSE 'normal' END,
               CASE WHEN {_rand("i", 16, 10)} = 0 THEN 6 END,
               CASE WHEN {_rand("i", 17, 50)} = 0 THEN 'refunded' ELSE 'paid' END, {as_of}
        FROM range({counts["orders"]}) t(i) JOIN catalog c ON c.item_code = {item}
        """
    )
    con.execute(
        f"""
        INSERT INTO appointments
        SELECT 'a' || i, 'his', 'AP' || i, {stores}[CAST(1 + {_rand("i", 3, ns)} AS BIGINT)],
               'his', {item}, NULL, NULL, {when},
               CASE WHEN {_rand("i", 18, 10)} < 7 THEN {when} END,
               CASE WHEN {_rand("i", 18, 10)} < 7 THEN 'arrived'
                    WHEN {_rand("i", 18, 10)} < 9 THEN 'no_show' ELSE 'cancelled' END, {as_of}
        FROM range({counts["appointments"]}) t(i)
        """
    )
    con.execute(
        f"""
        INSERT INTO treatments
        SELECT 't' || i, 'his', 'TR' || i, NULL, c.item_code, c.name, c.category, 'Dr', 1,
               {when}, {as_of}
        FROM range({counts["treatments"]}) t(i) JOIN catalog c ON c.item_code = {item}
        """
    )
    channels = "['douyin', 'xiaohongshu', 'weibo', 'wechat', 'call_center', 'chat']"
    con.execute(
        f"""
        INSERT INTO interactions
        SELECT 'x' || i, 'social', 'IX' || i, {channels}[CAST(1 + {_rand("i", 19, 6)} AS BIGINT)],
               'comment', NULL, c.name, NULL, {when}, {as_of}
        FROM range({counts["interactions"]}) t(i) JOIN catalog c ON c.item_code = {item}
        """
    )
    for prefix, n in zip("oatx", counts.values(), strict=True):
        con.execute(
            f"INSERT INTO identity_records SELECT '{prefix}' || i, {member} FROM range({n}) t(i)"
        )
    con.execute("CHECKPOINT")
    return {"members": members, **counts}
