"""CLV: the purchase-day summary in SQL, BG/NBD and Gamma-Gamma against the published CDNOW
figures, closed-form properties, the scores columns, and a calibration/holdout check on the
demo chain."""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from scipy import optimize

from mecdp.compute import clv
from mecdp.compute.facts import ORDERS, fact_steps
from mecdp.errors import InputError
from mecdp.store.duckdb_store import migrate
from mecdp.store.engine import DuckDBEngine, Engine, SparkEngine

CDNOW = Path(__file__).parents[1] / "data" / "cdnow"
# the calibration period ends with 1997-09-30 (days are China days: 23:59:59 is 15:59:59 UTC)
CDNOW_END = datetime(1997, 9, 30, 15, 59, 59)
PUBLISHED_BGNBD = clv.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


# --- stores built by hand -------------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    one_id: str
    ordered_at: datetime
    paid_fen: int | None
    amount_fen: int | None = None
    status: str | None = None


def store_with_orders(orders: list[Order], members: list[str]) -> duckdb.DuckDBPyConnection:
    """A migrated in-memory store: a golden record per member, one source record per order."""
    con = duckdb.connect()
    migrate(con)
    con.register("new_profiles", pa.table({"one_id": pa.array(sorted(set(members)), pa.string())}))
    con.execute(
        "INSERT INTO profiles (one_id, orders, visits, total_spend_fen, records, built_at) "
        "SELECT one_id, 0, 0, 0, 1, TIMESTAMP '2026-01-01' FROM new_profiles"
    )
    record_ids = [f"pos:{i}" for i in range(len(orders))]
    con.register(
        "new_orders",
        pa.table(
            {
                "record_id": record_ids,
                "one_id": [o.one_id for o in orders],
                "ordered_at": pa.array([o.ordered_at for o in orders], pa.timestamp("us")),
                "paid_fen": pa.array([o.paid_fen for o in orders], pa.int64()),
                "amount_fen": [
                    o.amount_fen if o.amount_fen is not None else (o.paid_fen or 0) for o in orders
                ],
                "status": pa.array([o.status for o in orders], pa.string()),
            }
        ),
    )
    con.execute("INSERT INTO identity_records SELECT record_id, one_id FROM new_orders")
    con.execute(
        "INSERT INTO orders (record_id, source_id, order_no, ordered_at, amount_fen, paid_fen, "
        "status, ingested_at) SELECT record_id, 'pos', record_id, ordered_at, amount_fen, "
        "paid_fen, status, ordered_at FROM new_orders"
    )
    for name in ("new_profiles", "new_orders"):
        con.unregister(name)
    return con


def run_summary(engine: Engine, as_of: datetime) -> pa.Table:
    """The member order facts, then the CLV summary, on `engine`; rows by one_id."""
    (orders,) = [p for p in fact_steps(as_of) if p[-1].output_table_name == ORDERS]
    engine.run_pipeline(list(orders), ORDERS)
    engine.run_pipeline(clv.summary_steps(as_of), clv.SUMMARY)
    return engine.fetch_arrow(f"SELECT * FROM {clv.SUMMARY} ORDER BY one_id")


