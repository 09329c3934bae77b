"""Pairwise variant comparisons within a configuration, with p values, Holm marks and power.

Each row compares variant b against a on one metric: a Welch difference or a log-scale ratio over
seeds (analysis.stats.intervals), the verdict that interval gives at 95 %, the p value of the same t
statistic, whether the verdict survives Holm's correction over the family (analysis.stats.multiplicity),
the smallest difference resolvable at the spread observed and, for a `--resolve` target, the seeds
needed (analysis.stats.power). Where both sides of a step-time comparison have one seed, the interval is
the within-run block bootstrap of the two runs' step times instead (analysis.stats.block_bootstrap); such rows
carry no p value and are outside the Holm family.
"""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd

from analysis.stats import block_bootstrap, power
from analysis.stats.seed_groups import (
    CONFIG_KEY, MetricSpec, group_stats, metric_spec, pair_label, resolve_metrics, variant_rank,
)
from analysis.stats.intervals import Contrast, diff_ci, ratio_ci
from analysis.stats.multiplicity import ALPHA, holm

# Variants are paired within a configuration minus the variant and its group size: the group size
# follows from the variant (local ones 1, synchronising ones the world), and comparing nn with
# scratch-sync at world size 2 is the question. A group other than the variant's own (sync over 2 of
# 4 ranks) is named in the pair's label, e.g. "sync (2 ranks)".
PAIR_KEY: tuple[str, ...] = tuple(c for c in CONFIG_KEY if c not in ("variant", "bn_group_size"))
# The first columns are the comparison itself (other tables and the findings build on them); the
# rest add the spread, the kind of interval, multiplicity and power.
PAIRWISE_COLUMNS: tuple[str, ...] = PAIR_KEY + (
    "metric", "variant_a", "variant_b", "n_a", "n_b", "mean_a", "mean_b", "comparison", "estimate",
    "ci95_low", "ci95_high", "df", "verdict",
    "std_a", "std_b", "interval", "p_value", "holm_p", "holm_significant", "min_resolvable",
    "resolve_target", "seeds_needed")
SEEDS, WITHIN_RUN = "seeds", "within run"
WITHIN_RUN_METRIC = "step_ms_p50"  # the metric step_times.csv measures per step
WITHIN_RUN_NOTE = " (within-run timing only)"
NOT_MEASURED_VERDICT = "not measured in these runs"


def verdict(spec: MetricSpec, a: str, b: str, est: float, lo: float, hi: float) -> str:
    """'within noise', or the winner, the factor or difference, and the interval."""
    if math.isnan(lo) or math.isnan(hi):
        return "too few seeds: no interval"
    null = 1.0 if spec.compare == "ratio" else 0.0
    if lo <= null <= hi:
        return "within noise"
    b_larger = lo > null
    winner = b if b_larger == spec.higher_is_better else a
    if spec.compare == "ratio":  # factor = larger / smaller mean
        f, flo, fhi = (est, lo, hi) if b_larger else (1 / est, 1 / hi, 1 / lo)
        return f"{winner} {spec.better}: {f:.2f}× [{flo:.2f}, {fhi:.2f}]"
    # difference shown as winner - loser
    d, dlo, dhi = (est, lo, hi) if winner == b else (-est, -hi, -lo)
    p, s = spec.decimals, spec.scale
    return f"{winner} {spec.better}: {s * d:+.{p}f}{spec.unit} [{s * dlo:.{p}f}, {s * dhi:.{p}f}]"


def _seed_contrast(spec: MetricSpec, m: str, ra: dict, rb: dict) -> Contrast:
    args = (ra[f"{m}_n"], ra[f"{m}_mean"], ra[f"{m}_std"], rb[f"{m}_n"], rb[f"{m}_mean"], rb[f"{m}_std"])
    if spec.space == "proportion" and max(args[1], args[4]) > 1:
        raise ValueError(f"{m} must be a fraction in [0, 1], got mean {max(args[1], args[4])} (a percentage?)")
    if spec.compare == "ratio":
        return ratio_ci(*args)
    return diff_ci(*args, bounds=(-1.0, 1.0) if spec.space == "proportion" else None)


def _within_run(ra: dict, rb: dict, step_samples: dict) -> block_bootstrap.BootInterval | None:
    """The two one-seed runs' median step-time ratio, when both runs' steps are at hand."""
    run_a, run_b = ra["runs"], rb["runs"]
    if ra["n_seeds"] != 1 or rb["n_seeds"] != 1 or run_a not in step_samples or run_b not in step_samples:
        return None
    return block_bootstrap.median_ratio_ci(step_samples[run_a], step_samples[run_b])


def _power(spec: MetricSpec, m: str, ra: dict, rb: dict, targets) -> dict:
    sa = power.planning_spread(spec.compare, ra[f"{m}_std"], ra[f"{m}_mean"])
    sb = power.planning_spread(spec.compare, rb[f"{m}_std"], rb[f"{m}_mean"])
    d_min = power.min_resolvable(ra[f"{m}_n"], sa, rb[f"{m}_n"], sb)
    target = target_for(spec, targets)
    needed = math.nan
    if target is not None and ra[f"{m}_n"] >= 2 and rb[f"{m}_n"] >= 2:
        needed = power.seeds_needed(sa, sb, target.delta())
    return {"min_resolvable": power.on_metric_scale(spec.compare, d_min),
            "resolve_target": str(target) if target is not None else "", "seeds_needed": needed}


