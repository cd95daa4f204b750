"""Customer lifetime value: BG/NBD for repeat purchases and P(alive), Gamma-Gamma for spend.

Three parts, each usable alone:

* `summary_steps(as_of)`: SQL (DuckDB dialect, runs on Spark through the engine seam) from the
  member facts' ``cm_orders`` to the per-member summary the models read, table
  ``cm_clv_summary``. A *purchase* is a distinct purchase day (several orders on one day are
  one purchase), as in the CDNOW convention the published parameters use.
* The models in plain numpy/scipy: closed-form log-likelihoods (Fader, Hardie & Lee 2005,
  "Counting your customers the easy way", Marketing Science 24(2); Fader & Hardie 2013, "The
  Gamma-Gamma model of monetary value"), maximum-likelihood fits over log parameters with
  analytic gradients, identical rows grouped first (a row weight), and the predictions.
* `predict_table` / `fit_and_predict`: from the summary table to the CLV columns of
  ``scores`` (migration 0006), plus JSON-able parameters for ``compute_runs.parameters``.

Time unit: the models are fitted in weeks (``FIT_UNIT_DAYS = 7``), the unit of the published
parameters, so fitted values compare with the literature (CDNOW r = 0.243, alpha = 4.414,
a = 0.793, b = 2.426); every input and output of the table functions is in days. The fits
rescale time and money internally to order one, so neither unit affects convergence.

Example:
    >>> import numpy as np
    >>> bg = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> round(float(expected_purchases(bg, 39.0, np.array([2]), np.array([30.43]),
    ...                                np.array([38.86]))[0]), 3)
    1.226
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field
from scipy import linalg, optimize, special

from mecdp.compute.facts import ORDERS, local_day, ts_literal
from mecdp.errors import InputError
from mecdp.store.engine import SqlStep

Array = npt.NDArray[np.float64]

SUMMARY = "cm_clv_summary"
PURCHASE_DAYS = "cm_clv_purchase_days"
FIT_UNIT_DAYS = 7.0  # models are fitted in weeks (see the module docstring)
HORIZONS_DAYS = (90, 180, 365)
MONTHS_PER_YEAR = 12
DAYS_PER_MONTH = 365.0 / MONTHS_PER_YEAR

SCORE_COLUMNS = (
    "one_id",
    "clv_frequency",
    "clv_recency_days",
    "clv_age_days",
    "p_alive",
    "expected_purchases_90",
    "expected_purchases_180",
    "expected_purchases_365",
    "expected_avg_spend_fen",
    "expected_value_90_fen",
    "expected_value_180_fen",
    "expected_value_365_fen",
    "clv_12m_fen",
)
SCORE_SCHEMA = pa.schema(
    [("one_id", pa.string()), ("clv_frequency", pa.int64())]
    + [(name, pa.float64()) for name in SCORE_COLUMNS[2:]]
)


class InsufficientData(InputError):
    """The data cannot support a CLV model: too few (repeat) customers, a fit that does not
    converge, or a spend distribution without a finite mean. The run goes on without CLV."""

    code = "insufficient_data"


class ClvConfig(BaseModel):
    """CLV settings (the ``clv`` section of the layering config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    discount_rate_annual: float = Field(
        default=0.10, ge=0.0, lt=1.0, description="annual discount rate of the 12-month CLV"
    )
    min_customers: int = Field(
        default=20, ge=2, description="fewest customers with a purchase to fit BG/NBD"
    )
    min_repeaters: int = Field(
        default=10, ge=2, description="fewest repeat customers with spend to fit Gamma-Gamma"
    )


# --- the summary in SQL ---------------------------------------------------------------------


def summary_steps(as_of: datetime) -> list[SqlStep]:
    """Per member with at least one order in ``cm_orders``: the BG/NBD and Gamma-Gamma inputs.

    ``cm_clv_summary`` columns (one row per one_id):

    * ``frequency`` BIGINT: repeat purchase days, x = distinct purchase days - 1;
    * ``recency_days`` DOUBLE: t_x, days from the first to the last purchase day;
    * ``age_days`` DOUBLE: T, days from the first purchase day to the day of `as_of`
      (days are calendar days in China, as ``order_day`` is);
    * ``monetary_fen`` DOUBLE: mean spend per repeat purchase day (the first day left out;
      NULL when x = 0), the Gamma-Gamma input;
    * ``total_spend_fen`` BIGINT: all paid spend.

    Every non-void order counts as a purchase, zero-paid ones too (CDNOW counts its $0
    transactions); a day's spend is the sum of its orders' paid amounts.
    """
    as_of_day = local_day(ts_literal(as_of))
    days = f"""
SELECT one_id, order_day, CAST(sum(paid_fen) AS BIGINT) AS spend_fen
FROM {ORDERS}
GROUP BY one_id, order_day
"""
    summary = f"""
SELECT one_id,
       CAST(count(*) - 1 AS BIGINT) AS frequency,
       CAST(date_diff('day', min(order_day), max(order_day)) AS DOUBLE) AS recency_days,
       CAST(date_diff('day', min(order_day), {as_of_day}) AS DOUBLE) AS age_days,
       CASE WHEN count(*) > 1
            THEN CAST(sum(spend_fen) - arg_min(spend_fen, order_day) AS DOUBLE)
                 / (count(*) - 1)
       END AS monetary_fen,
       CAST(sum(spend_fen) AS BIGINT) AS total_spend_fen
FROM {PURCHASE_DAYS}
GROUP BY one_id
"""
    return [SqlStep(days, PURCHASE_DAYS), SqlStep(summary, SUMMARY)]


# --- fitted parameters ----------------------------------------------------------------------


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD: purchase rate ~ Gamma(r, alpha) per `unit_days`; dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = math.nan
    customers: int = 0
    unit_days: float = FIT_UNIT_DAYS


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma: spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, gamma)."""

    p: float
    q: float
    gamma: float
    log_likelihood: float = math.nan
    customers: int = 0

    @property
    def population_mean(self) -> float:
        """Mean spend per purchase over the population: p gamma / (q - 1)."""
        return self.p * self.gamma / (self.q - 1.0)


# --- grouping identical rows ----------------------------------------------------------------


@dataclass(frozen=True)
class GroupedRows:
    """The distinct rows of some columns, each one's total weight, and row -> distinct row."""

    columns: list[Array]
    weights: Array
    inverse: npt.NDArray[np.intp]


