"""The interval of an interleaved timing run: a bootstrap over rounds, and the verdict it allows.

An interleaved timing run (bench.timing) times every arm for K steps in each of R rounds. The
estimate is the ratio of two arms' median step times over all their timed steps. Its interval
resamples whole rounds: R rounds drawn with replacement, the same rounds for both arms (a round's
steps of the two arms ran within seconds of each other and share its load), the ratio of the
pooled medians recomputed, the 2.5 % and 97.5 % quantiles of `N_BOOT` such ratios taken. So
whatever moves between rounds — a neighbour's burst, a clock or thermal change, drift — widens the
interval, and steps within a round are never treated as independent of each other.

The verdict (`verdict`) needs the A/A control: the baseline timed twice, as two separately built
copies, in the same rounds. The control's interval is the noise floor measured in this very run:
`noise_floor` is the largest factor by which it departs from 1, on either side (an interval
[0.97, 1.02] is a floor of 3.1 %). It is not asked to contain 1: two copies of one network, built
apart, can run steadily 2-3 % apart for a whole job (where their tensors landed in memory), and
a tight interval rightly sees that; it is a property of those two objects, not of a variant. So a
variant is slower only when its interval's low end lies above 1 + floor, faster only when its high
end lies below 1 / (1 + floor), and within noise otherwise. When the floor itself exceeds
`MAX_NOISE_FLOOR`, identical arms differed by more than any verdict should rest on, and no
variant's verdict is given: "too noisy to tell".
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

CONFIDENCE = 0.95
N_BOOT = 2000
SEED = 0           # a rebuilt report prints the same interval
MIN_ROUNDS = 3     # fewer rounds: the estimate, no interval
MAX_NOISE_FLOOR = 0.10  # a control departing from 1 by more: too noisy to tell


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


def noise_floor(control_low: float, control_high: float) -> float:
    """The A/A control's noise floor: the largest factor by which its interval departs from 1,
    on either side, less 1 (NaN without an interval).

    >>> [round(noise_floor(*c), 4) for c in ((0.98, 1.03), (1.005, 1.033), (0.958, 0.995))]
    [0.03, 0.033, 0.0438]
    """
    if math.isnan(control_low) or math.isnan(control_high):
        return math.nan
    return max(control_high, 1.0 / control_low) - 1.0


def control_verdict(control_low: float, control_high: float) -> str:
    """'within noise' when the control's floor is at most MAX_NOISE_FLOOR, else 'outside noise'.

    >>> control_verdict(1.005, 1.033), control_verdict(0.83, 1.36), control_verdict(math.nan, math.nan)
    ('within noise', 'outside noise', 'no interval')
    """
    floor = noise_floor(control_low, control_high)
    if math.isnan(floor):
        return "no interval"
    return "within noise" if floor <= MAX_NOISE_FLOOR else "outside noise"


def verdict(low: float, high: float, control_low: float, control_high: float) -> str:
    """The verdict on a step-time ratio (other / baseline) given the A/A control's interval: faster
    or slower only beyond the control's noise floor.

    >>> verdict(1.2, 1.4, 0.98, 1.03), verdict(0.7, 0.8, 0.98, 1.03), verdict(0.9, 1.1, 0.98, 1.03)
    ('slower', 'faster', 'within noise')
    >>> verdict(1.02, 1.04, 1.005, 1.033), verdict(1.04, 1.06, 1.005, 1.033)  # beyond 1, not the floor
    ('within noise', 'slower')
    >>> verdict(1.2, 1.4, 1.04, 1.12)
    'too noisy to tell'
    """
    floor = noise_floor(control_low, control_high)
    if math.isnan(low) or math.isnan(floor):
        return "no interval"
    if floor > MAX_NOISE_FLOOR:
        return "too noisy to tell"
    if low > 1.0 + floor:
        return "slower"
    if high < 1.0 / (1.0 + floor):
        return "faster"
    return "within noise"
