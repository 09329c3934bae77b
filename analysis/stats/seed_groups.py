"""Runs grouped by configuration, and each metric's mean and interval over seeds.

The input is a runs table, one row per run (the `summary.csv` rows built by analysis/load/run_dirs.py).
Runs are grouped by configuration (`CONFIG_KEY`) and never averaged across configurations; only
runs with status 'complete' enter statistics, the rest are counted per group in `n_incomplete`.

Each metric's interval is a Student-t interval over seeds built in the metric's own space
(`MetricSpec.space`, arithmetic in analysis/stats/intervals.py): log scale for positive metrics, logit
scale for accuracies, raw scale otherwise. A sweep has 3–5 seeds per configuration; per-seed metrics
(final accuracy, mean throughput) are averages over many steps and roughly normal, and t widens
the interval honestly for small n. A bootstrap over 3–5 values can only resample those few values
and gives intervals that are too narrow. docs/statistics.md has every estimator and its assumptions.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.stats.intervals import mean_ci
from bench import rundir  # torch-free: the run-directory format
from bench.rundir import BATCH_FREE, SYNCHRONISING, VARIANTS

# Columns that define a configuration: everything except seed, run, status and metrics.
# Columns not listed here (and not metrics) are ignored, so two runs differing only in such a
# column are treated as seeds of one configuration.
CONFIG_KEY: tuple[str, ...] = (
    "variant", "model", "world_size", "per_rank_batch", "global_batch", "epochs", "mode", "amp",
    "bn_group_size", "lr", "limit_train", "device", "bn_emulate_ranks", "data", "image_size",
    "channels_last", "steps",
)
DEFAULT_METRICS: tuple[str, ...] = (
    "test_acc", "train_acc", "train_loss", "examples_per_s", "examples_per_s_per_rank",
    "step_ms_p50", "step_ms_p90", "peak_mem_bytes",
)
COMPLETE = rundir.COMPLETE
VARIANT_ORDER: tuple[str, ...] = VARIANTS
SYNC_VARIANTS = frozenset(SYNCHRONISING)
LOCAL_VARIANTS = frozenset(VARIANTS) - SYNC_VARIANTS - frozenset(BATCH_FREE)  # gn: no batch statistic at all
ONE_SEED_NOTE = "1 seed: no interval"
# With two seeds t_0.975,1 = 12.7: the interval is honest (and, in the metric's own space, inside
# its range) but too wide to say much; say so next to it.
TWO_SEEDS_NOTE = "2 seeds: t = 12.7, interval very wide"


@dataclass(frozen=True)
class MetricSpec:
    """What range a metric lives in, how two variants are compared on it and how the verdict reads."""
    compare: str  # "difference" (b - a) or "ratio" (b / a)
    higher_is_better: bool
    better: str  # verdict word for the winner
    scale: float = 1.0  # verdict shows scale * difference (100: accuracy fraction -> points)
    unit: str = ""
    decimals: int = 3
    space: str = "real"  # "positive", "proportion" (in [0, 1]) or "real": where its interval is built


METRIC_SPECS: dict[str, MetricSpec] = {
    # Accuracies are fractions in [0, 1]; verdicts report percentage points.
    "test_acc": MetricSpec("difference", True, "more accurate", 100.0, " pts", 1, "proportion"),
    "train_acc": MetricSpec("difference", True, "higher train accuracy", 100.0, " pts", 1, "proportion"),
    "train_loss": MetricSpec("difference", False, "lower train loss", space="positive"),
    "examples_per_s": MetricSpec("ratio", True, "faster", space="positive"),
    "examples_per_s_per_rank": MetricSpec("ratio", True, "faster per rank", space="positive"),
    "step_ms_p50": MetricSpec("ratio", False, "faster (p50 step)", space="positive"),
    "step_ms_p90": MetricSpec("ratio", False, "faster (p90 step)", space="positive"),
    "peak_mem_bytes": MetricSpec("ratio", False, "leaner in memory", space="positive"),
}


def metric_spec(metric: str) -> MetricSpec:
    """The metric's spec; an unknown metric is a higher-is-better difference on the raw scale."""
    return METRIC_SPECS.get(metric, MetricSpec("difference", True, f"higher {metric}"))