def group_rows(*columns: Array, weights: Array | None = None) -> GroupedRows:
    """Group identical rows of `columns` (NaN-free), summing `weights` (count if None).

    Distinct rows come out in lexicographic order. Each column is ranked on its own (whole
    numbers are their own rank) and the ranks combined into one integer key, so only 1-D
    sorts run (np.unique over rows is ~10x slower).
    """
    arrays = [np.asarray(c, dtype=np.float64) for c in columns]
    key = np.zeros(len(arrays[0]), dtype=np.int64)
    for column in arrays:
        slots, rank = _ranks(column, max_span=4 * len(column) + 1024)  # bounded memory
        size = len(slots)
        if int(key.max(initial=0)) >= (2**62) // size:
            key = np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)
        key = key * size + rank
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    w = np.ones(len(key)) if weights is None else np.asarray(weights, dtype=np.float64)
    totals = np.bincount(inverse, weights=w, minlength=len(first)).astype(np.float64)
    picked = [column[first] for column in arrays]
    return GroupedRows(picked, totals, inverse)


def _ranks(column: Array, max_span: int) -> tuple[Array, npt.NDArray[np.int64]]:
    """(slots, rank): ordered slot values and each value's slot. Whole numbers spanning fewer
    than `max_span` are their own rank (value - min; some slots may be empty), with no sort."""
    low, high = (float(column.min()), float(column.max())) if len(column) else (0.0, 0.0)
    if high - low < max_span and np.array_equal(column, np.floor(column)):
        slots = low + np.arange(int(high - low) + 1, dtype=np.float64)
        return slots, (column - low).astype(np.int64)
    distinct, inverse = np.unique(column, return_inverse=True)
    return distinct, inverse.reshape(-1).astype(np.int64)


