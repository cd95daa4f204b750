"""Probabilistic matching (Splink 5): persons that share no identifier but are the same person.

One row per deterministic person (its most frequent name, birthday, gender, city, store, the
last four digits of every phone its records carry - household phones included - and the user
part of its email), compared with a Fellegi-Sunter model trained on the workspace's own data:
u by random sampling, m by EM over blocking rules. The model is saved in the workspace
(``identity/model.json``) and retrained on request.

Names are compared in Chinese and in pinyin (pypinyin): the same characters, the same sound
(同音字: 丽/莉), the given-name characters swapped (丽娜/娜丽), or a close spelling.
Birthdays match exactly, with day and month swapped, or one day apart.

Pairs at or above `auto_threshold` merge automatically; between the thresholds they go to the
review queue. A pair is blocked (never merged) when the two persons hold different values of a
unique identifier; a pair whose consent states conflict is never merged without review; a
rejected pair is never proposed again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mecdp.identity.config import IdentityRules
from mecdp.identity.plain import (
    ENCRYPTED_TYPES,
    IDENTIFIER_CONTEXT,
    NAME_CONTEXT,
    PlainValues,
    identifiers_encrypted,
    plain_identifier_sql,
)
from mecdp.store import Store

MODEL_FILE = Path("identity") / "model.json"
PROFILE_TABLE = "oneid_profiles"
TRAIN_TABLE = "oneid_training"
MIN_PERSONS = 50  # fewer named persons than this: no probabilistic pass
_COMPOUND_SURNAMES = frozenset(
    [
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "轩辕",
        "令狐",
        "钟离",
        "端木",
        "独孤",
        "南宫",
        "西门",
        "百里",
        "呼延",
        "万俟",
        "闻人",
        "澹台",
        "公冶",
        "太史",
        "申屠",
        "赫连",
        "拓跋",
    ]
)
# Surnames whose reading differs from the character's most common one.
_SURNAME_READINGS = {"单": "shan", "仇": "qiu", "解": "xie", "曾": "zeng", "区": "ou", "朴": "piao"}


@dataclass(frozen=True)
class MatchOutcome:
    candidates: int
    auto: int
    review: int
    blocked: int
    trained: bool


@lru_cache(maxsize=200_000)
def name_keys(name: str) -> tuple[str, str, str, str]:
    """(pinyin, pinyin with given-name syllables sorted, surname pinyin, given pinyin).

    >>> name_keys("张丽娜")
    ('zhang li na', 'zhang li na', 'zhang', 'li na')
    >>> name_keys("张娜丽")[1]
    'zhang li na'
    >>> name_keys("单丽")[0]
    'shan li'
    """
    from pypinyin import Style, lazy_pinyin

    text = "".join(name.split())
    if not text:
        return ("", "", "", "")
    if not any("\u3400" <= ch <= "\u9fff" for ch in text):
        parts = name.lower().split()
        return (" ".join(parts), " ".join(sorted(parts)), parts[-1] if parts else "", "")
    cut = 2 if text[:2] in _COMPOUND_SURNAMES and len(text) > 2 else 1
    surname, given = text[:cut], text[cut:]
    sur = _SURNAME_READINGS.get(surname) or " ".join(lazy_pinyin(surname, style=Style.NORMAL))
    giv = [s.lower() for s in lazy_pinyin(given, style=Style.NORMAL)] if given else []
    full = " ".join([sur, *giv])
    return (full, " ".join([sur, *sorted(giv)]), sur, " ".join(giv))


def _profiles_sql(table: str, *, per_record: bool, sample: int) -> str:
    """Rows to compare: one per person (predict) or one per named source record (train)."""
    key = "c.record_id" if per_record else "r.one_id"
    limit = f"USING SAMPLE {int(sample)} ROWS (reservoir, 42)" if per_record else ""
    return f"""
    CREATE OR REPLACE TEMP TABLE {table}_raw AS
    WITH rec AS (
        SELECT {key} AS unit, c.record_id, c.name, c.gender, c.birthday, c.city, c.store_code
        FROM identity_records r JOIN contacts c ON c.record_id = r.record_id
        {"WHERE c.name IS NOT NULL" if per_record else ""}
    ),
    phones AS (
        SELECT {key} AS unit, list(DISTINCT f.part ORDER BY f.part) AS phone4
        FROM identity_records r JOIN oneid_fragments f ON f.record_id = r.record_id
        JOIN contacts c ON c.record_id = r.record_id
        WHERE f.id_type = 'phone' GROUP BY 1
    ),
    emails AS (
        SELECT {key} AS unit, mode(f.part) AS email_user
        FROM identity_records r JOIN oneid_fragments f ON f.record_id = r.record_id
        JOIN contacts c ON c.record_id = r.record_id
        WHERE f.id_type = 'email' GROUP BY 1
    )
    SELECT rec.unit AS unique_id,
           min(rec.record_id) FILTER (WHERE rec.name IS NOT NULL) AS record_id,
           mode(rec.name) AS name,
           mode(rec.gender) AS gender,
           mode(rec.birthday) AS birthday,
           mode(rec.city) AS city,
           mode(rec.store_code) AS store_code,
           any_value(p.phone4) AS phone4,
           any_value(e.email_user) AS email_user
    FROM rec LEFT JOIN phones p ON p.unit = rec.unit
    LEFT JOIN emails e ON e.unit = rec.unit
    GROUP BY rec.unit
    HAVING count(rec.name) > 0
    {limit}
    """


def build_fragments(cur: duckdb.DuckDBPyConnection, plain: PlainValues) -> None:
    """`oneid_fragments(record_id, id_type, part)`: the last 4 digits of each phone and the
    user part of each email (decrypted inside the service when stored encrypted)."""
    if not any(identifiers_encrypted(cur, t) for t in ENCRYPTED_TYPES):
        cur.execute(
            """
            CREATE OR REPLACE TEMP TABLE oneid_fragments AS
            SELECT record_id, id_type,
                   CASE id_type WHEN 'phone' THEN right(id_value, 4)
                                ELSE split_part(id_value, '@', 1) END AS part
            FROM record_identifiers WHERE id_type IN ('phone', 'email')
            """
        )
        return
    expr = plain_identifier_sql(cur)
    rows = cur.execute(
        f"SELECT ri.record_id, ri.id_type, {expr} FROM record_identifiers ri "
        "WHERE ri.id_type IN ('phone', 'email')"
    ).fetchall()
    parts: list[str | None] = []
    for _, id_type, stored in rows:
        value = plain.open(stored, IDENTIFIER_CONTEXT)
        if value is None:
            parts.append(None)
        else:
            parts.append(value[-4:] if id_type == "phone" else value.split("@", 1)[0])
    cur.register(
        "oneid_fragments_rows",
        pa.table(
            {
                "record_id": pa.array([r[0] for r in rows], pa.string()),
                "id_type": pa.array([r[1] for r in rows], pa.string()),
                "part": pa.array(parts, pa.string()),
            }
        ),
    )
    cur.execute(
        "CREATE OR REPLACE TEMP TABLE oneid_fragments AS SELECT * FROM oneid_fragments_rows "
        "WHERE part IS NOT NULL"
    )
    cur.unregister("oneid_fragments_rows")


def build_profiles(
    cur: duckdb.DuckDBPyConnection,
    table: str = PROFILE_TABLE,
    *,
    per_record: bool = False,
    sample: int = 300_000,
    plain: PlainValues | None = None,
) -> int:
    """Comparable rows into the temp table `table`: one per person, or (`per_record`, for
    training) one per named source record, sampled. Names, phones and emails are read in
    plain inside the service when stored encrypted. Returns the row count."""
    plain = plain or PlainValues(None)
    if not has_table(cur, "oneid_fragments"):
        build_fragments(cur, plain)
    cur.execute(_profiles_sql(table, per_record=per_record, sample=sample))
    stored = [str(r[0]) for r in cur.execute(f"SELECT DISTINCT name FROM {table}_raw").fetchall()]
    names = [plain.open(n, NAME_CONTEXT) or "" for n in stored]
    keys = [name_keys(n) for n in names]
    cur.register(
        "oneid_name_keys",
        pa.table(
            {
                "stored": stored,
                "name": names,
                "name_py": [k[0] for k in keys],
                "name_py_sorted": [k[1] for k in keys],
                "surname_py": [k[2] for k in keys],
                "given_py": [k[3] for k in keys],
            }
        ),
    )
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT p.unique_id, p.record_id, nullif(k.name, '') AS name, k.name_py,
               k.name_py_sorted, k.surname_py, k.given_py, p.gender,
               strftime(p.birthday, '%Y-%m-%d') AS birthday,
               CASE WHEN p.birthday IS NOT NULL THEN
                   strftime(p.birthday, '%Y') || '-' || strftime(p.birthday, '%d') || '-'
                   || strftime(p.birthday, '%m') END AS birthday_swapped,
               CAST(p.birthday - DATE '1970-01-01' AS BIGINT) AS birthday_days,
               p.city, p.store_code,
               CASE WHEN len(p.phone4) > 0 THEN p.phone4 END AS phone4,
               p.phone4[1] AS phone4_first,
               p.email_user
        FROM {table}_raw p JOIN oneid_name_keys k ON k.stored = p.name
        """
    )
    cur.unregister("oneid_name_keys")
    cur.execute(f"DROP TABLE IF EXISTS {table}_raw")
    row = cur.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def model_settings() -> Any:
    """The Splink settings of the person model (dedupe over person profiles)."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[
            cl.CustomComparison(
                output_column_name="name",
                comparison_levels=[
                    cll.NullLevel("name"),
                    cll.ExactMatchLevel("name"),
                    cll.ExactMatchLevel("name_py").configure(label_for_charts="same pinyin"),
                    cll.ExactMatchLevel("name_py_sorted").configure(
                        label_for_charts="given-name characters swapped"
                    ),
                    cll.And(
                        cll.ExactMatchLevel("surname_py"),
                        cll.JaroWinklerLevel("given_py", 0.88),
                    ).configure(label_for_charts="same surname, close given name"),
                    cll.ElseLevel(),
                ],
            ),
            cl.CustomComparison(
                output_column_name="birthday",
                comparison_levels=[
                    cll.NullLevel("birthday"),
                    cll.ExactMatchLevel("birthday"),
                    cll.CustomLevel(
                        "birthday_swapped_l = birthday_r", label_for_charts="day/month swapped"
                    ),
                    cll.CustomLevel(
                        "abs(birthday_days_l - birthday_days_r) <= 1",
                        label_for_charts="one day apart",
                    ),
                    cll.ElseLevel(),
                ],
            ),
            cl.ExactMatch("gender"),
            cl.ExactMatch("city"),
            cl.ExactMatch("store_code"),
            cl.ArrayIntersectAtSizes("phone4", [1]),
            cl.ExactMatch("email_user"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("name_py"),
            block_on("name_py_sorted"),
            block_on("surname_py", "birthday"),
            block_on("surname_py", "phone4_first"),
            block_on("birthday", "phone4_first"),
            block_on("email_user"),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=True,
    )


def has_table(cur: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = cur.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def train_model(
    cur: duckdb.DuckDBPyConnection, db_api: Any, plain: PlainValues | None = None
) -> dict[str, Any]:
    """Train on the workspace's own source records (a sample of named records): u by random
    sampling, m by EM over two blocking rules, the prior from records sharing name and
    birthday. Records, unlike persons, still hold every typo and variant of a person, so the
    m values learn what the same person looks like across sources. Returns the model."""
    from splink import Linker, block_on

    rows = build_profiles(cur, TRAIN_TABLE, per_record=True, plain=plain)
    try:
        sdf = db_api.register(TRAIN_TABLE, dataset_display_name="oneid_training_records")
        linker = Linker(sdf, model_settings(), log_level=logging.WARNING)
        same = cur.execute(
            f"SELECT count(*) FROM (SELECT name, birthday FROM {TRAIN_TABLE} "
            "WHERE birthday IS NOT NULL GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()
        if same and int(same[0]) > 0:
            linker.training.estimate_probability_two_random_records_match(
                [block_on("name", "birthday")], recall=0.8
            )
        linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=42)
        for rule in (block_on("birthday"), block_on("name_py")):
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, fix_probability_two_random_records_match=True
            )
        model: dict[str, Any] = linker.misc.save_model_to_json()
        model["mecdp_training_rows"] = rows
        return model
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {TRAIN_TABLE}")


_FIELDS = ("name", "birthday", "gender", "city", "store_code", "phone4", "email_user")


def match_persons(
    store: Store,
    *,
    workspace: Path | None = None,
    retrain: bool = False,
    progress: Any = None,
) -> MatchOutcome:
    """Score persons against each other and record the pairs (auto / review / blocked)."""
    from splink import DuckDBAPI, Linker

    rules = IdentityRules.load(workspace)
    cur = store.con.cursor()
    try:
        plain = PlainValues(workspace)
        rows = build_profiles(cur, plain=plain)
        if rows < MIN_PERSONS:  # too few to learn from: nothing to propose
            return MatchOutcome(0, 0, 0, 0, False)
        db_api = DuckDBAPI(connection=cur)
        model_path = workspace / MODEL_FILE if workspace else None
        trained = False
        if model_path is not None and model_path.exists() and not retrain:
            model = json.loads(model_path.read_text())
        else:
            if progress is not None:
                progress("training the match model on the workspace's records")
            model = train_model(cur, db_api, plain)
            trained = True
            if model_path is not None:
                model_path.parent.mkdir(parents=True, exist_ok=True)
                model_path.write_text(json.dumps(model, indent=2))
        model.pop("mecdp_training_rows", None)
        sdf = db_api.register(PROFILE_TABLE, dataset_display_name="oneid_persons")
        linker = Linker(sdf, model, log_level=logging.WARNING)
        if progress is not None:
            progress("scoring persons that share no identifier")
        predictions = linker.inference.predict(
            threshold_match_probability=rules.review_threshold, warning_mode="never"
        )
        gamma = ", ".join(f"gamma_{f}" for f in _FIELDS)
        cur.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE oneid_predictions AS
            SELECT unique_id_l AS one_id_l, unique_id_r AS one_id_r, match_weight,
                   match_probability, {gamma}
            FROM {predictions.physical_name}
            """
        )
        predictions.drop_table_from_database_and_remove_from_cache()
        return _record_pairs(cur, rules, trained)
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {PROFILE_TABLE}")
        cur.execute("DROP TABLE IF EXISTS oneid_predictions")
        cur.execute("DROP TABLE IF EXISTS oneid_fragments")
        cur.close()


