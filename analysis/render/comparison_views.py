"""How a comparison reads: estimates, Holm marks, spreads, resolvable differences and seeds needed.

Table cells from analysis.stats.variant_pairs.pairwise rows, shared by the report's comparison table
(analysis.render.sweep_section) and `launch.sweep --plan-seeds` (launch.plan_seeds). Accuracy spreads and
differences read in percentage points, ratio metrics' in percent of the mean.
"""
from __future__ import annotations

import math

import pandas as pd

from analysis.render.mdtable import MISSING
from analysis.stats import power
from analysis.stats.seed_groups import metric_spec

# The comparisons the report shows, and so the family for Holm's correction.
SHOWN_METRICS: tuple[str, ...] = ("test_acc", "examples_per_s", "step_ms_p50")


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def estimate_cell(r: dict) -> str:
    """'1.680× [1.640, 1.720]' for a ratio, '+0.1000 [+0.0547, +0.1453]' for a difference."""
    e, lo, hi = r["estimate"], r["ci95_low"], r["ci95_high"]
    if _nan(e):
        return MISSING
    if r["comparison"] == "ratio":
        return f"{e:.3f}×" if _nan(lo) else f"{e:.3f}× [{lo:.3f}, {hi:.3f}]"
    return f"{e:+.4f}" if _nan(lo) else f"{e:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def holm_cell(r: dict) -> str:
    """'yes (p̃ 0.012)' when the verdict survives Holm, 'no (…)' when not, '–' outside the family."""
    if r["holm_significant"] is None or _nan(r["holm_significant"]):
        return MISSING
    return f"{'yes' if r['holm_significant'] else 'no'} (p̃ {r['holm_p']:.2g})"


def size_cell(metric: str, value: float) -> str:
    """A difference or spread as the metric reads it: points for accuracies, percent for ratios."""
    if _nan(value):
        return MISSING
    spec = metric_spec(metric)
    if spec.compare == "ratio":
        return f"{100 * value:.2g} %" if value < 0.1 else f"{100 * value:.0f} %"
    if spec.space == "proportion":
        return f"{100 * value:.2f} pt"
    return f"{value:.3g}"


def spread_cell(r: dict) -> str:
    """Per-seed standard deviations of a and b on the planning scale."""
    compare = r["comparison"]
    a = power.planning_spread(compare, r["std_a"], r["mean_a"])
    b = power.planning_spread(compare, r["std_b"], r["mean_b"])
    return f"{size_cell(r['metric'], a)} / {size_cell(r['metric'], b)}"


def seeds_cell(r: dict) -> str:
    n = r["seeds_needed"]
    if _nan(n) or not r["resolve_target"]:
        return MISSING
    count = f"more than {power.MAX_SEEDS:,}" if math.isinf(n) else f"{int(n)}"
    return f"{count} for {r['resolve_target']}"


def comparisons_view(pairs: pd.DataFrame, key_cols: list[str]) -> pd.DataFrame:
    """The report's comparison table: the interval, verdict, Holm mark and power of each pair."""
    records = pairs.to_dict("records")
    view = pairs[key_cols + ["metric", "variant_a", "variant_b", "n_a", "n_b"]].copy()
    view["estimate [95 % CI]"] = [estimate_cell(r) for r in records]
    view["verdict (uncorrected)"] = list(pairs["verdict"])
    view["survives Holm"] = [holm_cell(r) for r in records]
    view["smallest resolvable"] = [size_cell(r["metric"], r["min_resolvable"]) for r in records]
    if (pairs["resolve_target"] != "").any():
        view["seeds needed per variant"] = [seeds_cell(r) for r in records]
    return view


def plan_view(pairs: pd.DataFrame, key_cols: list[str], planned_seeds: int | None) -> pd.DataFrame:
    """--plan-seeds' table: spread, what the pilot's seeds resolve, the planned seeds, seeds needed."""
    records = pairs.to_dict("records")
    view = pairs[key_cols + ["metric", "variant_a", "variant_b"]].copy()
    view["seeds run a/b"] = [f"{r['n_a']}/{r['n_b']}" for r in records]
    view["spread per seed a / b"] = [spread_cell(r) for r in records]
    view["resolvable with these seeds"] = [size_cell(r["metric"], r["min_resolvable"]) for r in records]
    if planned_seeds:
        view[f"resolvable with {planned_seeds} seeds"] = [size_cell(r["metric"], _after(r, planned_seeds))
                                                         for r in records]
    view["seeds needed per variant"] = [seeds_cell(r) for r in records]
    return view


def _after(r: dict, n: int) -> float:
    compare = r["comparison"]
    a = power.planning_spread(compare, r["std_a"], r["mean_a"])
    b = power.planning_spread(compare, r["std_b"], r["mean_b"])
    return power.on_metric_scale(compare, power.resolvable_after(n, a, b))