def _per_x(x: Array, weights: Array) -> tuple[Array, npt.NDArray[np.int64], Array]:
    """Slots of x (the likelihood terms in x alone are computed once per slot), each row's
    slot, and the total weight per slot (0 for an x no row has)."""
    values, index = _ranks(x, max_span=max(len(x), 1024))
    per_x = np.bincount(index, weights=weights, minlength=len(values)).astype(np.float64)
    return values, index, per_x


# --- BG/NBD ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BgNbdData:
    """Rows (grouped by (x, t_x, T) or not) with what every evaluation reuses."""

    x_values: Array  # distinct x
    x_index: npt.NDArray[np.int64]  # row -> position in x_values
    weight_per_x: Array  # total weight of each distinct x
    x: Array
    t_x: Array
    age: Array
    weights: Array

    @classmethod
    def of(cls, x: Array, t_x: Array, age: Array, weights: Array | None, group: bool) -> _BgNbdData:
        if group:
            grouped = group_rows(x, t_x, age, weights=weights)
            (x, t_x, age), w = grouped.columns, grouped.weights
        else:
            w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
        x_values, x_index, per_x = _per_x(x, w)
        return cls(x_values, x_index, per_x, x, t_x, age, w)


def _bgnbd_terms(
    params: tuple[float, float, float, float], d: _BgNbdData, gradient: bool
) -> tuple[float, Array]:
    """Weighted log-likelihood and its gradient in (log r, log alpha, log a, log b).

    Per row: log L = lg(x) + r log alpha + logsumexp(u, v), with
    u = log B(a, b+x) - log B(a, b) - (r+x) log(alpha+T) and, for x > 0,
    v = log B(a+1, b+x-1) - log B(a, b) - (r+x) log(alpha+t_x). Terms in x alone are
    computed once per distinct x and summed with that x's total weight.
    """
    r, alpha, a, b = params
    xv, i, w, w_x = d.x_values, d.x_index, d.weights, d.weight_per_x
    total = float(w_x.sum())
    repeat_v = xv > 0
    bx1 = np.where(repeat_v, b + xv - 1.0, 1.0)  # b + x - 1, only used where x > 0
    lg = special.gammaln(r + xv) - special.gammaln(r)
    beta_ab = special.betaln(a, b)
    u_x = special.betaln(a, b + xv) - beta_ab
    v_x = np.where(repeat_v, special.betaln(a + 1.0, bx1) - beta_ab, -np.inf)
    rx = r + d.x
    log_age = np.log(alpha + d.age)
    log_recency = np.log(alpha + d.t_x)
    u = u_x[i] - rx * log_age
    v = v_x[i] - rx * log_recency  # -inf where x = 0
    diff = v - u
    small = np.exp(-np.abs(diff))  # exp(-|v - u|), 0 where x = 0
    lse = np.maximum(u, v) + np.log1p(small)
    log_alpha = math.log(alpha)
    ll = float(_dot(w_x, lg) + total * r * log_alpha + _dot(w, lse))
    if not gradient:
        return ll, np.zeros(4)
    share = 1.0 / (1.0 + small)
    pi_v = np.where(diff > 0, share, small * share)  # weight of the "dropped at t_x" branch
    w_pv = w * pi_v
    w_pu = w - w_pv
    dr_x = special.digamma(r + xv) - special.digamma(r)
    d_r = _dot(w_x, dr_x) + total * log_alpha - _dot(w_pu, log_age) - _dot(w_pv, log_recency)
    d_alpha = (
        total * r / alpha
        - _dot(w_pu * rx, 1.0 / (alpha + d.age))
        - _dot(w_pv * rx, 1.0 / (alpha + d.t_x))
    )
    psi_ab = special.digamma(a + b)
    d_a = _dot(w_x, psi_ab - special.digamma(a + b + xv)) + float(w_pv.sum()) / a
    # d/db: dv/db per x; du/db = dv/db + 1/(b+x-1) for x > 0; u is flat in b at x = 0.
    dv_x = np.where(
        repeat_v,
        special.digamma(bx1) - special.digamma(a + b + xv) - special.digamma(b) + psi_ab,
        0.0,
    )
    w_pu_x = np.bincount(i, weights=w_pu, minlength=len(xv))
    d_b = _dot(w_x, dv_x) + _dot(w_pu_x.astype(np.float64), np.where(repeat_v, 1.0 / bx1, 0.0))
    return ll, np.array([r * d_r, alpha * d_alpha, a * d_a, b * d_b])


