"""Weak scaling and accuracy against batch: tables built on `group_stats` (pure transforms).

Speed-up is a ratio of two configurations' mean examples/s, so its interval is the log-scale
delta-method ratio interval of analysis.stats.intervals (positive, asymmetric); efficiency is speed-up / W
with the same interval divided by W. Accuracy against batch reuses `group_stats`' logit-scale
interval, which stays in [0, 1].
"""
from __future__ import annotations

import math

import pandas as pd

from analysis.stats.intervals import ratio_ci
from analysis.stats.seed_groups import CONFIG_KEY, LOCAL_VARIANTS, ONE_SEED_NOTE, SYNC_VARIANTS, bn_scope, require, variant_rank

SCALING_KEY: tuple[str, ...] = tuple(c for c in CONFIG_KEY if c not in ("world_size", "global_batch"))
# What one weak-scaling line holds fixed: SCALING_KEY with the group size read as a scope
# ("local", "world", or "k ranks"), since a whole-world group grows with the world size.
SCALING_LINE_KEY: tuple[str, ...] = tuple("bn_scope" if c == "bn_group_size" else c for c in SCALING_KEY)
SCALING_COLUMNS: tuple[str, ...] = SCALING_KEY + (
    "bn_scope", "world_size", "global_batch", "n_seeds", "examples_per_s_mean", "examples_per_s_ci95_low",
    "examples_per_s_ci95_high", "speedup", "speedup_ci95_low", "speedup_ci95_high",
    "efficiency", "efficiency_ci95_low", "efficiency_ci95_high", "note")


def _speedup(r: dict, base: pd.DataFrame) -> tuple[float, float, float, str]:
    """(speedup, low, high, note) of one configuration against its world-size-1 baseline."""
    if r["world_size"] == 1:  # the baseline against itself: exactly 1, no interval
        return 1.0, math.nan, math.nan, "baseline"
    if len(base) == 0:
        return math.nan, math.nan, math.nan, "no world size 1 baseline"
    b = base.iloc[0]
    est, lo, hi, _, _ = ratio_ci(b["examples_per_s_n"], b["examples_per_s_mean"], b["examples_per_s_std"],
                                 r["examples_per_s_n"], r["examples_per_s_mean"], r["examples_per_s_std"])
    return est, lo, hi, ONE_SEED_NOTE if math.isnan(lo) and not math.isnan(est) else ""


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
    require(group_stats_df, need, "group_stats table")
    rows = []
    gs = group_stats_df[group_stats_df["n_seeds"] > 0].copy()
    # A synchronised BN over the whole world has group size W at world size W (1 at the baseline):
    # weak scaling compares it across W as one configuration, so lines are keyed on its scope.
    gs["bn_scope"] = [bn_scope(v, g, w) for v, g, w in zip(gs["variant"], gs["bn_group_size"], gs["world_size"])]
    for key, cfg in gs.groupby(list(SCALING_LINE_KEY), dropna=False, sort=True):
        base = cfg[cfg["world_size"] == 1]
        for r in cfg.sort_values("world_size").to_dict("records"):
            w = r["world_size"]
            est, lo, hi, note = _speedup(r, base)
            rows.append({**dict(zip(SCALING_LINE_KEY, key)), "bn_group_size": r["bn_group_size"],
                         "world_size": w, "global_batch": r["global_batch"], "n_seeds": r["n_seeds"],
                         **{f"examples_per_s_{s}": r[f"examples_per_s_{s}"] for s in ("mean", "ci95_low", "ci95_high")},
                         "speedup": est, "speedup_ci95_low": lo, "speedup_ci95_high": hi,
                         "efficiency": est / w, "efficiency_ci95_low": lo / w,
                         "efficiency_ci95_high": hi / w, "note": note})
    return pd.DataFrame(rows, columns=list(SCALING_COLUMNS))


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
    """Test accuracy (mean, 95 % interval on the logit scale) per configuration with its effective BN batch.

    Rows are sorted by variant, per_rank_batch and the rest of the config.

    Example:
        variant world_size per_rank_batch bn_group_size test_acc_mean   ->   effective_bn_batch
        nn      4          16             0             0.86                 16
        sync    4          16             0             0.88                 64
        sync    4          16             2             0.87                 32
    """
    need = CONFIG_KEY + ("n_seeds", "test_acc_mean", "test_acc_ci95_low", "test_acc_ci95_high", "note")
    require(group_stats_df, need, "group_stats table")
    gs = group_stats_df[group_stats_df["n_seeds"] > 0]
    out = gs[list(CONFIG_KEY) + ["n_seeds", "test_acc_mean", "test_acc_ci95_low",
                                 "test_acc_ci95_high", "note"]].copy()
    out.insert(len(CONFIG_KEY), "effective_bn_batch", [
        effective_bn_batch(r["variant"], r["per_rank_batch"], r["world_size"],
                           r["bn_group_size"], r["bn_emulate_ranks"])
        for r in gs.to_dict("records")])
    out["_rank"] = [variant_rank(v)[0] for v in out["variant"]]
    out = out.sort_values(["_rank", "variant", "per_rank_batch", "world_size"], kind="stable")
    return out.drop(columns="_rank").reset_index(drop=True)
