"""The within-run block bootstrap: coverage on a synthetic autocorrelated series, block lengths."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from analysis.stats.block_bootstrap import MIN_STEPS, block_length, median_ci, median_ratio_ci

TRUE_MEDIAN_MS = 50.0


def log_ar1(rng: np.random.Generator, reps: int, n: int, phi: float, sigma: float = 0.05) -> np.ndarray:
    """`reps` stationary series of step times exp(log 50 + y), y AR(1) with coefficient phi.

    y is Gaussian with mean 0, so every step's median is exactly 50 ms; exp makes the series
    right-skewed like real step times.
    """
    e = rng.standard_normal((reps, n)) * sigma
    e[:, 0] /= math.sqrt(1 - phi**2)  # start in the stationary distribution
    return TRUE_MEDIAN_MS * np.exp(lfilter([1.0], [1.0, -phi], e, axis=1))


def coverage(series: np.ndarray, block: int | None) -> float:
    # 300 resamples per interval keeps the test fast; the reports use 2,000.
    cis = [median_ci(x, n_boot=300, seed=i, block=block) for i, x in enumerate(series)]
    return float(np.mean([c.low <= TRUE_MEDIAN_MS <= c.high for c in cis]))


def test_block_bootstrap_covers_the_true_median_where_the_iid_bootstrap_does_not():
    # 200 series of 401 steps with φ = 0.7 (fixed seed). Nominal 95 %; with 200 replications the
    # binomial sd is 1.5 points, and block bootstraps run a few points low at this length, so the
    # band is [0.88, 0.99]. Resampling single steps ignores the autocorrelation and under-covers.
    series = log_ar1(np.random.default_rng(2024), reps=200, n=401, phi=0.7)
    block = coverage(series, block=None)
    iid = coverage(series, block=1)
    assert 0.88 <= block <= 0.99, block
    assert iid < 0.80, iid
    assert block - iid > 0.15


def test_block_length_grows_with_the_autocorrelation():
    rng = np.random.default_rng(5)
    lengths = [float(np.mean([block_length(x) for x in log_ar1(rng, 20, 1000, phi)])) for phi in (0.0, 0.5, 0.9)]
    assert lengths[0] <= 2  # independent steps: (nearly) the plain bootstrap
    assert lengths[0] < lengths[1] < lengths[2]
    assert block_length(np.full(100, 3.0)) == 1


def test_too_few_steps_give_no_interval_and_ratios_stay_positive():
    short = median_ci(np.arange(1.0, MIN_STEPS))
    assert short.estimate == np.median(np.arange(1.0, MIN_STEPS)) and math.isnan(short.low)
    rng = np.random.default_rng(9)
    a, b = log_ar1(rng, 2, 500, 0.5)
    r = median_ratio_ci(a, 0.5 * b)
    assert r.estimate == pytest.approx(0.5 * np.median(b) / np.median(a))
    assert 0 < r.low < r.estimate < r.high and r.block >= 1
