"""Confidence-interval arithmetic on seed samples and summary statistics (no tables).

Why these intervals: see analysis/stats.py. The Student-t quantile comes from scipy.stats, a kept
library, rather than hand-written incomplete-beta numerics: Welch's df is not an integer, so a
table will not do, and a home-made inverse is one more thing to get subtly wrong.
"""
from __future__ import annotations

import math

import pandas as pd
from scipy import stats as _scipy_stats

CONFIDENCE = 0.95


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value, e.g. t_quantile(2) = 4.302653 for 95 %."""
    if not df > 0:  # also catches NaN
        return math.nan
    return float(_scipy_stats.t.ppf(0.5 + confidence / 2.0, df))


def welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch-Satterthwaite df for the terms var_a/n_a + var_b/n_b (var = sample variance)."""
    ta, tb = var_a / n_a, var_b / n_b
    denom = ta**2 / (n_a - 1) + tb**2 / (n_b - 1)
    return (ta + tb) ** 2 / denom if denom > 0 else math.inf


def mean_ci(values: pd.Series) -> tuple[int, float, float, float, float]:
    """(n, mean, std ddof=1, ci_low, ci_high) over non-NaN values; NaN std/CI when n < 2.

    mean_ci(pd.Series([0.80, 0.82, 0.84])) -> (3, 0.82, 0.02, 0.7703, 0.8697)
    """
    x = values.dropna().astype(float).to_numpy()
    n = len(x)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n == 1:
        return 1, mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return n, mean, std, mean - half, mean + half


def diff_ci(n_a: int, mean_a: float, std_a: float,
            n_b: int, mean_b: float, std_b: float) -> tuple[float, float, float, float]:
    """(mean_b - mean_a, ci_low, ci_high, df) with Welch's t interval; NaN CI if n < 2."""
    est = mean_b - mean_a
    if n_a < 2 or n_b < 2:
        return est, math.nan, math.nan, math.nan
    se = math.sqrt(std_a**2 / n_a + std_b**2 / n_b)
    df = welch_df(std_a**2, n_a, std_b**2, n_b)
    half = t_quantile(df) * se if se > 0 else 0.0
    return est, est - half, est + half, df


def ratio_ci(n_a: int, mean_a: float, std_a: float,
             n_b: int, mean_b: float, std_b: float) -> tuple[float, float, float, float]:
    """(mean_b / mean_a, ci_low, ci_high, df): log-scale delta method, Welch-Satterthwaite df."""
    if not (mean_a > 0 and mean_b > 0):
        return math.nan, math.nan, math.nan, math.nan
    est = mean_b / mean_a
    if n_a < 2 or n_b < 2:
        return est, math.nan, math.nan, math.nan
    # Var(log mean) ≈ s² / (n m²); feed the relative variances to Welch-Satterthwaite.
    rel_a, rel_b = (std_a / mean_a) ** 2, (std_b / mean_b) ** 2
    se = math.sqrt(rel_a / n_a + rel_b / n_b)
    df = welch_df(rel_a, n_a, rel_b, n_b)
    half = t_quantile(df) * se if se > 0 else 0.0
    return est, est * math.exp(-half), est * math.exp(half), df