def bgnbd_log_likelihood(
    params: BgNbdParams,
    x: Array,
    t_x: Array,
    age: Array,
    weights: Array | None = None,
) -> float:
    """Total BG/NBD log-likelihood of the rows (time in the parameters' unit)."""
    x, t_x, age = _as_arrays(x, t_x, age)
    data = _BgNbdData.of(x, t_x, age, weights, group=False)
    return _bgnbd_terms((params.r, params.alpha, params.a, params.b), data, gradient=False)[0]


def fit_bgnbd(
    x: Array,
    t_x: Array,
    age: Array,
    *,
    weights: Array | None = None,
    unit_days: float = FIT_UNIT_DAYS,
    group: bool = True,
    min_customers: int = 2,
) -> BgNbdParams:
    """Maximum-likelihood BG/NBD from frequency x, recency t_x and age T (in `unit_days`).

    Identical rows are grouped first (`group=False` fits row by row: same answer, slower).
    """
    x, t_x, age = _as_arrays(x, t_x, age)
    _check_summary(x, t_x, age)
    n = _require_customers(
        x, weights, min_customers, "BG/NBD", "customers with a purchase", "clv.min_customers"
    )
    repeat = x > 0 if weights is None else (x > 0) & (np.asarray(weights) > 0)
    if not repeat.any():
        raise InsufficientData(
            "BG/NBD needs at least one repeat customer (frequency > 0); every customer "
            "bought on one day only",
            field="frequency",
            rule="clv.repeaters",
        )
    # Time rescaled to order one: alpha scales with time, r, a, b do not.
    scale = float(np.mean(age)) or 1.0
    data = _BgNbdData.of(x, t_x / scale, age / scale, weights, group)
    total = float(np.sum(data.weights))

    def objective(theta: Array) -> tuple[float, Array]:
        ll, grad = _bgnbd_terms(_params4(np.exp(theta)), data, gradient=True)
        return -ll / total, -grad / total

    theta = _minimise(objective, np.log([1.0, 1.0, 1.0, 1.0]), "BG/NBD")
    r, alpha_scaled, a, b = (float(v) for v in np.exp(theta))
    fitted = BgNbdParams(r, alpha_scaled * scale, a, b, unit_days=unit_days)
    ll = bgnbd_log_likelihood(fitted, x, t_x, age, weights)
    return BgNbdParams(fitted.r, fitted.alpha, a, b, ll, n, unit_days)


def p_alive(params: BgNbdParams, x: Array, t_x: Array, age: Array) -> Array:
    """P(still active | x, t_x, T); 1 for customers with no repeat purchase."""
    x, t_x, age = _as_arrays(x, t_x, age)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    log_odds = np.full(len(x), -np.inf)
    log_odds[repeat] = (
        math.log(a)
        - np.log(b + x[repeat] - 1.0)
        + (r + x[repeat]) * (np.log(alpha + age[repeat]) - np.log(alpha + t_x[repeat]))
    )
    result: Array = special.expit(-log_odds)
    return result


def expected_purchases(
    params: BgNbdParams, horizon: float, x: Array, t_x: Array, age: Array
) -> Array:
    """Expected purchases in the next `horizon` (same unit as t_x and T), given the history:
    P(alive) times the expectation if alive (FHL 2005 eq. 10)."""
    x, t_x, age = _as_arrays(x, t_x, age)
    result: Array = p_alive(params, x, t_x, age) * expected_purchases_if_alive(
        params, horizon, x, age
    )
    return result


