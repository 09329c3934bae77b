"""A within-run interval for a run's median step time: the circular block bootstrap.

Why blocks. Consecutive steps share the machine's state (clocks, caches, a neighbour's load), so
step times are autocorrelated: resampling single steps treats n correlated steps as n independent
ones and the interval comes out too narrow (an AR(1) series with φ = 0.7 has about a fifth as much
information about its level as n independent steps). The circular block bootstrap (Politis and
Romano 1992) resamples runs of `block` consecutive steps, wrapping at the end so every step is
equally likely to be drawn, and keeps the dependence within each block.

Block length: Politis and White (2004), with the correction of Patton, Politis and White (2009),
from the series' own autocorrelation. With R̂(k) the sample autocovariances, M = 2 m̂ where m̂ is
the first lag after which K_N = max(5, ⌈√log10 n⌉) autocorrelations in a row are below
2√(log10 n / n), and the flat-top window λ(t) = 1 for |t| ≤ ½, 2(1 − |t|) up to 1:
    ĝ = Σ_{|k|≤M} λ(k/M) R̂(k),   Ĝ = Σ_{|k|≤M} λ(k/M) |k| R̂(k),
    block = ⌈(2 Ĝ² / ((4/3) ĝ²))^{1/3} n^{1/3}⌉, clipped to [1, min(3√n, n/3)].
It grows with the dependence (an independent series gets 1, the plain bootstrap); a fixed n^{1/3}
would not. The rule is derived for the mean; it is the usual choice for other smooth statistics
such as the median. Where ĝ ≤ 0 (a degenerate estimate), block = ⌈n^{1/3}⌉.

The interval is the percentile interval of `N_BOOT` resampled medians (of ratios of medians for
two runs), from a fixed seed so a rebuilt report prints the same numbers. It never leaves the
positive range: every resampled median is a step time.

Limits, plainly. It covers within-run noise only: how far this run's median could move if the
same run, on the same machine in the same state, went on for the same number of steps. It says
little about run-to-run noise — another process placement, clock or thermal state, neighbour,
node, initialisation or data order — which on shared machines is often larger. It also assumes
the series is stationary (warm-up is excluded from step_times.csv; a drift within a run widens
the interval but is not modelled). Use it where a configuration has one seed; with two or more
seeds the interval over seeds (analysis.stats.intervals) is the one to trust.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

CONFIDENCE = 0.95
N_BOOT = 2000
SEED = 0
MIN_STEPS = 20  # fewer measured steps: no interval (too few blocks to resample)
_CHUNK_VALUES = 4_000_000  # resampled values held at once (32 MB of float64)


class BootInterval(NamedTuple):
    estimate: float  # the sample median (or the ratio of two)
    low: float
    high: float
    block: int       # block length used, in steps (the first run's, for a ratio)


def autocovariances(x: np.ndarray, max_lag: int) -> np.ndarray:
    """R̂(0..max_lag) = (1/n) Σ_t (x_t − x̄)(x_{t+k} − x̄), by FFT."""
    n = len(x)
    xc = x - x.mean()
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(xc, size)
    return np.fft.irfft(f * np.conj(f), size)[: max_lag + 1] / n


def block_length(x: np.ndarray) -> int:
    """Politis–White block length for the circular block bootstrap (see the module docstring)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n < MIN_STEPS:
        raise ValueError(f"a block length needs at least {MIN_STEPS} steps, got {n}")
    k_n = max(5, math.ceil(math.sqrt(math.log10(n))))
    m_max = min(math.ceil(math.sqrt(n)) + k_n, n - 1 - k_n)
    acov = autocovariances(x, m_max + k_n)
    if acov[0] <= 0:  # a constant series: any block gives the same median
        return 1
    small = np.abs(acov[1:] / acov[0]) < 2.0 * math.sqrt(math.log10(n) / n)  # small[j]: lag j + 1
    runs = np.lib.stride_tricks.sliding_window_view(small, k_n).all(axis=1)  # lags m+1..m+k_n small
    m_hat = int(np.argmax(runs)) if runs[: m_max + 1].any() else m_max
    big_m = min(2 * m_hat, m_max)
    if big_m == 0:
        return 1
    k = np.arange(1, big_m + 1)
    t = k / big_m
    window = np.where(t <= 0.5, 1.0, 2.0 * (1.0 - t))
    g = acov[0] + 2.0 * np.sum(window * acov[1: big_m + 1])
    big_g = 2.0 * np.sum(window * k * acov[1: big_m + 1])
    if g <= 0:
        return math.ceil(n ** (1 / 3))
    b = (2.0 * big_g**2 / (4.0 / 3.0 * g**2)) ** (1 / 3) * n ** (1 / 3)
    return int(min(max(1, math.ceil(b)), math.ceil(min(3 * math.sqrt(n), n / 3))))


def resampled_medians(x: np.ndarray, block: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of `n_boot` circular block resamples of x (each of length len(x))."""
    n = len(x)
    n_blocks = math.ceil(n / block)
    wrapped = np.concatenate([x, x[: block - 1]])  # circular: a block starting near the end wraps
    offsets = np.arange(block, dtype=np.int32)
    out = np.empty(n_boot)
    rows = max(1, _CHUNK_VALUES // (n_blocks * block))
    for start in range(0, n_boot, rows):
        r = min(rows, n_boot - start)
        starts = rng.integers(0, n, size=(r, n_blocks, 1), dtype=np.int32)
        idx = (starts + offsets).reshape(r, n_blocks * block)[:, :n]
        out[start:start + r] = np.median(wrapped[idx], axis=1)
    return out


def _quantiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    lo, hi = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def median_ci(x, confidence: float = CONFIDENCE, n_boot: int = N_BOOT, seed: int = SEED,
              block: int | None = None) -> BootInterval:
    """Sample median of x and its block-bootstrap percentile interval; NaN ends below MIN_STEPS.

    `block` overrides the Politis–White length (block=1 is the plain, independent-steps bootstrap).
    """
    x = np.asarray(x, dtype=float)
    if len(x) < MIN_STEPS:
        return BootInterval(float(np.median(x)) if len(x) else math.nan, math.nan, math.nan, 0)
    b = block or block_length(x)
    meds = resampled_medians(x, b, n_boot, np.random.default_rng(seed))
    return BootInterval(float(np.median(x)), *_quantiles(meds, confidence), b)


def median_ratio_ci(x_a, x_b, confidence: float = CONFIDENCE, n_boot: int = N_BOOT,
                    seed: int = SEED) -> BootInterval:
    """median(x_b) / median(x_a) with a percentile interval from independent block resamples."""
    x_a, x_b = np.asarray(x_a, dtype=float), np.asarray(x_b, dtype=float)
    if min(len(x_a), len(x_b)) < MIN_STEPS:
        est = np.median(x_b) / np.median(x_a) if len(x_a) and len(x_b) else math.nan
        return BootInterval(float(est), math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    b_a, b_b = block_length(x_a), block_length(x_b)
    ratios = resampled_medians(x_b, b_b, n_boot, rng) / resampled_medians(x_a, b_a, n_boot, rng)
    return BootInterval(float(np.median(x_b) / np.median(x_a)), *_quantiles(ratios, confidence), b_a)
