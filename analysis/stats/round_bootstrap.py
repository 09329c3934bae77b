"""The interval of an interleaved timing run: a bootstrap over rounds, and the verdict it allows.

An interleaved timing run (bench.timing) times every arm for K steps in each of R rounds. The
estimate is the ratio of two arms' median step times over all their timed steps. Its interval
resamples whole rounds: R rounds drawn with replacement, the same rounds for both arms (a round's
steps of the two arms ran within seconds of each other and share its load), the ratio of the
pooled medians recomputed, the 2.5 % and 97.5 % quantiles of `N_BOOT` such ratios taken. So
whatever moves between rounds — a neighbour's burst, a clock or thermal change, drift — widens the
interval, and steps within a round are never treated as independent of each other.

The verdict (`verdict`) needs the A/A control: the baseline timed twice, as two separately built
copies, in the same rounds. Its ratio is 1 by construction; the control is *within noise* when its
interval contains 1. A variant is then faster or slower when its own interval excludes 1, within
noise otherwise. When the control's interval excludes 1, the machine invented a difference between
identical arms in this very run, and no variant's verdict is given: "too noisy to tell".
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

CONFIDENCE = 0.95
N_BOOT = 2000
SEED = 0           # a rebuilt report prints the same interval
MIN_ROUNDS = 3     # fewer rounds: the estimate, no interval
VERDICTS = ("faster", "slower", "within noise", "too noisy to tell", "no interval")


def _matrix(by_round: Mapping[int, np.ndarray], rounds: list[int]) -> np.ndarray:
    rows = [np.asarray(by_round[r], dtype=float) for r in rounds]
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"every round needs the same number of steps, got {sorted({len(r) for r in rows})}")
    return np.stack(rows)


def ratio_over_rounds(base: Mapping[int, np.ndarray], other: Mapping[int, np.ndarray],
                      confidence: float = CONFIDENCE, n_boot: int = N_BOOT,
                      seed: int = SEED) -> tuple[float, float, float]:
    """(median of `other` / median of `base`, low, high): the interval resamples the rounds both
    arms share, whole. NaN bounds with fewer than MIN_ROUNDS shared rounds.

    >>> base = {r: np.array([10.0, 10.0, 11.0]) for r in range(5)}
    >>> other = {r: np.array([20.0, 20.0, 22.0]) for r in range(5)}
    >>> ratio_over_rounds(base, other)
    (2.0, 2.0, 2.0)
    """
    rounds = sorted(set(base) & set(other))
    if not rounds:
        return math.nan, math.nan, math.nan
    a, b = _matrix(base, rounds), _matrix(other, rounds)
    est = float(np.median(b) / np.median(a))
    if len(rounds) < MIN_ROUNDS:
        return est, math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, len(rounds), size=(n_boot, len(rounds)))
    ratios = np.median(b[idx].reshape(n_boot, -1), axis=1) / np.median(a[idx].reshape(n_boot, -1), axis=1)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(ratios, [tail, 1 - tail])
    return est, float(lo), float(hi)


def contains_one(low: float, high: float) -> bool:
    """Whether an interval holds 1 (no interval: False)."""
    return not (math.isnan(low) or math.isnan(high)) and low <= 1.0 <= high


def verdict(low: float, high: float, control_low: float, control_high: float) -> str:
    """The verdict on a step-time ratio (other / baseline) given the A/A control's interval.

    >>> verdict(1.2, 1.4, 0.98, 1.03), verdict(0.7, 0.8, 0.98, 1.03), verdict(0.9, 1.1, 0.98, 1.03)
    ('slower', 'faster', 'within noise')
    >>> verdict(1.2, 1.4, 1.04, 1.09)
    'too noisy to tell'
    """
    if math.isnan(low) or math.isnan(control_low):
        return "no interval"
    if not contains_one(control_low, control_high):
        return "too noisy to tell"
    if low > 1.0:
        return "slower"
    if high < 1.0:
        return "faster"
    return "within noise"