def expected_purchases_if_alive(params: BgNbdParams, horizon: float, x: Array, age: Array) -> Array:
    """Expected purchases in the next `horizon` of a customer still active after x repeat
    purchases by age T (it does not depend on t_x).

    Closed form (a+b+x-1)/(a-1) [1 - (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)], z = t/(alpha+T+t),
    first with the hypergeometric term in Euler's form (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)
    (stable for large x), then as written (stable for large a and b, the near-fixed dropout
    probability some data fit). Where scipy's 2F1 still overflows, the same
    expectation as an integral over the dropout probability p ~ Beta(a, b+x) by Gauss
    quadrature: E[(1 - (1 + p t/(alpha+T))^-(r+x)) / p].
    """
    x, age = _as_arrays(x, age)
    r, alpha, b = params.r, params.alpha, params.b
    # a = 1 is a removable singularity: a step of 1e-7 changes the value by ~3e-7 relative.
    a = params.a if abs(params.a - 1.0) > 1e-7 else 1.0 + 1e-7
    z = horizon / (alpha + age + horizon)
    c = a + b + x - 1.0
    with np.errstate(all="ignore"):
        lead = c / (a - 1.0)
        out: Array = lead * (
            1.0 - (1.0 - z) ** (a - 1.0) * special.hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
        )
        bad = ~np.isfinite(out) | (out < 0.0)
        if bad.any():
            zb, xb, cb = z[bad], x[bad], c[bad]
            out[bad] = (c[bad] / (a - 1.0)) * (
                1.0 - (1.0 - zb) ** (r + xb) * special.hyp2f1(r + xb, b + xb, cb, zb)
            )
            bad = ~np.isfinite(out) | (out < 0.0)
    if bad.any():
        out[bad] = _if_alive_by_quadrature(params, horizon, x[bad], age[bad])
    return out


QUADRATURE_NODES = 32


def _if_alive_by_quadrature(params: BgNbdParams, horizon: float, x: Array, age: Array) -> Array:
    """E[(1 - (1 + p s)^-(r+x)) / p], s = t/(alpha+T), p ~ Beta(a, b+x): Gauss-Jacobi."""
    out = np.empty(len(x))
    k_all = params.r + x
    s_all = horizon / (params.alpha + age)
    for xv in np.unique(x):
        at = x == xv
        nodes, weights = beta_gauss_nodes(params.a, params.b + xv, QUADRATURE_NODES)
        # Nodes that round to 0 (a near 0: almost nobody drops out) take the limit k s.
        zero = nodes <= 0.0
        p = np.where(zero, 1.0, nodes)[None, :]
        k, s = k_all[at][:, None], s_all[at][:, None]
        values = np.where(zero[None, :], k * s, -np.expm1(-k * np.log1p(p * s)) / p)
        out[at] = np.einsum("ij,j->i", values, weights)
    return out


def beta_gauss_nodes(a: float, b: float, n: int) -> tuple[Array, Array]:
    """Gauss quadrature for the Beta(a, b) distribution: n nodes in (0, 1), weights summing
    to 1 (Golub-Welsch on the Jacobi recurrence; stable for any a, b > 0)."""
    al, be = b - 1.0, a - 1.0  # Jacobi weight (1-u)^al (1+u)^be on [-1, 1], p = (1+u)/2
    k = np.arange(1, n, dtype=np.float64)
    s = 2.0 * k + al + be
    diag = np.empty(n)
    diag[0] = (be - al) / (al + be + 2.0)
    diag[1:] = (be - al) * (be + al) / (s * (s + 2.0))
    off = np.empty(n - 1)
    off[0] = math.sqrt(4.0 * (1.0 + al) * (1.0 + be) / ((2.0 + al + be) ** 2 * (3.0 + al + be)))
    kk, ss = k[1:], s[1:]
    off[1:] = np.sqrt(
        4.0 * kk * (kk + al) * (kk + be) * (kk + al + be) / (ss**2 * (ss + 1.0) * (ss - 1.0))
    )
    roots, vectors = linalg.eigh_tridiagonal(diag, off)
    nodes: Array = (1.0 + roots) / 2.0
    weights: Array = vectors[0] ** 2
    return nodes, weights / weights.sum()