def by_one_id(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {row["one_id"]: row for row in table.to_pylist()}


# --- the summary in SQL ---------------------------------------------------------------------

AS_OF = datetime(2025, 6, 30, 15, 59, 59)  # 23:59:59 on 2025-06-30 in China (UTC+8)


def hand_orders() -> list[Order]:
    def at(day: str, hour: int = 12) -> datetime:
        return datetime.fromisoformat(day) + timedelta(hours=hour)

    return [
        Order("single", at("2025-01-10"), 100_000),
        # two orders on the first day are one purchase; a 0-fen order counts as a purchase day
        Order("repeat", at("2025-01-01", 10), 50_000),
        Order("repeat", at("2025-01-01", 15), 30_000),
        Order("repeat", at("2025-03-01"), 20_000),
        Order("repeat", at("2025-04-01"), 0),
        Order("repeat", at("2025-05-01"), 99_900, status="refunded"),  # void: not a purchase
        Order("repeat", at("2025-07-15"), 10_000),  # after as_of
        Order("today", at("2025-06-30", 1), 1_000),  # 09:00 in China
        Order("today", at("2025-06-30", 12), 2_000),  # 20:00 in China: the same day
        Order("unpaid_column", at("2025-02-01"), None, amount_fen=7_000),  # paid = amount
        Order("unpaid_column", at("2025-02-03"), 3_000),
        Order("late", at("2025-06-30", 16), 5_000),  # 00:00 on 07-01 in China: after as_of
    ]


HAND_MEMBERS = ["single", "repeat", "today", "unpaid_column", "late", "no_orders"]
HAND_SUMMARY = {
    # one_id: (frequency, recency_days, age_days, monetary_fen, total_spend_fen)
    "single": (0, 0.0, 171.0, None, 100_000),
    "repeat": (2, 90.0, 180.0, 10_000.0, 100_000),
    "today": (0, 0.0, 0.0, None, 3_000),
    "unpaid_column": (1, 2.0, 149.0, 3_000.0, 10_000),
}


def test_summary_counts_purchase_days_up_to_as_of() -> None:
    con = store_with_orders(hand_orders(), HAND_MEMBERS)
    rows = by_one_id(run_summary(DuckDBEngine(con), AS_OF))
    got = {
        one_id: (
            r["frequency"],
            r["recency_days"],
            r["age_days"],
            r["monetary_fen"],
            r["total_spend_fen"],
        )
        for one_id, r in rows.items()
    }
    assert got == HAND_SUMMARY  # no row for members without an order up to as_of


def test_summary_column_types() -> None:
    con = store_with_orders(hand_orders(), HAND_MEMBERS)
    table = run_summary(DuckDBEngine(con), AS_OF)
    assert table.schema.names == [
        "one_id",
        "frequency",
        "recency_days",
        "age_days",
        "monetary_fen",
        "total_spend_fen",
    ]
    assert [str(t) for t in table.schema.types] == [
        "string",
        "int64",
        "double",
        "double",
        "double",
        "int64",
    ]


@pytest.mark.spark
def test_summary_is_the_same_on_spark(spark_session: Any) -> None:
    con = store_with_orders(hand_orders(), HAND_MEMBERS)
    spark = SparkEngine(spark_session)
    for name in ("profiles", "identity_records", "orders", "catalog"):
        spark.register_arrow(name, con.execute(f"SELECT * FROM {name}").to_arrow_table())
    spark_rows = run_summary(spark, AS_OF).to_pylist()
    duck_rows = run_summary(DuckDBEngine(con), AS_OF).to_pylist()
    assert spark_rows == duck_rows
    assert len(spark_rows) == len(HAND_SUMMARY)


# --- CDNOW ----------------------------------------------------------------------------------


def cdnow_transactions() -> list[Order]:
    """CDNOW_sample.txt as orders: customer id (2nd column), day, dollars (to the fen)."""
    orders = []
    for line in (CDNOW / "CDNOW_sample.txt").read_text().splitlines():
        _, customer, day, _, dollars = line.split()
        when = datetime.strptime(day, "%Y%m%d") + timedelta(hours=12)
        orders.append(Order(str(int(customer)), when, round(float(dollars) * 100)))
    return orders


def read_csv(name: str) -> list[dict[str, str]]:
    with (CDNOW / name).open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def cdnow_summary() -> pa.Table:
    """The CDNOW sample through the member facts and the CLV summary as of 1997-09-30."""
    orders = cdnow_transactions()
    con = store_with_orders(orders, [o.one_id for o in orders])
    return run_summary(DuckDBEngine(con), CDNOW_END)


def test_summary_reproduces_the_published_cdnow_summary(cdnow_summary: pa.Table) -> None:
    ours = by_one_id(cdnow_summary)
    published = read_csv("cdnow_customers_summary.csv")
    assert len(ours) == len(published) == 2357
    mismatched = [
        row["ID"]
        for row in published
        if (
            ours[row["ID"]]["frequency"],
            round(ours[row["ID"]]["recency_days"] / 7, 2),
            round(ours[row["ID"]]["age_days"] / 7, 2),
        )
        != (int(row["frequency"]), float(row["recency"]), float(row["T"]))
    ]
    assert mismatched == []


def test_monetary_is_the_mean_of_the_repeat_days_as_cdnow_zbar(cdnow_summary: pa.Table) -> None:
    """zbar: the mean of the repeat purchase days' totals in dollars, rounded to the cent."""
    ours = by_one_id(cdnow_summary)
    far = []
    for row in read_csv("cdnow_customers_summary_with_transactions.csv"):
        monetary = ours[row["ID"]]["monetary_fen"]
        if int(row["x"]) == 0:
            assert monetary is None and float(row["zbar"]) == 0.0
        elif abs(monetary / 100 - float(row["zbar"])) > 0.005 + 1e-9:
            far.append(row["ID"])
    assert far == []


def cdnow_weeks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = read_csv("cdnow_customers_summary.csv")
    x, t_x, age = (np.array([float(r[k]) for r in rows]) for k in ("frequency", "recency", "T"))
    return x, t_x, age


@pytest.fixture(scope="module")
def cdnow_fit() -> clv.BgNbdParams:
    return clv.fit_bgnbd(*cdnow_weeks())


def test_bgnbd_fit_recovers_the_published_cdnow_parameters(cdnow_fit: clv.BgNbdParams) -> None:
    fitted = (cdnow_fit.r, cdnow_fit.alpha, cdnow_fit.a, cdnow_fit.b)
    assert [round(v, 3) for v in fitted] == [0.243, 4.414, 0.793, 2.426]
    assert round(cdnow_fit.log_likelihood, 1) == -9582.4
    assert cdnow_fit.customers == 2357


def test_conditional_expectation_matches_the_published_worked_example(
    cdnow_fit: clv.BgNbdParams,
) -> None:
    """FHL 2005 (Hardie's spreadsheet): a customer with x = 2, t_x = 30.43, T = 38.86 makes
    1.226 purchases in the next 39 weeks."""
    one = (np.array([2.0]), np.array([30.43]), np.array([38.86]))
    for params in (PUBLISHED_BGNBD, cdnow_fit):
        assert abs(float(clv.expected_purchases(params, 39.0, *one)[0]) - 1.226) < 5e-4


def test_gamma_gamma_fit_recovers_the_published_cdnow_parameters(
    cdnow_summary: pa.Table,
) -> None:
    """Fader & Hardie 2013 fit the exact spend: the SQL summary's monetary, in dollars."""
    x = cdnow_summary.column("frequency").to_numpy().astype(float)
    dollars = cdnow_summary.column("monetary_fen").to_numpy(zero_copy_only=False) / 100
    fitted = clv.fit_gamma_gamma(x, dollars)
    assert fitted.customers == 946
    assert [round(v, 2) for v in (fitted.p, fitted.q, fitted.gamma)] == [6.25, 3.74, 15.44]
    assert round(fitted.log_likelihood, 1) == -4055.9


# --- closed-form properties -----------------------------------------------------------------


def test_p_alive_is_one_without_repeat_purchases_and_falls_with_silence() -> None:
    x = np.array([0.0, 0.0, 3.0, 3.0, 3.0])
    t_x = np.array([0.0, 0.0, 30.0, 30.0, 30.0])
    age = np.array([1.0, 38.0, 30.0, 40.0, 80.0])
    alive = clv.p_alive(PUBLISHED_BGNBD, x, t_x, age)
    assert alive[:2].tolist() == [1.0, 1.0]
    assert 1.0 > alive[2] > alive[3] > alive[4] > 0.0


def test_expected_purchases_increase_with_the_horizon() -> None:
    x, t_x, age = cdnow_weeks()
    horizons = [1.0, 4.0, 13.0, 26.0, 52.0, 104.0]
    values = np.array([clv.expected_purchases(PUBLISHED_BGNBD, h, x, t_x, age) for h in horizons])
    assert (np.diff(values, axis=0) > 0).all()


def test_grouped_weighted_fit_equals_the_row_by_row_fit() -> None:
    x, t_x, age = cdnow_weeks()
    row_by_row = clv.fit_bgnbd(x, t_x, age, group=False)
    grouped = clv.group_rows(x, t_x, age)
    assert len(grouped.weights) < len(x)  # identical rows were grouped
    weighted = clv.fit_bgnbd(*grouped.columns, weights=grouped.weights, group=False)
    for field in ("r", "alpha", "a", "b", "log_likelihood"):
        assert getattr(weighted, field) == pytest.approx(getattr(row_by_row, field), rel=1e-6)
    assert weighted.customers == row_by_row.customers == 2357
    ll_rows = clv.bgnbd_log_likelihood(PUBLISHED_BGNBD, x, t_x, age)
    gx, gt_x, gage = grouped.columns
    ll_grouped = clv.bgnbd_log_likelihood(PUBLISHED_BGNBD, gx, gt_x, gage, grouped.weights)
    assert ll_grouped == pytest.approx(ll_rows, rel=1e-12)


def test_group_rows_matches_numpy_unique_rows() -> None:
    rng = np.random.default_rng(3)
    days = rng.integers(0, 40, (5000, 3)).astype(float)  # whole numbers: no sort per column
    weeks = days / 7  # fractions: ranked by sorting
    for rows in (days, weeks, np.column_stack([days[:, 0], weeks[:, 1]])):
        expected, counts = np.unique(rows, axis=0, return_counts=True)
        grouped = clv.group_rows(*rows.T)
        assert np.array_equal(np.column_stack(grouped.columns), expected)
        assert np.array_equal(grouped.weights, counts)
        assert np.array_equal(np.column_stack(grouped.columns)[grouped.inverse], rows)


def test_analytic_gradients_match_finite_differences() -> None:
    x, t_x, age = cdnow_weeks()
    bg_data = clv._BgNbdData.of(x, t_x, age, None, group=True)
    theta = np.log([0.3, 4.0, 0.9, 2.0])

    def bg_ll(t: np.ndarray) -> float:
        return clv._bgnbd_terms(clv._params4(np.exp(t)), bg_data, gradient=False)[0]

    analytic = clv._bgnbd_terms(clv._params4(np.exp(theta)), bg_data, gradient=True)[1]
    assert analytic == pytest.approx(optimize.approx_fprime(theta, bg_ll, 1e-7), rel=1e-4)

    repeat = x > 0
    spend = np.linspace(5.0, 80.0, int(repeat.sum()))
    gg_data = clv._GammaGammaData.of(x[repeat], spend, np.ones(int(repeat.sum())))
    theta = np.log([5.0, 3.0, 12.0])

    def gg_ll(t: np.ndarray) -> float:
        return clv._gg_terms(clv._params3(np.exp(t)), gg_data, gradient=False)[0]

    analytic = clv._gg_terms(clv._params3(np.exp(theta)), gg_data, gradient=True)[1]
    assert analytic == pytest.approx(optimize.approx_fprime(theta, gg_ll, 1e-7), rel=1e-4)


def test_beta_gauss_nodes_reproduce_beta_moments() -> None:
    for a, b in [(0.793, 2.426), (0.3, 0.7), (5.0, 11.0), (1.5e6, 3.3e6)]:
        nodes, weights = clv.beta_gauss_nodes(a, b, 32)
        mean = a / (a + b)
        variance = a * b / ((a + b) ** 2 * (a + b + 1))
        assert ((nodes > 0) & (nodes < 1)).all()
        assert float(weights @ nodes) == pytest.approx(mean, rel=1e-10)
        assert float(weights @ (nodes - mean) ** 2) == pytest.approx(variance, rel=1e-6)


def test_expectation_if_alive_by_quadrature_equals_the_closed_form() -> None:
    x = np.array([0.0, 1.0, 2.0, 7.0, 30.0])
    age = np.array([38.86, 20.0, 38.86, 30.0, 38.0])
    for horizon in (4.0, 39.0, 52.0):
        closed = clv.expected_purchases_if_alive(PUBLISHED_BGNBD, horizon, x, age)
        quadrature = clv._if_alive_by_quadrature(PUBLISHED_BGNBD, horizon, x, age)
        assert quadrature == pytest.approx(closed, rel=1e-9)


def test_near_fixed_dropout_probability_tends_to_the_fixed_p_expectation() -> None:
    """a, b very large (the demo chain fits this): p ~ a / (a + b) for everyone, where
    E[Y(t) | alive] = (1 - (1 + p t / (alpha + T))^-(r + x)) / p."""
    params = clv.BgNbdParams(r=0.5, alpha=6.2, a=1.5e6, b=3.3e6)
    p = params.a / (params.a + params.b)
    x = np.array([0.0, 1.0, 3.0, 20.0, 80.0])
    age = np.array([10.0, 40.0, 100.0, 150.0, 150.0])
    for horizon in (13.0, 52.0, 200.0):
        got = clv.expected_purchases_if_alive(params, horizon, x, age)
        limit = -np.expm1(-(params.r + x) * np.log1p(p * horizon / (params.alpha + age))) / p
        assert np.isfinite(got).all()
        assert got == pytest.approx(limit, rel=1e-4)


def test_too_little_data_to_fit_is_a_clear_error() -> None:
    x = np.array([0.0, 1.0, 2.0])
    t_x = np.array([0.0, 5.0, 9.0])
    age = np.array([10.0, 10.0, 10.0])
    with pytest.raises(clv.InsufficientData, match="at least 20 customers"):
        clv.fit_bgnbd(x, t_x, age, min_customers=20)
    zeros = np.zeros(50)
    with pytest.raises(clv.InsufficientData, match="repeat customer"):
        clv.fit_bgnbd(zeros, zeros, np.full(50, 10.0))
    with pytest.raises(clv.InsufficientData, match="Gamma-Gamma needs at least 10"):
        clv.fit_gamma_gamma(x, np.array([np.nan, 100.0, 50.0]), min_customers=10)
    heavy_tailed = clv.GammaGammaParams(p=2.0, q=0.9, gamma=10.0)
    with pytest.raises(clv.InsufficientData, match="mean spend is unbounded"):
        clv.expected_average_spend(heavy_tailed, x, np.array([np.nan, 100.0, 50.0]))
    with pytest.raises(InputError, match="inconsistent"):
        clv.fit_bgnbd(np.array([1.0]), np.array([12.0]), np.array([10.0]))


# --- the scores columns ---------------------------------------------------------------------


def summary_table(rows: list[tuple[str, int, float, float, float | None]]) -> pa.Table:
    names = ("one_id", "frequency", "recency_days", "age_days", "monetary_fen")
    types = (pa.string(), pa.int64(), pa.float64(), pa.float64(), pa.float64())
    return pa.table(
        {
            n: pa.array([r[i] for r in rows], t)
            for i, (n, t) in enumerate(zip(names, types, strict=True))
        }
    )


SPEND = clv.GammaGammaParams(p=6.25, q=3.74, gamma=1544.0)  # CDNOW, in fen


def test_predict_table_has_the_scores_clv_columns_in_days_and_fen() -> None:
    summary = summary_table(
        [("new", 0, 0.0, 272.0, None), ("c1", 2, 213.0, 272.0, 2235.0), ("c2", 1, 12.0, 200.0, 0.0)]
    )
    table = clv.predict_table(summary, PUBLISHED_BGNBD, SPEND)
    assert tuple(table.schema.names) == clv.SCORE_COLUMNS
    assert table.schema == clv.SCORE_SCHEMA
    rows = by_one_id(table)
    c1 = rows["c1"]
    weeks = (np.array([2.0]), np.array([213 / 7]), np.array([272 / 7]))
    assert c1["expected_purchases_365"] == pytest.approx(
        float(clv.expected_purchases(PUBLISHED_BGNBD, 365 / 7, *weeks)[0]), rel=1e-12
    )
    assert c1["p_alive"] == pytest.approx(float(clv.p_alive(PUBLISHED_BGNBD, *weeks)[0]))
    assert (c1["clv_frequency"], c1["clv_recency_days"], c1["clv_age_days"]) == (2, 213.0, 272.0)
    # E(spend | x, zbar) = (p (gamma + x zbar)) / (p x + q - 1); the population mean at x = 0
    assert c1["expected_avg_spend_fen"] == pytest.approx(
        6.25 * (1544.0 + 2 * 2235.0) / (6.25 * 2 + 3.74 - 1)
    )
    assert rows["new"]["expected_avg_spend_fen"] == pytest.approx(SPEND.population_mean)
    assert rows["new"]["p_alive"] == 1.0
    for row in rows.values():
        assert 0 < row["expected_purchases_90"] < row["expected_purchases_180"]
        assert row["expected_purchases_180"] < row["expected_purchases_365"]
        for h in clv.HORIZONS_DAYS:
            assert row[f"expected_value_{h}_fen"] == pytest.approx(
                row[f"expected_purchases_{h}"] * row["expected_avg_spend_fen"]
            )
        # discounted at 10% a year: less than the undiscounted year, more than all of it a
        # year out
        assert row["expected_value_365_fen"] / 1.1 < row["clv_12m_fen"]
        assert row["clv_12m_fen"] < row["expected_value_365_fen"]


def test_undiscounted_12_month_clv_is_the_expected_value_of_the_year() -> None:
    summary = summary_table([("c1", 2, 213.0, 272.0, 2235.0), ("c2", 0, 0.0, 30.0, None)])
    table = clv.predict_table(summary, PUBLISHED_BGNBD, SPEND, discount_rate_annual=0.0)
    for row in table.to_pylist():
        assert row["clv_12m_fen"] == pytest.approx(row["expected_value_365_fen"], rel=1e-12)


def test_fit_and_predict_on_the_cdnow_summary(cdnow_summary: pa.Table) -> None:
    table, parameters = clv.fit_and_predict(cdnow_summary)
    assert table.num_rows == 2357
    json.dumps(parameters)  # JSON-able for compute_runs.parameters
    assert parameters["time_unit"] == "week"
    bg, gg = parameters["bgnbd"], parameters["gamma_gamma"]
    assert [round(bg[k], 2) for k in ("r", "alpha", "a", "b")] == [0.24, 4.41, 0.79, 2.43]
    assert round(gg["gamma"] / 100, 2) == 15.44  # fitted in fen
    assert (bg["customers"], gg["customers"]) == (2357, 946)
    assert parameters["discount_rate_monthly"] == pytest.approx(1.1 ** (1 / 12) - 1)
    assert parameters["mean_dropout_probability"] == pytest.approx(bg["a"] / (bg["a"] + bg["b"]))


def test_one_rate_and_no_dropout_predicts_that_rate() -> None:
    """Everyone buys at 0.01 a day and never leaves: the fit runs to its edges (r and alpha
    huge, a near 0) and every prediction is still finite, near 3.65 purchases a year."""
    rng = np.random.default_rng(1)
    n = 3000
    age = rng.integers(100, 1000, n).astype(float)
    x = rng.poisson(0.01 * age)
    t_x = np.where(x > 0, np.floor(age * rng.beta(np.maximum(x, 1), 1)), 0.0)
    spend = np.where(x > 0, rng.gamma(20.0, 1000.0, n), np.nan)
    summary = pa.table(
        {
            "one_id": [f"c{i}" for i in range(n)],
            "frequency": pa.array(x, pa.int64()),
            "recency_days": t_x,
            "age_days": age,
            "monetary_fen": pa.array(spend, from_pandas=True),
        }
    )
    table, parameters = clv.fit_and_predict(summary)
    assert parameters["mean_dropout_probability"] < 1e-6
    yearly = table.column("expected_purchases_365").to_numpy()
    assert np.all(np.abs(yearly - 3.65) < 0.365)
    assert table.column("p_alive").to_numpy().min() > 0.999
    assert np.isfinite(table.column("clv_12m_fen").to_numpy()).all()
    # At the bound a = e^-20 the quadrature nodes round to 0: the no-dropout limit (r+x) s.
    edge = clv.BgNbdParams(r=1e7, alpha=2e8, a=math.exp(-20), b=1040816.0)
    assert (clv.beta_gauss_nodes(edge.a, edge.b + 7.0, clv.QUADRATURE_NODES)[0] <= 0).any()
    few_x, few_age = np.array([0.0, 7.0, 9.0]), np.array([20.0, 80.0, 140.0])
    got = clv._if_alive_by_quadrature(edge, 52.0, few_x, few_age)
    assert got == pytest.approx((edge.r + few_x) * 52.0 / (edge.alpha + few_age), rel=1e-6)


def test_config_rejects_a_bad_discount_rate() -> None:
    with pytest.raises(ValueError, match="discount_rate_annual"):
        clv.ClvConfig(discount_rate_annual=1.5)


# --- the demo chain: calibration and holdout ------------------------------------------------

DEMO_MEMBERS = 1500
DEMO_END = datetime(2026, 11, 19, 15, 59, 59)  # end of the demo's last day (China) before "today"


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The demo chain's orders and member master through import, OneID and profiles."""
    from mecdp.collect.importer import import_file
    from mecdp.collect.mapping import load_mapping
    from mecdp.collect.sources import ensure_source
    from mecdp.config import Settings, init_workspace
    from mecdp.demo.generator import generate_chain
    from mecdp.demo.pipeline import load_reference_data
    from mecdp.identity.service import resolve_identities
    from mecdp.profiles.service import build_profiles
    from mecdp.store import open_store

    root = tmp_path_factory.mktemp("clv_demo")
    settings = Settings(workspace=root / "ws")
    init_workspace(settings)
    store = open_store(None)
    chain = generate_chain(root / "demo", members=DEMO_MEMBERS, seed=5)
    load_reference_data(store, chain)
    cur = store.cursor()
    for f in chain.files:
        if f.mapping.endswith("_orders") or f.mapping == "member_master":
            kind = load_mapping(f.mapping, settings.workspace).kind
            ensure_source(cur, f.source, channel=f.channel, kind=kind, mapping=f.mapping)
            import_file(store, settings, f.path, source_id=f.source)
    shutil.rmtree(root / "demo")
    resolve_identities(store, workspace=settings.workspace, match=False)
    build_profiles(store, workspace=settings.workspace)
    try:
        yield store
    finally:
        store.close()


@pytest.mark.slow
def test_demo_chain_calibration_predicts_the_holdout(demo_store: Any) -> None:
    """Fit on the first ~2/3 of the order history, predict each member's repeat purchase days
    in the rest, compare with what they did.

    Measured (1,500 members, seeds 5 / 11 / 23): predicted / actual 1.14 / 1.27 / 1.31,
    correlation 0.52 / 0.45 / 0.55, MAE 0.50 / 0.60 / 0.47 against 0.66 / 0.71 / 0.57 for the
    flat mean. The excess is mostly customers with one purchase day: BG/NBD keeps them alive
    (P(alive) = 1 at x = 0) while the demo's one-time triers (尝鲜) never come back. Bounds
    leave room for that and still fail a broken model (wrong time unit, inverted P(alive)).
    """
    cur = demo_store.cursor()
    engine = DuckDBEngine(cur)
    row = cur.execute(
        "SELECT CAST(quantile_disc(ordered_at, 2 / 3) AS DATE) FROM orders "
        f"WHERE ordered_at <= TIMESTAMP '{DEMO_END}'"
    ).fetchone()
    assert row is not None
    holdout_from: date = row[0]
    calibration_end = datetime.combine(holdout_from, datetime.min.time()) - timedelta(seconds=1)
    calibration = run_summary(engine, calibration_end)
    table, parameters = clv.fit_and_predict(calibration)

    after = run_summary(engine, DEMO_END)  # cm_orders now holds the whole history
    actual_by_id = dict(
        cur.execute(
            f"SELECT one_id, count(DISTINCT order_day) FROM {ORDERS} "
            f"WHERE order_day >= DATE '{holdout_from}' GROUP BY one_id"
        ).fetchall()
    )
    ids = calibration.column("one_id").to_pylist()
    actual = np.array([actual_by_id.get(i, 0) for i in ids], dtype=float)
    holdout_days = (DEMO_END.date() - calibration_end.date()).days
    bg = clv.BgNbdParams(**parameters["bgnbd"])
    unit = bg.unit_days
    predicted = clv.expected_purchases(
        bg,
        holdout_days / unit,
        calibration.column("frequency").to_numpy().astype(float),
        calibration.column("recency_days").to_numpy() / unit,
        calibration.column("age_days").to_numpy() / unit,
    )
    one_day = calibration.column("frequency").to_numpy() == 0
    mae = float(np.abs(predicted - actual).mean())
    correlation = float(np.corrcoef(predicted, actual)[0, 1])
    total_ratio = float(predicted.sum() / actual.sum())
    flat_mae = float(np.abs(actual - actual.mean()).mean())  # predicting the mean for all
    # The figures the brief asks to report (visible with -s).
    print(  # noqa: T201
        f"\ndemo chain ({DEMO_MEMBERS} members): calibration to {calibration_end:%Y-%m-%d}, "
        f"holdout {holdout_days} days; {len(ids)} customers, {after.num_rows} by the end\n"
        f"BG/NBD (weeks) r={bg.r:.3f} alpha={bg.alpha:.3f} a={bg.a:.4g} b={bg.b:.4g}; "
        f"Gamma-Gamma p={parameters['gamma_gamma']['p']:.3f} "
        f"q={parameters['gamma_gamma']['q']:.3f}\n"
        f"repeat purchase days in the holdout: predicted {predicted.sum():.1f}, "
        f"actual {actual.sum():.0f} (ratio {total_ratio:.3f}); MAE {mae:.3f} (flat mean "
        f"{flat_mae:.3f}); correlation {correlation:.3f}; x = 0: predicted "
        f"{predicted[one_day].sum():.1f}, actual {actual[one_day].sum():.0f}; x > 0: predicted "
        f"{predicted[~one_day].sum():.1f}, actual {actual[~one_day].sum():.0f}"
    )
    assert 0.75 <= total_ratio <= 1.35
    assert correlation > 0.3
    assert mae < flat_mae
    assert table.num_rows == len(ids)
    assert np.isfinite(table.column("clv_12m_fen").to_numpy()).all()
