"""Seed statistics for experiment matrices: pure DataFrame -> DataFrame transforms.

The input is a runs table, one row per run (the `summary.csv` rows built by analysis/runs.py).
Runs are grouped by configuration (`CONFIG_KEY`) and never averaged across configurations; only
runs with status 'complete' enter statistics, the rest are counted per group in `n_incomplete`.

Intervals
- Per group: Student-t, mean ± t_{0.975, n-1} · s/√n. A sweep has 3-5 seeds per configuration;
  per-seed metrics (final accuracy, mean throughput) are averages over many steps and roughly
  normal, and t widens the interval honestly for small n. A bootstrap over 3-5 values can only
  resample those few values and gives intervals that are too narrow.
- Difference of two variants' means (b - a): Welch's t interval with Welch-Satterthwaite df,
  which does not assume equal variances across variants.
- Ratio of two variants' means (throughput, step time, memory): delta method on the log scale,
  log(m_b/m_a) ± t·sqrt(s_a²/(n_a m_a²) + s_b²/(n_b m_b²)) with Welch-Satterthwaite df on those
  two terms, then exponentiated. The interval is asymmetric and positive like a ratio should be,
  uses the same t machinery as the difference, and reduces to Fieller's interval when the
  coefficients of variation are small (they are: throughput varies by a few percent). Fieller
  can be unbounded and a bootstrap is unreliable at n = 3-5.
The interval arithmetic lives in analysis/intervals.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import pandas as pd

from analysis.intervals import diff_ci, mean_ci, ratio_ci
from bench.rundir import SYNCHRONISING, VARIANTS  # torch-free: the run-directory format

# Columns that define a configuration: everything except seed, run, status and metrics.
# Columns not listed here (and not metrics) are ignored, so two runs differing only in such a
# column are treated as seeds of one configuration.
CONFIG_KEY: tuple[str, ...] = (
    "variant", "model", "world_size", "per_rank_batch", "global_batch", "epochs", "mode", "amp",
    "bn_group_size", "lr", "limit_train", "device", "bn_emulate_ranks",
)
DEFAULT_METRICS: tuple[str, ...] = (
    "test_acc", "train_acc", "train_loss", "examples_per_s", "examples_per_s_per_rank",
    "step_ms_p50", "step_ms_p90", "peak_mem_bytes",
)
COMPLETE = "complete"
VARIANT_ORDER: tuple[str, ...] = VARIANTS
SYNC_VARIANTS = frozenset(SYNCHRONISING)
LOCAL_VARIANTS = frozenset(VARIANTS) - SYNC_VARIANTS
ONE_SEED_NOTE = "1 seed: no interval"
# With two seeds t_0.975,1 = 12.7: the interval is honest but too wide to say much (and for a positive
# quantity such as examples/s it can reach below zero); say so next to it.
TWO_SEEDS_NOTE = "2 seeds: t = 12.7, interval very wide"


@dataclass(frozen=True)
class MetricSpec:
    """How two variants are compared on a metric and how the verdict reads."""
    compare: str  # "difference" (b - a) or "ratio" (b / a)
    higher_is_better: bool
    better: str  # verdict word for the winner
    scale: float = 1.0  # verdict shows scale * difference (100: accuracy fraction -> points)
    unit: str = ""
    decimals: int = 3


METRIC_SPECS: dict[str, MetricSpec] = {
    # Accuracies are fractions in [0, 1]; verdicts report percentage points.
    "test_acc": MetricSpec("difference", True, "more accurate", 100.0, " pts", 1),
    "train_acc": MetricSpec("difference", True, "higher train accuracy", 100.0, " pts", 1),
    "train_loss": MetricSpec("difference", False, "lower train loss"),
    "examples_per_s": MetricSpec("ratio", True, "faster"),
    "examples_per_s_per_rank": MetricSpec("ratio", True, "faster per rank"),
    "step_ms_p50": MetricSpec("ratio", False, "faster (p50 step)"),
    "step_ms_p90": MetricSpec("ratio", False, "faster (p90 step)"),
    "peak_mem_bytes": MetricSpec("ratio", False, "leaner in memory"),
}


def _require(df: pd.DataFrame, cols, what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{what} lacks column(s) {missing}; has {list(df.columns)}")


def _resolve_metrics(df: pd.DataFrame, metrics) -> tuple[str, ...]:
    if metrics is None:
        return tuple(m for m in DEFAULT_METRICS if m in df.columns)
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    _require(df, metrics, "runs table")
    return metrics


def _group_note(group: pd.DataFrame, complete: pd.DataFrame) -> str:
    notes = []
    if len(complete) == 0:
        notes.append("no complete run")
    elif len(complete) == 1:
        notes.append(ONE_SEED_NOTE)
    elif len(complete) == 2:
        notes.append(TWO_SEEDS_NOTE)
    if "seed" in complete.columns and complete["seed"].duplicated().any():
        notes.append("repeated seed")
    excluded = group.loc[group["status"] != COMPLETE, "status"].value_counts()
    if len(excluded):
        notes.append("excluded: " + ", ".join(f"{k} {v}" for k, v in sorted(excluded.items())))
    return "; ".join(notes)


def group_stats(runs_df: pd.DataFrame, metrics=None) -> pd.DataFrame:
    """Per-configuration seed statistics of each metric.

    One row per configuration (`CONFIG_KEY` columns), with n_seeds (complete runs), n_incomplete,
    and for each metric m: m_n (complete runs with a value), m_mean, m_std (ddof=1), m_ci95_low,
    m_ci95_high (Student t), and a note. Defaults to the `DEFAULT_METRICS` present.

    Example (other CONFIG_KEY columns equal, not shown):
        variant seed status   test_acc        variant n_seeds test_acc_mean test_acc_std test_acc_ci95_low/high
        nn      0    complete 0.80      ->    nn      3       0.82          0.02         0.7703 / 0.8697
        nn      1    complete 0.82            sync    1       0.85          NaN          NaN (note "1 seed: no interval")
        nn      2    complete 0.84
        sync    0    complete 0.85
        sync    1    failed   NaN
    """
    _require(runs_df, CONFIG_KEY + ("status",), "runs table")
    metrics = _resolve_metrics(runs_df, metrics)
    stat_cols = [f"{m}_{s}" for m in metrics for s in ("n", "mean", "std", "ci95_low", "ci95_high")]
    columns = list(CONFIG_KEY) + ["n_seeds", "n_incomplete"] + stat_cols + ["note"]
    rows = []
    for key, group in runs_df.groupby(list(CONFIG_KEY), dropna=False, sort=True):
        complete = group[group["status"] == COMPLETE]
        row = dict(zip(CONFIG_KEY, key))
        row["n_seeds"] = len(complete)
        row["n_incomplete"] = len(group) - len(complete)
        for m in metrics:
            n, mean, std, lo, hi = mean_ci(complete[m])
            row.update({f"{m}_n": n, f"{m}_mean": mean, f"{m}_std": std,
                        f"{m}_ci95_low": lo, f"{m}_ci95_high": hi})
        row["note"] = _group_note(group, complete)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def _variant_rank(label: str) -> tuple[int, str]:
    v = label.split(" (")[0]
    return (VARIANT_ORDER.index(v), label) if v in VARIANT_ORDER else (len(VARIANT_ORDER), label)


def _verdict(spec: MetricSpec, a: str, b: str, est: float, lo: float, hi: float) -> str:
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


# Variants are paired within a configuration minus the variant and its group size: the group size
# follows from the variant (local ones 1, synchronising ones the world), and comparing nn with
# scratch-sync at world size 2 is the question. A group other than the variant's own (sync over 2 of
# 4 ranks) is named in the pair's label, e.g. "sync (2 ranks)".
PAIR_KEY: tuple[str, ...] = tuple(c for c in CONFIG_KEY if c not in ("variant", "bn_group_size"))


def pair_label(variant: str, bn_group_size: int, world_size: int) -> str:
    """The variant's name, with its BN scope when that is not the variant's own.

    >>> pair_label("sync", 4, 4), pair_label("nn", 1, 4), pair_label("sync", 2, 4)
    ('sync', 'nn', 'sync (2 ranks)')
    """
    scope = bn_scope(variant, bn_group_size, world_size)
    own = "world" if variant in SYNC_VARIANTS else "local"
    return variant if scope == own else f"{variant} ({scope})"


def pairwise(runs_df: pd.DataFrame, metrics=None, pairs=None) -> pd.DataFrame:
    """Compare variants within configurations that differ only by variant.

    One row per (configuration without variant, pair, metric): n_a, n_b, mean_a, mean_b,
    comparison ('difference' = b - a, Welch t; 'ratio' = b / a, log delta method, per
    `METRIC_SPECS`), estimate, ci95_low, ci95_high, df and a verdict. Pairs default to all
    variant pairs present, a before b in `VARIANT_ORDER`; `pairs=[(a, b), ...]` picks some.

    Example (one configuration, 3 seeds each):
        variant examples_per_s            variant_a variant_b comparison estimate verdict
        scratch 1000, 1010, 990     ->    scratch   nn        ratio      1.68     nn faster: 1.68× [1.64, 1.72]
        nn      1680, 1700, 1660
    """
    metrics = _resolve_metrics(runs_df, metrics)
    gs = group_stats(runs_df, metrics)
    gs = gs[gs["n_seeds"] > 0]
    rows = []
    for key, cfg in gs.groupby(list(PAIR_KEY), dropna=False, sort=True):
        by_variant = {pair_label(r["variant"], r["bn_group_size"], r["world_size"]): r
                      for r in cfg.to_dict("records")}
        if pairs is None:
            chosen = combinations(sorted(by_variant, key=_variant_rank), 2)
        else:
            chosen = [(a, b) for a, b in pairs if a in by_variant and b in by_variant]
        for a, b in chosen:
            ra, rb = by_variant[a], by_variant[b]
            for m in metrics:
                spec = METRIC_SPECS.get(m, MetricSpec("difference", True, f"higher {m}"))
                args = (ra[f"{m}_n"], ra[f"{m}_mean"], ra[f"{m}_std"],
                        rb[f"{m}_n"], rb[f"{m}_mean"], rb[f"{m}_std"])
                if spec.unit == " pts" and max(args[1], args[4]) > 1:
                    raise ValueError(f"{m} must be a fraction in [0, 1], got mean "
                                     f"{max(args[1], args[4])} (a percentage?)")
                est, lo, hi, df = (ratio_ci if spec.compare == "ratio" else diff_ci)(*args)
                rows.append({**dict(zip(PAIR_KEY, key)), "metric": m, "variant_a": a,
                             "variant_b": b, "n_a": args[0], "n_b": args[3],
                             "mean_a": args[1], "mean_b": args[4], "comparison": spec.compare,
                             "estimate": est, "ci95_low": lo, "ci95_high": hi, "df": df,
                             "verdict": _verdict(spec, a, b, est, lo, hi)})
    columns = list(PAIR_KEY) + ["metric", "variant_a", "variant_b", "n_a", "n_b", "mean_a",
                                "mean_b", "comparison", "estimate", "ci95_low", "ci95_high",
                                "df", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def compare_variants(runs_df: pd.DataFrame, metric: str, a: str, b: str) -> pd.DataFrame:
    """`pairwise` for one metric and one ordered pair: estimate is b - a (or b / a)."""
    return pairwise(runs_df, metrics=(metric,), pairs=[(a, b)])


SCALING_KEY: tuple[str, ...] = tuple(c for c in CONFIG_KEY if c not in ("world_size", "global_batch"))
# What one weak-scaling line holds fixed: SCALING_KEY with the group size read as a scope
# ("local", "world", or "k ranks"), since a whole-world group grows with the world size.
SCALING_LINE_KEY: tuple[str, ...] = tuple("bn_scope" if c == "bn_group_size" else c for c in SCALING_KEY)


def bn_scope(variant: str, bn_group_size: int, world_size: int) -> str:
    """'local' (one rank's samples), 'world' (every rank's) or 'k ranks' (a group of k).

    >>> bn_scope("nn", 1, 4), bn_scope("sync", 4, 4), bn_scope("sync", 1, 1), bn_scope("sync", 2, 4)
    ('local', 'world', 'world', '2 ranks')
    """
    if variant in SYNC_VARIANTS and bn_group_size in (0, world_size):
        return "world"
    return "local" if bn_group_size <= 1 else f"{int(bn_group_size)} ranks"


def scaling_table(group_stats_df: pd.DataFrame) -> pd.DataFrame:
    """Weak scaling: global examples/s against world size at fixed per-rank batch.

    Baseline is world size 1 of the same variant, per-rank batch and every other config column
    (`SCALING_KEY`); speedup = eps(W) / eps(1) with a log delta-method interval, efficiency =
    speedup / W. Without a world-size-1 baseline speedup is NaN and the note says so. A
    synchronised variant over the whole world (bn_group_size == world_size, as run directories
    record it) scales against its world-size-1 run; a smaller group (sync over 2 of 4 ranks) is
    another configuration.

    Example:
        variant per_rank_batch world_size examples_per_s_mean    speedup efficiency
        nn      64             1          1000             ->    1.0     1.0
        nn      64             4          3600                   3.6     0.9
        sync    64             2          1500                   NaN     NaN   (note "no world size 1 baseline")
    """
    need = CONFIG_KEY + ("n_seeds", "examples_per_s_n", "examples_per_s_mean", "examples_per_s_std",
                         "examples_per_s_ci95_low", "examples_per_s_ci95_high")
    _require(group_stats_df, need, "group_stats table")
    rows = []
    gs = group_stats_df[group_stats_df["n_seeds"] > 0].copy()
    # A synchronised BN over the whole world has group size W at world size W (1 at the baseline):
    # weak scaling compares it across W as one configuration, so lines are keyed on its scope.
    gs["bn_scope"] = [bn_scope(v, g, w) for v, g, w in zip(gs["variant"], gs["bn_group_size"], gs["world_size"])]
    for key, cfg in gs.groupby(list(SCALING_LINE_KEY), dropna=False, sort=True):
        base = cfg[cfg["world_size"] == 1]
        for r in cfg.sort_values("world_size").to_dict("records"):
            w = r["world_size"]
            out = {**dict(zip(SCALING_LINE_KEY, key)), "bn_group_size": r["bn_group_size"], "world_size": w,
                   "global_batch": r["global_batch"], "n_seeds": r["n_seeds"]}
            for s in ("mean", "ci95_low", "ci95_high"):
                out[f"examples_per_s_{s}"] = r[f"examples_per_s_{s}"]
            note = ""
            if w == 1:  # the baseline against itself: exactly 1, no interval
                est, lo, hi = 1.0, math.nan, math.nan
                note = "baseline"
            elif len(base) == 0:
                est = lo = hi = math.nan
                note = "no world size 1 baseline"
            else:
                b = base.iloc[0]
                est, lo, hi, _ = ratio_ci(b["examples_per_s_n"], b["examples_per_s_mean"],
                                          b["examples_per_s_std"], r["examples_per_s_n"],
                                          r["examples_per_s_mean"], r["examples_per_s_std"])
                if math.isnan(lo) and not math.isnan(est):
                    note = ONE_SEED_NOTE
            out.update({"speedup": est, "speedup_ci95_low": lo, "speedup_ci95_high": hi,
                        "efficiency": est / w, "efficiency_ci95_low": lo / w,
                        "efficiency_ci95_high": hi / w, "note": note})
            rows.append(out)
    columns = list(SCALING_KEY) + [
        "bn_scope", "world_size", "global_batch", "n_seeds", "examples_per_s_mean", "examples_per_s_ci95_low",
        "examples_per_s_ci95_high", "speedup", "speedup_ci95_low", "speedup_ci95_high",
        "efficiency", "efficiency_ci95_low", "efficiency_ci95_high", "note"]
    return pd.DataFrame(rows, columns=columns)


def effective_bn_batch(variant: str, per_rank_batch: int, world_size: int,
                       bn_group_size: int, bn_emulate_ranks: int) -> float:
    """Examples one BN statistic is computed over.

    Local variants: per_rank_batch / bn_emulate_ranks (emulation splits the batch into that many
    chunks normalised separately). Synchronised variants: per_rank_batch × bn_group_size, or
    × world_size when bn_group_size is 0 (n/a = whole world). NaN for unknown variants and for
    emulated synchronised runs, whose meaning is not defined here.
    """
    emulate = 1 if pd.isna(bn_emulate_ranks) else int(bn_emulate_ranks)
    if variant in LOCAL_VARIANTS:
        return per_rank_batch / max(emulate, 1)
    if variant in SYNC_VARIANTS and emulate <= 1:
        group = bn_group_size if (not pd.isna(bn_group_size) and bn_group_size > 0) else world_size
        return float(per_rank_batch * group)
    return math.nan


def accuracy_vs_per_rank_batch(group_stats_df: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy (mean, 95 % t interval) per configuration with its effective BN batch.

    Rows are sorted by variant, per_rank_batch and the rest of the config.

    Example:
        variant world_size per_rank_batch bn_group_size test_acc_mean   ->   effective_bn_batch
        nn      4          16             0             0.86                 16
        sync    4          16             0             0.88                 64
        sync    4          16             2             0.87                 32
    """
    need = CONFIG_KEY + ("n_seeds", "test_acc_mean", "test_acc_ci95_low", "test_acc_ci95_high", "note")
    _require(group_stats_df, need, "group_stats table")
    gs = group_stats_df[group_stats_df["n_seeds"] > 0]
    out = gs[list(CONFIG_KEY) + ["n_seeds", "test_acc_mean", "test_acc_ci95_low",
                                 "test_acc_ci95_high", "note"]].copy()
    out.insert(len(CONFIG_KEY), "effective_bn_batch", [
        effective_bn_batch(r["variant"], r["per_rank_batch"], r["world_size"],
                           r["bn_group_size"], r["bn_emulate_ranks"])
        for r in gs.to_dict("records")])
    out["_rank"] = [_variant_rank(v)[0] for v in out["variant"]]
    out = out.sort_values(["_rank", "variant", "per_rank_batch", "world_size"], kind="stable")
    return out.drop(columns="_rank").reset_index(drop=True)