# --- Gamma-Gamma ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _GammaGammaData:
    """Repeat customers' rows with the sums every evaluation reuses."""

    x_values: Array
    weight_per_x: Array
    x: Array
    monetary: Array
    weights: Array
    sum_wx: float  # sum of w x
    sum_wx_log_xz: float  # sum of w x (log z + log x)
    sum_w_log_z: float

    @classmethod
    def of(cls, x: Array, monetary: Array, weights: Array) -> _GammaGammaData:
        x_values, _, per_x = _per_x(x, weights)
        log_z = np.log(monetary)
        return cls(
            x_values,
            per_x,
            x,
            monetary,
            weights,
            float(_dot(weights, x)),
            float(_dot(weights * x, log_z + np.log(x))),
            float(_dot(weights, log_z)),
        )


def _gg_terms(
    params: tuple[float, float, float], d: _GammaGammaData, gradient: bool
) -> tuple[float, Array]:
    """Weighted Gamma-Gamma log-likelihood and its gradient in (log p, log q, log gamma).

    Per row: log L = lgamma(px+q) - lgamma(px) - lgamma(q) + q log gamma + (px-1) log z
    + px log x - (px+q) log(gamma + x z); the gamma-function terms once per distinct x.
    """
    p, q, g = params
    xv, w_x, w = d.x_values, d.weight_per_x, d.weights
    total = float(w_x.sum())
    pxv = p * xv
    lg = special.gammaln(pxv + q) - special.gammaln(pxv)
    log_gz = np.log(g + d.x * d.monetary)
    w_log_gz = w * log_gz
    sum_wx_log_gz = float(_dot(w_log_gz, d.x))
    sum_w_log_gz = float(w_log_gz.sum())
    ll = (
        float(_dot(w_x, lg))
        + total * (q * math.log(g) - float(special.gammaln(q)))
        + p * d.sum_wx_log_xz
        - d.sum_w_log_z
        - p * sum_wx_log_gz
        - q * sum_w_log_gz
    )
    if not gradient:
        return ll, np.zeros(3)
    psi = special.digamma(pxv + q)
    d_p = float(_dot(w_x * xv, psi - special.digamma(pxv))) + d.sum_wx_log_xz - sum_wx_log_gz
    d_q = float(_dot(w_x, psi)) + total * (math.log(g) - float(special.digamma(q)))
    d_q -= sum_w_log_gz
    inv_gz = 1.0 / (g + d.x * d.monetary)
    d_g = total * q / g - p * float(_dot(w * d.x, inv_gz)) - q * float(_dot(w, inv_gz))
    return ll, np.array([p * d_p, q * d_q, g * d_g])


def gamma_gamma_log_likelihood(
    params: GammaGammaParams, x: Array, monetary: Array, weights: Array | None = None
) -> float:
    """Total Gamma-Gamma log-likelihood of repeat customers (x > 0, mean spend > 0)."""
    x, monetary = _as_arrays(x, monetary)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    data = _GammaGammaData.of(x, monetary, w)
    return _gg_terms((params.p, params.q, params.gamma), data, gradient=False)[0]


def fit_gamma_gamma(
    x: Array,
    monetary: Array,
    *,
    weights: Array | None = None,
    group: bool = True,
    min_customers: int = 2,
) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma from repeat customers' x and mean repeat spend.

    Rows with x = 0 or a mean spend <= 0 carry no information on spend and are left out.
    """
    x, monetary = _as_arrays(x, monetary)
    keep = (x > 0) & np.isfinite(monetary) & (monetary > 0)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[keep]
    x, monetary = x[keep], monetary[keep]
    n = _require_customers(
        x, w, min_customers, "Gamma-Gamma", "repeat customers with spend", "clv.min_repeaters"
    )
    # Money rescaled to order one: gamma scales with money, p and q do not.
    scale = float(np.mean(monetary))
    if group:
        grouped = group_rows(x, monetary / scale, weights=w)
        (gx, gz), gw = grouped.columns, grouped.weights
    else:
        gx, gz, gw = x, monetary / scale, (np.ones(len(x)) if w is None else w)
    data = _GammaGammaData.of(gx, gz, gw)
    total = float(np.sum(gw))

    def objective(theta: Array) -> tuple[float, Array]:
        ll, grad = _gg_terms(_params3(np.exp(theta)), data, gradient=True)
        return -ll / total, -grad / total

    theta = _minimise(objective, np.log([1.0, 2.0, 1.0]), "Gamma-Gamma")
    p, q, g_scaled = (float(v) for v in np.exp(theta))
    fitted = GammaGammaParams(p, q, g_scaled * scale)
    ll = gamma_gamma_log_likelihood(fitted, x, monetary, w)
    return GammaGammaParams(p, q, fitted.gamma, ll, n)


def expected_average_spend(params: GammaGammaParams, x: Array, monetary: Array) -> Array:
    """E(mean spend per purchase | x, mean repeat spend): a weighted mean of the population mean
    and the customer's own; the population mean for customers with no repeat purchase."""
    x, monetary = _as_arrays(x, monetary)
    if params.q <= 1.0:
        raise InsufficientData(
            f"Gamma-Gamma q = {params.q:.3f} <= 1: the population's mean spend is unbounded "
            "(too few or too spread repeat spends to predict spend)",
            rule="clv.gamma_gamma_q",
        )
    own = np.where(np.isfinite(monetary) & (x > 0), monetary, 0.0)
    px = params.p * x
    result: Array = (params.p * (params.gamma + x * own)) / (px + params.q - 1.0)
    return result