def _record_pairs(
    cur: duckdb.DuckDBPyConnection, rules: IdentityRules, trained: bool
) -> MatchOutcome:
    unique_types = [r.id_type for r in rules.types.values() if r.unique]
    unique_list = ", ".join(f"'{t}'" for t in unique_types) or "''"
    fields = ", ".join(f"'{f}': gamma_{f}" for f in _FIELDS)
    has_consents = bool(
        cur.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'consents'"
        ).fetchone()[0]  # type: ignore[index]
    )
    consent_sql = (
        """
        latest AS (
            SELECT member_ref, purpose, channel, arg_max(status, occurred_at) AS status
            FROM consents WHERE member_ref LIKE 'one_id:%' GROUP BY ALL
        ),
        consent_conflict AS (
            SELECT DISTINCT a.member_ref AS ref_a, b.member_ref AS ref_b
            FROM latest a JOIN latest b ON a.purpose = b.purpose AND a.channel = b.channel
            WHERE a.status <> b.status
        ),
        """
        if has_consents
        else "consent_conflict AS (SELECT '' AS ref_a, '' AS ref_b WHERE FALSE),"
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE oneid_new_pairs AS
        WITH {consent_sql}
        uniq AS (
            SELECT one_id, id_type, id_value FROM identity_oneid
            WHERE id_type IN ({unique_list})
        ),
        scored AS (
            SELECT p.*, pl.record_id AS record_id_l, pr.record_id AS record_id_r,
                   EXISTS (SELECT 1 FROM uniq a JOIN uniq b ON a.id_type = b.id_type
                           WHERE a.one_id = p.one_id_l AND b.one_id = p.one_id_r
                             AND a.id_value <> b.id_value) AS unique_conflict,
                   EXISTS (SELECT 1 FROM consent_conflict c
                           WHERE c.ref_a = 'one_id:' || p.one_id_l
                             AND c.ref_b = 'one_id:' || p.one_id_r) AS consent_conflict
            FROM oneid_predictions p
            JOIN {PROFILE_TABLE} pl ON pl.unique_id = p.one_id_l
            JOIN {PROFILE_TABLE} pr ON pr.unique_id = p.one_id_r
        )
        SELECT substr(sha256(least(record_id_l, record_id_r) || chr(31)
                              || greatest(record_id_l, record_id_r)), 1, 24) AS pair_id,
               record_id_l, record_id_r, one_id_l, one_id_r, match_weight AS weight,
               match_probability AS probability,
               CAST(to_json({{{fields}}}) AS VARCHAR) AS fields,
               CASE WHEN unique_conflict THEN 'blocked'
                    WHEN consent_conflict THEN 'pending'
                    WHEN match_probability >= {rules.auto_threshold} THEN 'auto'
                    ELSE 'pending' END AS status,
               CASE WHEN unique_conflict THEN 'different values of a unique identifier'
                    WHEN consent_conflict THEN 'consent states differ: needs review'
               END AS reason
        FROM scored
        """
    )
    # Never propose again what is already decided (pair or the same two persons rejected).
    cur.execute(
        """
        DELETE FROM oneid_new_pairs n
        WHERE n.pair_id IN (SELECT pair_id FROM identity_match_pairs)
           OR EXISTS (
               SELECT 1 FROM identity_match_pairs m
               LEFT JOIN identity_redirects rl ON rl.from_one_id = m.one_id_l
               LEFT JOIN identity_redirects rr ON rr.from_one_id = m.one_id_r
               WHERE m.status = 'rejected'
                 AND least(coalesce(rl.to_one_id, m.one_id_l), coalesce(rr.to_one_id, m.one_id_r))
                     = least(n.one_id_l, n.one_id_r)
                 AND greatest(coalesce(rl.to_one_id, m.one_id_l),
                              coalesce(rr.to_one_id, m.one_id_r))
                     = greatest(n.one_id_l, n.one_id_r))
        """
    )
    cur.execute(
        "INSERT INTO identity_match_pairs SELECT pair_id, record_id_l, record_id_r, one_id_l, "
        "one_id_r, weight, probability, fields, status, reason, NULL, NULL, ? "
        "FROM oneid_new_pairs",
        [now],
    )
    counts = dict(
        cur.execute("SELECT status, count(*) FROM oneid_new_pairs GROUP BY status").fetchall()
    )
    total = sum(int(v) for v in counts.values())
    cur.execute("DROP TABLE IF EXISTS oneid_new_pairs")
    return MatchOutcome(
        candidates=total,
        auto=int(counts.get("auto", 0)),
        review=int(counts.get("pending", 0)),
        blocked=int(counts.get("blocked", 0)),
        trained=trained,
    )


def describe_fields(fields_json: str) -> dict[str, Any]:
    """The compared fields of a stored pair (comparison level per field)."""
    data: dict[str, Any] = json.loads(fields_json)
    return data
