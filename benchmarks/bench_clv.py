"""CLV speed: BG/NBD + Gamma-Gamma fit and the scores CLV columns for N synthetic customers,
beside a hand-written reference run in the same process.

Customers are simulated from the models themselves (numpy, seeded): purchase rate
lambda ~ Gamma(r, alpha), dropout p ~ Beta(a, b) after each repeat purchase, first purchase
up to three years before as_of, spend per purchase ~ Gamma(p, nu) with nu ~ Gamma(q, gamma);
then x, t_x, T rounded to whole days as the SQL summary gives them.

Rows:
* ``mecdp``: `clv.fit_and_predict` (identical rows grouped, analytic gradients, predictions
  once per distinct row): both fits, P(alive), purchases and value at 90/180/365 days, CLV.
* ``mecdp, rows not grouped``: the two fits alone, row by row (`group=False`).
* ``reference``: the textbook code path, written out here: the negative log-likelihoods
  over the raw arrays minimised by Nelder-Mead (no gradient, no grouping, as lifetimes does),
  then the same predictions row by row with the FHL closed form.

Run: .venv/bin/python benchmarks/bench_clv.py [--customers 1000000] [--no-reference]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table
from scipy import optimize, special

from mecdp.compute import clv

TRUE_BGNBD = (0.243, 4.414, 0.793, 2.426)  # weeks (CDNOW)
TRUE_GG = (6.25, 3.74, 154_400.0)  # fen
HISTORY_DAYS = 3 * 365


def simulate(customers: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    r, alpha, a, b = TRUE_BGNBD
    lam = rng.gamma(r, 1.0 / alpha, customers) / 7.0  # per day
    drop = rng.beta(a, b, customers)
    age = rng.integers(0, HISTORY_DAYS + 1, customers).astype(np.float64)
    # Repeat purchases up to T: Poisson(lambda T) chances, the J-th one (J ~ geometric) the last.
    chances = rng.poisson(lam * age)
    last = rng.geometric(drop)
    x = np.minimum(chances, last)
    # The x-th of `chances` uniform times on (0, T]: T * Beta(x, chances - x + 1).
    repeat = x > 0
    t_x = np.zeros(customers)
    t_x[repeat] = np.floor(age[repeat] * rng.beta(x[repeat], chances[repeat] - x[repeat] + 1)).clip(
        1, None
    )
    t_x = np.minimum(t_x, age)
    p, q, g = TRUE_GG
    nu = rng.gamma(q, 1.0 / g, customers)
    mean_spend = np.full(customers, np.nan)
    mean_spend[repeat] = rng.gamma(p * x[repeat], 1.0 / (nu[repeat] * x[repeat]))
    return pa.table(
        {
            "one_id": pa.array([f"C{i:07d}" for i in range(customers)]),
            "frequency": pa.array(x.astype(np.int64)),
            "recency_days": pa.array(t_x),
            "age_days": pa.array(age),
            "monetary_fen": pa.array(np.round(mean_spend), from_pandas=True),
        }
    )


# --- the hand-written reference -------------------------------------------------------------


def reference_bgnbd(x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    def nll(theta: np.ndarray) -> float:
        r, alpha, a, b = np.exp(theta)
        a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b)
        a2 -= special.gammaln(a + b + x)
        a3 = -(r + x) * np.log(alpha + age)
        with np.errstate(divide="ignore", invalid="ignore"):
            a4 = np.where(
                x > 0,
                np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x),
                -np.inf,
            )
        return float(-(a1 + a2 + np.logaddexp(a3, a4)).sum())

    result = optimize.minimize(nll, np.zeros(4), method="Nelder-Mead", options={"maxiter": 4000})
    fitted: np.ndarray = np.exp(result.x)
    return fitted


def reference_gamma_gamma(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    def nll(theta: np.ndarray) -> float:
        p, q, g = np.exp(theta)
        px = p * x
        ll = (
            special.gammaln(px + q)
            - special.gammaln(px)
            - special.gammaln(q)
            + q * np.log(g)
            + (px - 1) * np.log(z)
            + px * np.log(x)
            - (px + q) * np.log(g + x * z)
        )
        return float(-ll.sum())

    start = np.log([1.0, 2.0, float(np.mean(z))])
    result = optimize.minimize(nll, start, method="Nelder-Mead", options={"maxiter": 4000})
    fitted: np.ndarray = np.exp(result.x)
    return fitted


def reference_predict(summary: pa.Table, bg: np.ndarray, gg: np.ndarray) -> dict[str, Any]:
    r, alpha, a, b = bg
    p, q, g = gg
    x = summary.column("frequency").to_numpy().astype(float)
    t_x = summary.column("recency_days").to_numpy() / 7
    age = summary.column("age_days").to_numpy() / 7
    zbar = np.nan_to_num(summary.column("monetary_fen").to_numpy(zero_copy_only=False))
    with np.errstate(all="ignore"):
        odds = np.where(x > 0, a / (b + x - 1) * ((alpha + age) / (alpha + t_x)) ** (r + x), 0)

        def expected(t: float) -> np.ndarray:
            hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + age + t))
            head = (a + b + x - 1) / (a - 1)
            tail = 1 - ((alpha + age) / (alpha + age + t)) ** (r + x) * hyp
            out: np.ndarray = head * tail / (1 + odds)
            return out

        spend = p * (g + x * zbar) / (p * x + q - 1)
        out: dict[str, Any] = {"p_alive": 1 / (1 + odds)}
        for h in clv.HORIZONS_DAYS:
            out[f"value_{h}"] = expected(h / 7) * spend
        monthly = (1.1) ** (1 / 12) - 1
        clv12 = np.zeros(len(x))
        before = np.zeros(len(x))
        for m in range(1, 13):
            upto = expected(m * 365 / 12 / 7)
            clv12 += (upto - before) / (1 + monthly) ** m
            before = upto
        out["clv_12m"] = clv12 * spend
    return out


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-reference", action="store_true", help="skip the slow reference")
    args = parser.parse_args()
    console = Console()
    seconds, summary = timed(lambda: simulate(args.customers, args.seed))
    x = summary.column("frequency").to_numpy().astype(float)
    t_x = summary.column("recency_days").to_numpy() / 7
    age = summary.column("age_days").to_numpy() / 7
    money = summary.column("monetary_fen").to_numpy(zero_copy_only=False)
    distinct = len(clv.group_rows(x, t_x, age).weights)
    console.print(
        f"simulated {args.customers:,} customers in {seconds:.1f} s: "
        f"{int((x > 0).sum()):,} repeat customers, {distinct:,} distinct (x, t_x, T) rows"
    )

    table = Table(title=f"CLV fit + predict, {args.customers:,} customers")
    for column in ("run", "fits s", "predict s", "total s", "vs mecdp"):
        table.add_column(column, justify="right" if column != "run" else "left")
    total_s, (scores, parameters) = timed(lambda: clv.fit_and_predict(summary))
    bg = clv.BgNbdParams(**parameters["bgnbd"])
    gg = clv.GammaGammaParams(**parameters["gamma_gamma"])
    predict_s, _ = timed(lambda: clv.predict_table(summary, bg, gg))
    fits_s = total_s - predict_s
    table.add_row("mecdp", f"{fits_s:.2f}", f"{predict_s:.2f}", f"{total_s:.2f}", "1.0x")
    raw_s, _ = timed(
        lambda: (
            clv.fit_bgnbd(x, t_x, age, group=False),
            clv.fit_gamma_gamma(x, money, group=False),
        )
    )
    table.add_row("mecdp, rows not grouped", f"{raw_s:.2f}", "", "", f"{raw_s / fits_s:.1f}x fits")
    if not args.no_reference:
        repeat = (x > 0) & (np.nan_to_num(money) > 0)
        ref_fit_s, (ref_bg, ref_gg) = timed(
            lambda: (
                reference_bgnbd(x, t_x, age),
                reference_gamma_gamma(x[repeat], money[repeat]),
            )
        )
        ref_pred_s, ref = timed(lambda: reference_predict(summary, ref_bg, ref_gg))
        ref_total = ref_fit_s + ref_pred_s
        table.add_row(
            "reference (Nelder-Mead, raw rows)",
            f"{ref_fit_s:.2f}",
            f"{ref_pred_s:.2f}",
            f"{ref_total:.2f}",
            f"{ref_total / total_s:.1f}x",
        )
        ours = scores.column("clv_12m_fen").to_numpy()
        finite = np.isfinite(ref["clv_12m"])
        gap = np.abs(ours[finite] - ref["clv_12m"][finite]) / ours[finite]
        console.print(
            f"reference BG/NBD {np.round(ref_bg, 4).tolist()}, Gamma-Gamma "
            f"{np.round(ref_gg, 4).tolist()}; its 12-month CLV is finite for "
            f"{int(finite.sum()):,} of {len(finite):,} customers; median relative gap to ours "
            f"{float(np.median(gap)):.2e}"
        )
    console.print(table)
    fitted_bg = parameters["bgnbd"]
    fitted_gg = parameters["gamma_gamma"]
    console.print(
        "true BG/NBD (weeks) r, alpha, a, b = "
        f"{TRUE_BGNBD}; fitted {tuple(round(fitted_bg[k], 3) for k in ('r', 'alpha', 'a', 'b'))}"
    )
    console.print(
        f"true Gamma-Gamma p, q, gamma = {TRUE_GG}; fitted "
        f"{tuple(round(fitted_gg[k], 3) for k in ('p', 'q', 'gamma'))}; "
        f"LL {fitted_bg['log_likelihood']:.1f} / {fitted_gg['log_likelihood']:.1f}"
    )
    if not math.isfinite(fitted_bg["log_likelihood"]):
        raise SystemExit("the BG/NBD fit gave a non-finite log-likelihood")


if __name__ == "__main__":
    main()