def target_for(spec: MetricSpec, targets) -> power.ResolveTarget | None:
    """The --resolve target that applies to a metric: percent for ratios, points for accuracies."""
    kind = "%" if spec.compare == "ratio" else ("pt" if spec.space == "proportion" else None)
    return next((t for t in targets if t.kind == kind), None)


def _row(key: dict, m: str, a: str, b: str, ra: dict, rb: dict, targets, step_samples) -> dict:
    spec = metric_spec(m)
    c, kind = _seed_contrast(spec, m, ra, rb), SEEDS
    mean_a, mean_b = ra[f"{m}_mean"], rb[f"{m}_mean"]
    boot = _within_run(ra, rb, step_samples) if m == WITHIN_RUN_METRIC and step_samples else None
    if boot is not None and not math.isnan(boot.low):
        c, kind = Contrast(boot.estimate, boot.low, boot.high, math.nan, math.nan), WITHIN_RUN
        mean_a, mean_b = (float(np.median(step_samples[r["runs"]])) for r in (ra, rb))
    if ra[f"{m}_n"] == 0 or rb[f"{m}_n"] == 0:  # e.g. accuracy on synthetic data: no seeds to count
        text = NOT_MEASURED_VERDICT
    else:
        text = verdict(spec, a, b, c.estimate, c.low, c.high) + (WITHIN_RUN_NOTE if kind == WITHIN_RUN else "")
    return {**key, "metric": m, "variant_a": a, "variant_b": b, "n_a": ra[f"{m}_n"], "n_b": rb[f"{m}_n"],
            "mean_a": mean_a, "mean_b": mean_b, "comparison": spec.compare, "estimate": c.estimate,
            "ci95_low": c.low, "ci95_high": c.high, "df": c.df, "verdict": text,
            "std_a": ra[f"{m}_std"], "std_b": rb[f"{m}_std"], "interval": kind if not math.isnan(c.low) else "",
            "p_value": c.p_value, **_power(spec, m, ra, rb, targets)}


def _with_holm(df: pd.DataFrame, family) -> pd.DataFrame:
    in_family = df["p_value"].notna() & (df["metric"].isin(family) if family is not None else True)
    adjusted = holm(df["p_value"].where(in_family))
    df["holm_p"] = adjusted
    df["holm_significant"] = [None if math.isnan(p) else bool(p < ALPHA) for p in adjusted]
    return df


def pairwise(runs_df: pd.DataFrame, metrics=None, pairs=None, *, family=None, resolve=(),
             step_samples: dict | None = None) -> pd.DataFrame:
    """Compare variants within configurations that differ only by variant (`PAIRWISE_COLUMNS`).

    One row per (configuration without variant, pair, metric). comparison 'difference' = b − a
    (Welch t), 'ratio' = b / a (log delta method), per `METRIC_SPECS`. Pairs default to all variant
    pairs present, a before b in `VARIANT_ORDER`; `pairs=[(a, b), ...]` picks some.
    - p_value: two-sided, from the interval's t statistic; holm_p / holm_significant: Holm over the
      family = every row with a p value whose metric is in `family` (None: all metrics asked for);
      rows outside it have NaN / None.
    - min_resolvable: smallest true difference found with 80 % power at the observed spread and
      seeds (a difference in the metric's units; for a ratio, relative: 0.05 = 5 %).
    - seeds_needed: seeds per variant for the `resolve` target of the metric's kind
      (analysis.stats.power.ResolveTarget: points for accuracies, percent for ratios), else NaN.
    - step_samples: {run: step times in order}; a step_ms_p50 comparison of two one-seed runs then
      gets a within-run block-bootstrap interval (interval = 'within run', no p value).

    Example (one configuration, 3 seeds each):
        variant examples_per_s            variant_a variant_b comparison estimate verdict
        scratch 1000, 1010, 990     ->    scratch   nn        ratio      1.68     nn faster: 1.68× [1.64, 1.72]
        nn      1680, 1700, 1660
    """
    metrics = resolve_metrics(runs_df, metrics)
    gs = group_stats(runs_df, metrics)
    gs = gs[gs["n_seeds"] > 0]
    rows = []
    for key, cfg in gs.groupby(list(PAIR_KEY), dropna=False, sort=True):
        by_variant = {pair_label(r["variant"], r["bn_group_size"], r["world_size"]): r
                      for r in cfg.to_dict("records")}
        if pairs is None:
            chosen = combinations(sorted(by_variant, key=variant_rank), 2)
        else:
            chosen = [(a, b) for a, b in pairs if a in by_variant and b in by_variant]
        for a, b in chosen:
            for m in metrics:
                rows.append(_row(dict(zip(PAIR_KEY, key)), m, a, b, by_variant[a], by_variant[b],
                                 resolve, step_samples))
    return _with_holm(pd.DataFrame(rows, columns=list(PAIRWISE_COLUMNS)), family)


def compare_variants(runs_df: pd.DataFrame, metric: str, a: str, b: str) -> pd.DataFrame:
    """`pairwise` for one metric and one ordered pair: estimate is b - a (or b / a)."""
    return pairwise(runs_df, metrics=(metric,), pairs=[(a, b)])
