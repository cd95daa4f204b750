"""FEBRL record-linkage benchmarks (tests/data/febrl): a strong Splink 5 model and its scores.

The model adds address comparisons (street number, address, suburb, postcode, state), a date
of birth comparison tolerant to one or two typed digits, name comparisons with term-frequency
adjustments and a given-name/surname swap level, on top of the standard name/dob/postcode
model. Truth comes from the record ids: ``rec-N-org`` and ``rec-N-dup-k`` are person N.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

DATA = Path(__file__).resolve().parent.parent / "data" / "febrl"
COLUMNS = (
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
)


def load(con: duckdb.DuckDBPyConnection, name: str, table: str) -> None:
    """A FEBRL file as `table(unique_id, person, <columns>)`; blanks become NULL."""
    cols = ", ".join(f"nullif(trim(CAST(\"{c}\" AS VARCHAR)), '') AS {c}" for c in COLUMNS)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {table} AS
        SELECT trim(rec_id) AS unique_id,
               split_part(trim(rec_id), '-', 2) AS person,
               {cols}
        FROM read_csv('{DATA / name}', all_varchar = true, header = true,
                      normalize_names = false)
        """
    )
    # read_csv keeps the leading space in the header names: normalise them.
    names = [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
    assert names[:2] == ["unique_id", "person"], names


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    pairs_found: int
    pairs_true: int


def _pairs_of(groups: dict[str, list[str]]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for members in groups.values():
        for a, b in itertools.combinations(sorted(members), 2):
            out.add((a, b))
    return out


def score(found: set[tuple[str, str]], truth: set[tuple[str, str]]) -> Scores:
    tp = len(found & truth)
    precision = tp / len(found) if found else 0.0
    recall = tp / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, len(found), len(truth))


def settings(*, link: bool, with_ssid: bool) -> SettingsCreator:
    comparisons: list[Any] = [
        cl.CustomComparison(
            output_column_name="name",
            comparison_levels=[
                cll.And(cll.NullLevel("given_name"), cll.NullLevel("surname")),
                cll.And(cll.ExactMatchLevel("given_name"), cll.ExactMatchLevel("surname")),
                cll.ColumnsReversedLevel("given_name", "surname"),
                cll.And(
                    cll.JaroWinklerLevel("given_name", 0.92),
                    cll.JaroWinklerLevel("surname", 0.92),
                ),
                cll.Or(
                    cll.And(
                        cll.ExactMatchLevel("given_name"), cll.JaroWinklerLevel("surname", 0.8)
                    ),
                    cll.And(
                        cll.ExactMatchLevel("surname"), cll.JaroWinklerLevel("given_name", 0.8)
                    ),
                ),
                cll.ElseLevel(),
            ],
        ),
        cl.NameComparison("given_name", jaro_winkler_thresholds=[0.92, 0.8]).configure(
            term_frequency_adjustments=True
        ),
        cl.NameComparison("surname", jaro_winkler_thresholds=[0.92, 0.8]).configure(
            term_frequency_adjustments=True
        ),
        cl.CustomComparison(
            output_column_name="date_of_birth",
            comparison_levels=[
                cll.NullLevel("date_of_birth"),
                cll.ExactMatchLevel("date_of_birth"),
                cll.DamerauLevenshteinLevel("date_of_birth", 1),
                cll.DamerauLevenshteinLevel("date_of_birth", 2),
                cll.ElseLevel(),
            ],
        ),
        cl.LevenshteinAtThresholds("postcode", [1]).configure(term_frequency_adjustments=True),
        cl.JaroWinklerAtThresholds("suburb", [0.9]).configure(term_frequency_adjustments=True),
        cl.LevenshteinAtThresholds("street_number", [1]),
        cl.JaroWinklerAtThresholds("address_1", [0.9, 0.75]).configure(
            term_frequency_adjustments=True
        ),
        cl.JaroWinklerAtThresholds("address_2", [0.9]),
        cl.ExactMatch("state").configure(term_frequency_adjustments=True),
    ]
    # Names are one comparison (the combined level above), not three.
    comparisons.pop(1)
    comparisons.pop(1)
    if with_ssid:
        comparisons.append(cl.LevenshteinAtThresholds("soc_sec_id", [1, 2]))
    rules = [
        block_on("given_name", "surname"),
        block_on("surname", "date_of_birth"),
        block_on("given_name", "date_of_birth"),
        block_on("postcode", "street_number"),
        block_on("date_of_birth"),
        block_on("surname", "postcode"),
        block_on("given_name", "postcode"),
        block_on("address_1", "suburb"),
        block_on("substr(given_name, 1, 2)", "substr(surname, 1, 2)"),
    ]
    if with_ssid:
        rules.append(block_on("soc_sec_id"))
    return SettingsCreator(
        link_type="link_only" if link else "dedupe_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=rules,
        retain_intermediate_calculation_columns=False,
    )


def run(*, link: bool, with_ssid: bool, threshold: float = 0.5) -> tuple[Scores, Scores]:
    """Train on the data itself and predict; (pairwise scores, clustered scores)."""
    con = duckdb.connect()
    if link:
        load(con, "dataset4a.csv", "a")
        load(con, "dataset4b.csv", "b")
        tables = ["a", "b"]
    else:
        load(con, "dataset3.csv", "a")
        tables = ["a"]
    keep = [c for c in ("unique_id", *COLUMNS) if with_ssid or c != "soc_sec_id"]
    db_api = DuckDBAPI(connection=con)
    sdfs = [
        db_api.register(
            con.sql(f"SELECT {', '.join(keep)} FROM {t}"), dataset_display_name=f"in_{t}"
        )
        for t in tables
    ]
    linker = Linker(
        sdfs if link else sdfs[0],
        settings(link=link, with_ssid=with_ssid),
        log_level=logging.WARNING,
    )
    linker.training.estimate_probability_two_random_records_match(
        [
            block_on("given_name", "surname", "date_of_birth"),
            block_on("postcode", "street_number", "surname"),
        ],
        recall=0.8,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    for rule in (block_on("date_of_birth"), block_on("postcode"), block_on("surname")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=0.01)
    pred = predictions.as_duckdbpyrelation()
    found = {
        tuple(sorted((str(a).split("-__-")[-1], str(b).split("-__-")[-1])))
        for a, b, p in pred.select("unique_id_l, unique_id_r, match_probability").fetchall()
        if p >= threshold
    }
    truth_groups: dict[str, list[str]] = defaultdict(list)
    for t in tables:
        for uid, person in con.execute(f"SELECT unique_id, person FROM {t}").fetchall():
            truth_groups[person].append(uid)
    truth = _pairs_of(truth_groups)
    if link:
        a_ids = {r[0] for r in con.execute("SELECT unique_id FROM a").fetchall()}
        truth = {(x, y) for x, y in truth if (x in a_ids) != (y in a_ids)}
    pairwise = score({(a, b) for a, b in found}, truth)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=threshold
    ).as_duckdbpyrelation()
    groups: dict[str, list[str]] = defaultdict(list)
    for cid, uid in clusters.select("cluster_id, unique_id").fetchall():
        groups[str(cid)].append(str(uid))
    clustered = _pairs_of(groups)
    if link:
        clustered = {(x, y) for x, y in clustered if (x in a_ids) != (y in a_ids)}
    return pairwise, score(clustered, truth)