# --- the CLV table --------------------------------------------------------------------------


def monthly_discount_rate(annual: float) -> float:
    """The monthly rate compounding to `annual` over twelve months."""
    return float((1.0 + annual) ** (1.0 / MONTHS_PER_YEAR) - 1.0)


def predict_table(
    summary: pa.Table,
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    *,
    discount_rate_annual: float = 0.10,
) -> pa.Table:
    """The CLV columns of ``scores`` for every row of ``cm_clv_summary`` (in days and fen).

    Expected value over h days = expected purchases in h days x expected spend per purchase.
    12-month CLV: the expected purchases of each month (365/12 days) times the expected spend,
    discounted monthly at the rate compounding to `discount_rate_annual` (at rate 0 it equals
    the 365-day expected value). Members without an order have no summary row and so no CLV
    (NULL in ``scores``).
    """
    one_id = summary.column("one_id")
    x = _column(summary, "frequency")
    t_x_days = _column(summary, "recency_days")
    age_days = _column(summary, "age_days")
    money = _column(summary, "monetary_fen")
    _check_summary(x, t_x_days, age_days)
    unit = bgnbd.unit_days
    alive = p_alive(bgnbd, x, t_x_days / unit, age_days / unit)
    spend = expected_average_spend(gamma_gamma, x, money)
    # E[purchases | alive] depends on (x, T) only: once per distinct pair.
    pairs = group_rows(x, age_days)
    pair_x, pair_age = pairs.columns[0], pairs.columns[1] / unit

    def if_alive(days: float) -> Array:
        values: Array = expected_purchases_if_alive(bgnbd, days / unit, pair_x, pair_age)
        return values

    columns: dict[str, Array] = {"p_alive": alive, "expected_avg_spend_fen": spend}
    for h in HORIZONS_DAYS:
        purchases = alive * if_alive(float(h))[pairs.inverse]
        columns[f"expected_purchases_{h}"] = purchases
        columns[f"expected_value_{h}_fen"] = purchases * spend
    monthly = monthly_discount_rate(discount_rate_annual)
    discounted = np.zeros(len(pair_x))
    before = np.zeros(len(pair_x))
    for month in range(1, MONTHS_PER_YEAR + 1):
        upto = if_alive(month * DAYS_PER_MONTH)
        discounted += (upto - before) / (1.0 + monthly) ** month
        before = upto
    columns["clv_12m_fen"] = alive * discounted[pairs.inverse] * spend

    arrays: list[pa.Array | pa.ChunkedArray] = [
        one_id.cast(pa.string()),
        pa.array(x.astype(np.int64)),
        pa.array(t_x_days),
        pa.array(age_days),
    ]
    arrays += [pa.array(columns[name]) for name in SCORE_COLUMNS[4:]]
    return pa.Table.from_arrays(arrays, schema=SCORE_SCHEMA)