def require(df: pd.DataFrame, cols, what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{what} lacks column(s) {missing}; has {list(df.columns)}")


def resolve_metrics(df: pd.DataFrame, metrics) -> tuple[str, ...]:
    """`metrics` as a tuple (a string is one metric); None means the `DEFAULT_METRICS` in df."""
    if metrics is None:
        return tuple(m for m in DEFAULT_METRICS if m in df.columns)
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    require(df, metrics, "runs table")
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
    for each metric m: m_n (complete runs with a value), m_mean, m_std (ddof=1), m_ci95_low,
    m_ci95_high (t interval in the metric's space), a note, and `runs`: the names of the complete
    runs, space-separated. Defaults to the `DEFAULT_METRICS` present.

    Example (other CONFIG_KEY columns equal, not shown; test_acc interval on the logit scale):
        variant seed status   test_acc        variant n_seeds test_acc_mean test_acc_std test_acc_ci95_low/high
        nn      0    complete 0.80      ->    nn      3       0.82          0.02         0.7649 / 0.8645
        nn      1    complete 0.82            sync    1       0.85          NaN          NaN (note "1 seed: no interval")
        nn      2    complete 0.84
        sync    0    complete 0.85
        sync    1    failed   NaN
    """
    require(runs_df, CONFIG_KEY + ("status",), "runs table")
    metrics = resolve_metrics(runs_df, metrics)
    stat_cols = [f"{m}_{s}" for m in metrics for s in ("n", "mean", "std", "ci95_low", "ci95_high")]
    columns = list(CONFIG_KEY) + ["n_seeds", "n_incomplete"] + stat_cols + ["note", "runs"]
    rows = []
    for key, group in runs_df.groupby(list(CONFIG_KEY), dropna=False, sort=True):
        complete = group[group["status"] == COMPLETE]
        row = dict(zip(CONFIG_KEY, key))
        row["n_seeds"] = len(complete)
        row["n_incomplete"] = len(group) - len(complete)
        for m in metrics:
            try:
                n, mean, std, lo, hi = mean_ci(complete[m], metric_spec(m).space)
            except ValueError as e:
                raise ValueError(f"{m}: {e}") from None
            row.update({f"{m}_n": n, f"{m}_mean": mean, f"{m}_std": std,
                        f"{m}_ci95_low": lo, f"{m}_ci95_high": hi})
        row["note"] = _group_note(group, complete)
        row["runs"] = " ".join(map(str, complete["run"])) if "run" in complete.columns else ""
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def variant_rank(label: str) -> tuple[int, str]:
    """Sort key: `VARIANT_ORDER` first, then the label ('sync (2 ranks)' sorts with 'sync')."""
    v = label.split(" (")[0]
    return (VARIANT_ORDER.index(v), label) if v in VARIANT_ORDER else (len(VARIANT_ORDER), label)


def bn_scope(variant: str, bn_group_size: int, world_size: int) -> str:
    """'local' (one rank's samples), 'world' (every rank's) or 'k ranks' (a group of k).

    >>> bn_scope("nn", 1, 4), bn_scope("sync", 4, 4), bn_scope("sync", 1, 1), bn_scope("sync", 2, 4)
    ('local', 'world', 'world', '2 ranks')
    """
    if variant in SYNC_VARIANTS and bn_group_size in (0, world_size):
        return "world"
    return "local" if bn_group_size <= 1 else f"{int(bn_group_size)} ranks"


def pair_label(variant: str, bn_group_size: int, world_size: int) -> str:
    """The variant's name, with its BN scope when that is not the variant's own.

    >>> pair_label("sync", 4, 4), pair_label("nn", 1, 4), pair_label("sync", 2, 4)
    ('sync', 'nn', 'sync (2 ranks)')
    """
    scope = bn_scope(variant, bn_group_size, world_size)
    own = "world" if variant in SYNC_VARIANTS else "local"
    return variant if scope == own else f"{variant} ({scope})"
