"""Confidence intervals and t tests on seed samples and summary statistics (no tables).

Every interval lives in its metric's own space (`SPACES`), so none leaves the metric's range:

- "real" (no known bound): Student t, mean ± t_{0.975, n-1} · s/√n.
- "positive" (examples/s, step times, memory, loss): delta method on the log scale,
  exp(log m ± t_{0.975, n-1} · (s/m)/√n) = m·exp(∓…). It brackets the arithmetic mean m, the
  number the report prints and the ratios compare, and is the same log-scale construction as the
  ratio interval below. Its ends are positive for any n; when s/m is a few percent (throughput
  across seeds) it matches the raw-scale t interval to within (s/m)², so it changes nothing where
  the raw one was sound, only where it was not (two seeds, t = 12.7, a lower end below zero).
  A log-t interval over log(x) would bracket the geometric mean instead, which is not the number shown.
- "proportion" (accuracy in [0, 1]): delta method on the logit scale, expit(logit m ± t_{0.975, n-1}
  · (s/√n)/(m(1−m))), which stays inside (0, 1). Per-seed test accuracy is a proportion over the
  test set, but a Wilson or Clopper–Pearson interval on that count measures only test-set sampling
  of one trained model (about 0.36 points at 85 % on 10,000 images), and the test set is the same
  for every seed and variant; what varies between seeds is training itself (initialisation, data
  order), about twice that. So the interval is over seeds, as for every other metric, and the
  logit keeps it in range. With s = 0 (every seed equal, including all 0 or all 1) it is [m, m].

Comparisons of two variants, b against a (a `Contrast`):
- difference b − a: Welch's t interval with Welch–Satterthwaite df; a difference can be negative,
  so it stays on the raw scale. For proportions its ends are clipped to [−1, 1], the range of a
  difference of two proportions (clipping cannot move 0 in or out, so the verdict is unchanged).
- ratio b / a: delta method on the log scale, log(m_b/m_a) ± t·√(s_a²/(n_a m_a²) + s_b²/(n_b m_b²))
  with Welch–Satterthwaite df on those two terms, exponentiated: positive and asymmetric like a
  ratio. It reduces to Fieller's interval when the coefficients of variation are small; Fieller can
  be unbounded and a bootstrap is unreliable at n = 3–5.
- p value: two-sided, from the same t statistic and df as the interval (estimate/se, on the log
  scale for ratios), so p < 0.05 exactly when the interval excludes 0 (difference) or 1 (ratio).
  Holm's correction (analysis.stats.multiplicity) works on these.

The Student-t quantiles come from scipy.stats, a kept library, rather than hand-written numerics:
Welch's df is not an integer, so a printed table will not do.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd
from scipy import stats as _scipy_stats

CONFIDENCE = 0.95
SPACES = ("real", "positive", "proportion")
NAN = math.nan


class Contrast(NamedTuple):
    """A comparison of two means: estimate (b − a or b / a), its 95 % interval, df and p value."""
    estimate: float
    low: float
    high: float
    df: float
    p_value: float


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value, e.g. t_quantile(2) = 4.302653 for 95 %."""
    if not df > 0:  # also catches NaN
        return NAN
    return float(_scipy_stats.t.ppf(0.5 + confidence / 2.0, df))


def t_p_value(t: float, df: float) -> float:
    """Two-sided p value of a t statistic: t_p_value(2.776445, 4) = 0.05."""
    if not df > 0 or math.isnan(t):
        return NAN
    return float(2.0 * _scipy_stats.t.sf(abs(t), df))


def welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch-Satterthwaite df for the terms var_a/n_a + var_b/n_b (var = sample variance)."""
    ta, tb = var_a / n_a, var_b / n_b
    denom = ta**2 / (n_a - 1) + tb**2 / (n_b - 1)
    return (ta + tb) ** 2 / denom if denom > 0 else math.inf


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def interval_in_space(mean: float, se: float, t: float, space: str) -> tuple[float, float]:
    """The interval mean ± t·se built on the scale of `space` and mapped back (see the docstring)."""
    if se == 0:
        return mean, mean
    if space == "positive":
        if not mean > 0:
            raise ValueError(f"a positive metric has mean {mean}: its values must be above zero")
        half = t * se / mean
        return mean * math.exp(-half), mean * math.exp(half)
    if space == "proportion":
        if not 0.0 < mean < 1.0:
            raise ValueError(f"must be a fraction in [0, 1], has mean {mean} (a percentage?)")
        half = t * se / (mean * (1.0 - mean))
        centre = _logit(mean)
        return _expit(centre - half), _expit(centre + half)
    if space != "real":
        raise ValueError(f"unknown metric space {space!r}: one of {SPACES}")
    return mean - t * se, mean + t * se


def mean_ci(values: pd.Series, space: str = "real") -> tuple[int, float, float, float, float]:
    """(n, mean, std ddof=1, ci_low, ci_high) over non-NaN values; NaN std/CI when n < 2.

    mean_ci(pd.Series([0.80, 0.82, 0.84])) -> (3, 0.82, 0.02, 0.7703, 0.8697)
    mean_ci(pd.Series([0.80, 0.82, 0.84]), "proportion") -> (3, 0.82, 0.02, 0.7649, 0.8645)
    """
    x = values.dropna().astype(float).to_numpy()
    n = len(x)
    if n == 0:
        return 0, NAN, NAN, NAN, NAN
    mean = float(x.mean())
    if n == 1:
        return 1, mean, NAN, NAN, NAN
    if space == "proportion" and not (x.min() >= 0.0 and x.max() <= 1.0):
        raise ValueError(f"must be a fraction in [0, 1], has values {x.min()}..{x.max()} (a percentage?)")
    std = float(x.std(ddof=1))
    lo, hi = interval_in_space(mean, std / math.sqrt(n), t_quantile(n - 1), space)
    return n, mean, std, lo, hi


def _p_from(est: float, se: float, df: float) -> float:
    if se == 0:
        return 0.0 if est != 0 else 1.0
    return t_p_value(est / se, df)


def diff_ci(n_a: int, mean_a: float, std_a: float, n_b: int, mean_b: float, std_b: float,
            bounds: tuple[float, float] | None = None) -> Contrast:
    """mean_b − mean_a with Welch's t interval, clipped to `bounds` when given; NaN CI if n < 2."""
    est = mean_b - mean_a
    if n_a < 2 or n_b < 2:
        return Contrast(est, NAN, NAN, NAN, NAN)
    se = math.sqrt(std_a**2 / n_a + std_b**2 / n_b)
    df = welch_df(std_a**2, n_a, std_b**2, n_b)
    half = t_quantile(df) * se if se > 0 else 0.0
    lo, hi = est - half, est + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return Contrast(est, lo, hi, df, _p_from(est, se, df))


def ratio_ci(n_a: int, mean_a: float, std_a: float, n_b: int, mean_b: float, std_b: float) -> Contrast:
    """mean_b / mean_a: log-scale delta method, Welch-Satterthwaite df; NaN CI if n < 2."""
    if not (mean_a > 0 and mean_b > 0):
        return Contrast(NAN, NAN, NAN, NAN, NAN)
    est = mean_b / mean_a
    if n_a < 2 or n_b < 2:
        return Contrast(est, NAN, NAN, NAN, NAN)
    # Var(log mean) ≈ s² / (n m²); feed the relative variances to Welch-Satterthwaite.
    rel_a, rel_b = (std_a / mean_a) ** 2, (std_b / mean_b) ** 2
    se = math.sqrt(rel_a / n_a + rel_b / n_b)
    df = welch_df(rel_a, n_a, rel_b, n_b)
    half = t_quantile(df) * se if se > 0 else 0.0
    return Contrast(est, est * math.exp(-half), est * math.exp(half), df, _p_from(math.log(est), se, df))