def fit_and_predict(
    summary: pa.Table, config: ClvConfig | None = None
) -> tuple[pa.Table, dict[str, Any]]:
    """Fit both models on ``cm_clv_summary`` and predict every row.

    Returns the CLV score columns and the parameters for ``compute_runs.parameters``: fitted
    values, log-likelihoods, customer counts, the time unit of the fit and the discount rate.
    Raises `InsufficientData` when there are too few (repeat) customers to fit.
    """
    config = config or ClvConfig()
    x = _column(summary, "frequency")
    money = _column(summary, "monetary_fen")
    # Grouped in whole days (no sort per column), fitted in weeks.
    rows = group_rows(x, _column(summary, "recency_days"), _column(summary, "age_days"))
    gx, g_t_x, g_age = rows.columns
    bgnbd = fit_bgnbd(
        gx,
        g_t_x / FIT_UNIT_DAYS,
        g_age / FIT_UNIT_DAYS,
        weights=rows.weights,
        group=False,
        min_customers=config.min_customers,
    )
    gamma_gamma = fit_gamma_gamma(x, money, min_customers=config.min_repeaters)
    table = predict_table(
        summary, bgnbd, gamma_gamma, discount_rate_annual=config.discount_rate_annual
    )
    parameters: dict[str, Any] = {
        "time_unit": "week",
        "unit_days": FIT_UNIT_DAYS,
        "money_unit": "fen",
        "bgnbd": asdict(bgnbd),
        # a / (a + b); a, b both huge (the fit runs off to them) mean one dropout probability
        # for everyone rather than a spread.
        "mean_dropout_probability": bgnbd.a / (bgnbd.a + bgnbd.b),
        "gamma_gamma": asdict(gamma_gamma),
        "discount_rate_annual": config.discount_rate_annual,
        "discount_rate_monthly": monthly_discount_rate(config.discount_rate_annual),
    }
    return table, parameters


# --- helpers --------------------------------------------------------------------------------


def _dot(a: Array, b: Array) -> float:
    """Sum of a * b. Not np.dot: BLAS threads stall when the cores are busy (10x slower)."""
    return float(np.einsum("i,i->", a, b))


def _as_arrays(*columns: Any) -> list[Array]:
    return [np.asarray(c, dtype=np.float64) for c in columns]


def _column(table: pa.Table, name: str) -> Array:
    if name not in table.column_names:
        raise InputError(
            f"the CLV summary has no column {name!r} (expected the {SUMMARY} columns)",
            field=name,
            rule="clv.summary_columns",
        )
    values: Array = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
    return values


def _require_customers(
    x: Array, weights: Array | None, minimum: int, model: str, who: str, rule: str
) -> int:
    """The number of customers (total weight); too few to fit raises `InsufficientData`."""
    n = int(len(x) if weights is None else round(float(np.sum(weights))))
    if n < minimum:
        raise InsufficientData(
            f"{model} needs at least {minimum} {who}, got {n}",
            field="customers",
            value=n,
            rule=rule,
        )
    return n


def _check_summary(x: Array, t_x: Array, age: Array) -> None:
    """Reject rows the models cannot read: negative or missing values, t_x > T."""
    bad = (
        ~np.isfinite(x)
        | ~np.isfinite(t_x)
        | ~np.isfinite(age)
        | (x < 0)
        | (t_x < 0)
        | (t_x > age + 1e-9)
        | ((x == 0) & (t_x != 0))
    )
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"CLV summary row {i} is inconsistent (frequency={x[i]}, recency={t_x[i]}, "
            f"age={age[i]}): need frequency >= 0, 0 <= recency <= age, recency 0 when "
            "frequency is 0",
            field="recency",
            rule="clv.summary_row",
        )


def _params4(v: Array) -> tuple[float, float, float, float]:
    return float(v[0]), float(v[1]), float(v[2]), float(v[3])


def _params3(v: Array) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


def _minimise(objective: Any, start: Array, model: str) -> Array:
    result = optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-20.0, 20.0)] * len(start),
        options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
    )
    if not np.all(np.isfinite(result.x)) or not np.isfinite(result.fun):
        raise InsufficientData(
            f"the {model} fit did not converge: {result.message}", rule="clv.fit"
        )
    theta: Array = result.x
    return theta
