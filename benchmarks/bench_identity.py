"""OneID speed: deterministic full rebuild and the probabilistic pass on N synthetic members,
beside a minimal hand-written reference (bare DuckDB min-label connected components).
Seconds are wall-clock; cpu seconds (all threads of this process) are steadier on a shared
machine. The second rebuild runs on the resolved store (what a nightly rebuild does).

The members are written straight into a workspace store (set-based SQL, no importer), about
3.4 identifiers per member: a CRM record (member no., phone, name, birthday, city, store), a
POS order for 60 % (member no., customer no.), a WeChat record for 50 % (unionid, phone), a
Douyin interaction for 30 % (open id), 1.5 % of members share a family phone, and 5 % left a
lead with a typed name variant and another phone (only matching can find those).

Run: .venv/bin/python benchmarks/bench_identity.py [--members 100000] [--no-match]
     .venv/bin/python benchmarks/bench_identity.py --members 1000000   # the issue's figure
Targets (issue 4, 1M members): deterministic <= 30 s, probabilistic <= 120 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from mecdp.config import Settings, init_workspace
from mecdp.demo import reference as ref
from mecdp.identity import matching
from mecdp.identity.service import resolve_identities
from mecdp.store import Store, open_store


def synthesise(con: duckdb.DuckDBPyConnection, members: int) -> None:
    surnames = "[" + ", ".join(f"'{s}'" for s in ref.SURNAMES) + "]"
    given = "[" + ", ".join(f"'{g}'" for g in ref.FEMALE_GIVEN) + "]"
    stores = "[" + ", ".join(f"'{s[0]}'" for s in ref.STORES) + "]"
    cities = "[" + ", ".join(f"'{s[2]}'" for s in ref.STORES) + "]"
    homophones = ref.HOMOPHONES
    nh = len(homophones)
    ng = len(ref.FEMALE_GIVEN)
    src = "[" + ", ".join(f"'{k}'" for k in homophones) + "]"
    dst = "[" + ", ".join(f"'{v}'" for v in homophones.values()) + "]"
    con.execute(
        f"""
        CREATE TEMP TABLE people AS
        SELECT i,
               'M' || (10000000 + i) AS member_no,
               '+861' || (3000000000 + (i * 7919) % 999999999) AS phone,
               {surnames}[CAST(1 + hash(i, 1) % {len(ref.SURNAMES)} AS BIGINT)]
                 || {given}[CAST(1 + hash(i, 2) % {ng} AS BIGINT)]
                 || CASE WHEN hash(i, 3) % 4 = 0 THEN ''
                         ELSE {given}[CAST(1 + hash(i, 4) % {ng} AS BIGINT)] END AS name,
               DATE '1970-01-01' + CAST(hash(i, 5) % 15000 AS INTEGER) + 3650 AS birthday,
               CAST(1 + hash(i, 6) % {len(ref.STORES)} AS BIGINT) AS store_ix,
               hash(i, 7) % 1000 AS r
        FROM range({members}) t(i)
        """
    )
    # Families: 1.5 % give a family member's phone (the next member's).
    con.execute(
        "UPDATE people SET phone = '+861' || (3000000000 + ((i + 1) * 7919) % 999999999) "
        "WHERE r < 15"
    )
    con.execute(
        f"""
        INSERT INTO contacts (record_id, record_kind, source_id, name, gender, birthday, city,
                              store_code, observed_at)
        SELECT 'crm:' || i, 'contacts', 'crm', name, 'F', birthday, {cities}[store_ix],
               {stores}[store_ix], TIMESTAMP '2024-01-01' + to_seconds(i) FROM people
        UNION ALL
        SELECT 'pos:' || i, 'orders', 'pos', NULL, NULL, NULL, NULL, {stores}[store_ix],
               TIMESTAMP '2024-06-01' + to_seconds(i) FROM people WHERE r % 10 < 6
        UNION ALL
        SELECT 'wx:' || i, 'orders', 'mall', NULL, NULL, NULL, NULL, NULL,
               TIMESTAMP '2024-07-01' + to_seconds(i) FROM people WHERE r % 2 = 0
        UNION ALL
        SELECT 'dy:' || i, 'interactions', 'douyin', NULL, NULL, NULL, NULL, NULL,
               TIMESTAMP '2024-08-01' + to_seconds(i) FROM people WHERE r % 10 >= 7
        UNION ALL
        SELECT 'lead:' || i, 'interactions', 'leads',
               name[1] || replace(name[2:], {src}[CAST(1 + hash(i, 9) % {nh} AS BIGINT)],
                                  {dst}[CAST(1 + hash(i, 9) % {nh} AS BIGINT)]),
               'F', birthday, {cities}[store_ix], NULL, TIMESTAMP '2025-01-01' + to_seconds(i)
        FROM people WHERE r % 20 = 3
        """
    )
    con.execute(
        """
        INSERT INTO record_identifiers (record_id, record_kind, source_id, id_type, id_value,
                                        observed_at)
        SELECT 'crm:' || i, 'contacts', 'crm', 'member_no', member_no, NULL FROM people
        UNION ALL SELECT 'crm:' || i, 'contacts', 'crm', 'phone', phone, NULL FROM people
        UNION ALL SELECT 'pos:' || i, 'orders', 'pos', 'member_no', member_no, NULL
            FROM people WHERE r % 10 < 6
        UNION ALL SELECT 'pos:' || i, 'orders', 'pos', 'customer_no', 'C' || i, NULL
            FROM people WHERE r % 10 < 6
        UNION ALL SELECT 'wx:' || i, 'orders', 'mall', 'wechat_unionid', 'oU' || md5(i::VARCHAR),
            NULL FROM people WHERE r % 2 = 0
        UNION ALL SELECT 'wx:' || i, 'orders', 'mall', 'phone', phone, NULL
            FROM people WHERE r % 2 = 0
        UNION ALL SELECT 'dy:' || i, 'interactions', 'douyin', 'douyin_open_id',
            '_000' || md5(i::VARCHAR), NULL FROM people WHERE r % 10 >= 7
        UNION ALL SELECT 'lead:' || i, 'interactions', 'leads', 'phone',
            '+861' || (5000000000 + i), NULL FROM people WHERE r % 20 = 3
        """
    )


def open_bench_store(tmp: Path, memory_limit: str) -> tuple[Settings, Store]:
    """A fresh workspace and its store under `tmp`, DuckDB memory capped (shared machine)."""
    settings = Settings(workspace=tmp / "ws")
    init_workspace(settings)
    store = open_store(settings.db_path)
    store.con.execute(f"SET memory_limit = '{memory_limit}'")
    return settings, store


def reference_components(con: duckdb.DuckDBPyConnection) -> tuple[float, int]:
    """A bare iterative min-label connected-components query over record->identifier edges
    (no rules, no persistence): the floor of what any implementation can cost."""
    start = time.perf_counter()
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE ref_e AS
        SELECT dense_rank() OVER (ORDER BY record_id) AS a,
               dense_rank() OVER (ORDER BY id_type, id_value) AS b
        FROM record_identifiers
        """
    )
    con.execute("CREATE OR REPLACE TEMP TABLE ref_l AS SELECT a, min(a) AS c FROM ref_e GROUP BY a")
    previous = None
    while True:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE ref_n AS
            WITH nb AS (SELECT e.b, min(l.c) AS c FROM ref_e e JOIN ref_l l USING (a) GROUP BY e.b)
            SELECT e.a, min(nb.c) AS c FROM ref_e e JOIN nb USING (b) GROUP BY e.a
            """
        )
        con.execute("CREATE OR REPLACE TEMP TABLE ref_l AS SELECT * FROM ref_n")
        row = con.execute("SELECT sum(c) FROM ref_l").fetchone()
        total = row[0] if row else None
        if total == previous:
            break
        previous = total
    row = con.execute("SELECT count(DISTINCT c) FROM ref_l").fetchone()
    return time.perf_counter() - start, int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--no-match", action="store_true", help="skip the probabilistic pass")
    parser.add_argument(
        "--memory-limit", default="6GB", help="DuckDB memory cap (the machine is shared)"
    )
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        settings, store = open_bench_store(Path(tmp), args.memory_limit)
        cur = store.cursor()
        start = time.perf_counter()
        with console.status(f"synthesising {args.members:,} members"):
            synthesise(cur, args.members)
        made = time.perf_counter() - start
        identifiers = cur.execute(
            "SELECT count(*), count(DISTINCT (id_type, id_value)) FROM record_identifiers"
        ).fetchone()
        records = cur.execute("SELECT count(*) FROM contacts").fetchone()
        console.print(
            f"{args.members:,} members: {records[0] if records else 0:,} records, "
            f"{identifiers[1] if identifiers else 0:,} identifiers "
            f"({identifiers[0] if identifiers else 0:,} edges) in {made:.1f} s"
        )
        with console.status("reference: bare connected components"):
            cpu = time.process_time()
            ref_seconds, ref_components = reference_components(cur)
            ref_cpu = time.process_time() - cpu
        with console.status("OneID deterministic full rebuild"):
            start, cpu = time.perf_counter(), time.process_time()
            report = resolve_identities(store, workspace=settings.workspace, match=False)
            det_seconds, det_cpu = time.perf_counter() - start, time.process_time() - cpu
        with console.status("OneID deterministic rebuild of the resolved store"):
            start, cpu = time.perf_counter(), time.process_time()
            again = resolve_identities(store, workspace=settings.workspace, match=False)
            again_seconds, again_cpu = time.perf_counter() - start, time.process_time() - cpu
        prob_seconds = prob_cpu = None
        outcome = None
        if not args.no_match:
            with console.status("OneID probabilistic pass (train + predict)"):
                start, cpu = time.perf_counter(), time.process_time()
                outcome = matching.match_persons(store, workspace=settings.workspace)
                prob_seconds = time.perf_counter() - start
                prob_cpu = time.process_time() - cpu
        store.close()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    table = Table(title=f"OneID on {args.members:,} members (load average {load})")
    for col in ("stage", "seconds", "cpu seconds", "vs reference", "result"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    table.add_row(
        "reference: bare DuckDB min-label CC",
        f"{ref_seconds:.2f}",
        f"{ref_cpu:.2f}",
        "1.0x",
        f"{ref_components:,} components",
    )
    table.add_row(
        "OneID deterministic full rebuild",
        f"{det_seconds:.2f}",
        f"{det_cpu:.2f}",
        f"{det_seconds / ref_seconds:.1f}x",
        f"{report.persons:,} persons, {report.ambiguous_identifiers:,} household ids",
    )
    table.add_row(
        "OneID rebuild of the resolved store",
        f"{again_seconds:.2f}",
        f"{again_cpu:.2f}",
        f"{again_seconds / ref_seconds:.1f}x",
        f"{again.persons:,} persons, {again.merges:,} merges, {again.splits:,} splits",
    )
    if prob_seconds is not None and outcome is not None:
        table.add_row(
            "OneID probabilistic pass (Splink)",
            f"{prob_seconds:.2f}",
            f"{prob_cpu:.2f}",
            "",
            f"{outcome.auto:,} auto, {outcome.review:,} review, {outcome.blocked:,} blocked",
        )
    console.print(table)


if __name__ == "__main__":
    main()
