"""How many seeds a question needs: power of the Welch t comparison at the spread observed.

Scale. A difference (accuracy, loss) is planned on the metric's own scale; a ratio (throughput,
step time, memory) on the log scale, where a variant's per-seed spread is its coefficient of
variation s/m — the same scales analysis.stats.intervals builds the intervals on.

Formula (80 % power, 5 % two-sided, as `POWER` and `ALPHA`). Variants a and b with n_a, n_b seeds
and per-seed standard deviations s_a, s_b: SE = √(s_a²/n_a + s_b²/n_b), ν = Welch–Satterthwaite df.
The test rejects when |T| > t_{0.975, ν}. When the true difference is δ, T follows a noncentral t
with ν df and noncentrality λ = δ/SE, so power(λ, ν) = P(|T'| > t_{0.975, ν}) (scipy.stats.nct).
- Smallest resolvable difference with the seeds run: δ_min = λ*(ν) · SE, where λ*(ν) solves
  power(λ*, ν) = 0.8 (2.80 = z_0.975 + z_0.8 for large ν, 3.76 at ν = 4, 5.65 at ν = 2).
- Seeds needed to resolve δ: the smallest n, the same for both variants, with power(δ/SE_n, ν_n)
  ≥ 0.8, where SE_n = √((s_a² + s_b²)/n) and ν_n = (n − 1)(s_a² + s_b²)²/(s_a⁴ + s_b⁴), Welch's df
  at equal n (2n − 2 when s_a = s_b). With s_a = s_b = σ this is the textbook two-sample t plan.

Assumptions. Per-seed values are roughly normal and independent; the observed s stands in for the
true σ. From 3 seeds s is itself uncertain — a 95 % interval for σ is [0.52 s, 6.3 s] — so a plan
from a small pilot is a first estimate: rerun it once the first seeds of the real sweep are in.

Targets (`--resolve`): "0.5pt" is an accuracy difference of 0.5 percentage points (δ = 0.005 on a
fraction); "5%" a relative difference of a ratio metric (δ = log 1.05, the same for 1/1.05).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import optimize, stats

from analysis.stats.intervals import welch_df
from bench.errors import UsageError

ALPHA = 0.05
POWER = 0.80
MAX_SEEDS = 100_000  # past this a plan answers "more than" rather than a number


def power_t(ncp: float | np.ndarray, df: float | np.ndarray) -> float | np.ndarray:
    """Power of the two-sided level-ALPHA t test with `df` df when the noncentrality is `ncp`."""
    crit = stats.t.ppf(1 - ALPHA / 2, df)
    # The wrong-direction tail as sf at −λ: scipy's nct.cdf returns NaN far in that tail. Past
    # λ = 1000 (a spread near zero) nct returns NaN too, and the test cannot miss: power 1.
    value = stats.nct.sf(crit, df, ncp) + stats.nct.sf(crit, df, np.negative(ncp))
    return np.where(np.abs(ncp) > 1e3, 1.0, value)


def ncp_for_power(df: float) -> float:
    """λ*(df): the noncentrality at which the two-sided t test has power `POWER`."""
    if not df > 0:
        return math.nan
    if math.isinf(df):
        return float(stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER))
    hi = 4.0
    while power_t(hi, df) < POWER:  # power rises with λ; nct is unreliable far past the root
        hi *= 2.0
    return float(optimize.brentq(lambda lam: power_t(lam, df) - POWER, 0.0, hi, xtol=1e-10))


def min_resolvable(n_a: int, s_a: float, n_b: int, s_b: float) -> float:
    """Smallest true difference found with power POWER at these seeds and spreads; NaN if n < 2."""
    if n_a < 2 or n_b < 2 or math.isnan(s_a) or math.isnan(s_b):
        return math.nan
    se = math.sqrt(s_a**2 / n_a + s_b**2 / n_b)
    if se == 0:
        return 0.0
    return ncp_for_power(welch_df(s_a**2, n_a, s_b**2, n_b)) * se


def seeds_needed(s_a: float, s_b: float, delta: float) -> float:
    """Seeds per variant to resolve a true difference `delta` with power POWER (inf past MAX_SEEDS)."""
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta}")
    if math.isnan(s_a) or math.isnan(s_b):
        return math.nan
    va, vb = s_a**2, s_b**2
    if va + vb == 0:
        return 2.0
    z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)
    n_normal = math.ceil(z**2 * (va + vb) / delta**2)  # a lower bound: t needs at least as many
    if n_normal > MAX_SEEDS:
        return math.inf
    n = np.arange(max(2, n_normal // 2), min(MAX_SEEDS, 2 * n_normal + 20) + 1)
    df = (n - 1) * (va + vb) ** 2 / (va**2 + vb**2)
    enough = np.flatnonzero(power_t(delta / np.sqrt((va + vb) / n), df) >= POWER)
    return float(n[enough[0]]) if len(enough) else math.inf


def resolvable_after(n: int, s_a: float, s_b: float) -> float:
    """δ_min with n seeds for each variant at these spreads (a planned sweep's answer)."""
    return min_resolvable(n, s_a, n, s_b)


def planning_spread(compare: str, std: float, mean: float) -> float:
    """A variant's per-seed spread on the planning scale: std for a difference, std/mean for a ratio."""
    return std / mean if compare == "ratio" else std


def on_metric_scale(compare: str, delta: float) -> float:
    """A planning-scale difference as the metric reads it: itself, or relative (e^δ − 1) for a ratio."""
    return math.expm1(delta) if compare == "ratio" else delta


def sigma_ci_factors(n: int, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high): a `confidence` interval for σ is [low·s, high·s] from n normal values' s.

    sigma_ci_factors(3) -> (0.52, 6.28): three seeds pin the spread down only loosely.
    """
    df = n - 1
    tail = (1 - confidence) / 2
    return math.sqrt(df / stats.chi2.ppf(1 - tail, df)), math.sqrt(df / stats.chi2.ppf(tail, df))


@dataclass(frozen=True)
class ResolveTarget:
    """A difference to resolve: `value` accuracy points ("pt") or percent of a ratio ("%")."""
    kind: str  # "pt" or "%"
    value: float

    def __str__(self) -> str:
        return f"{self.value:g}{self.kind}"

    def delta(self) -> float:
        """The difference on the planning scale: a fraction for points, a log for percent."""
        return self.value / 100.0 if self.kind == "pt" else math.log1p(self.value / 100.0)


_TARGET = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(pts?|%)\s*$")


def parse_resolve(text: str) -> ResolveTarget:
    """'0.5pt' -> ResolveTarget('pt', 0.5); '5%' -> ResolveTarget('%', 5.0); else UsageError."""
    m = _TARGET.match(text)
    if m is None:
        raise UsageError(f"--resolve {text!r}: give a difference such as 0.5pt (accuracy points) "
                         f"or 5% (relative, for throughput and step time)")
    value, kind = float(m.group(1)), "pt" if m.group(2).startswith("pt") else "%"
    if not value > 0:
        raise UsageError(f"--resolve {text!r}: the difference must be above zero")
    if kind == "pt" and value >= 100:
        raise UsageError(f"--resolve {text!r}: accuracy points must be below 100")
    return ResolveTarget(kind, value)


def parse_targets(texts: Iterable[str] | None) -> tuple[ResolveTarget, ...]:
    """Every --resolve value parsed; at most one accuracy target and one relative target."""
    targets = tuple(parse_resolve(t) for t in (texts or ()))
    kinds = [t.kind for t in targets]
    if len(set(kinds)) != len(kinds):
        raise UsageError(f"--resolve given twice for the same kind ({', '.join(map(str, targets))}): "
                         f"give one in points and at most one in percent")
    return targets
