"""The small-batch cliff (pure): test accuracy against the examples one BN statistic is computed
over, at one global batch on one device (``launch.sweep --preset small-batch``).

A local BN variant (scratch, nn) on K emulated ranks normalises each 1/K slice of the global batch
G with its own statistics: ``examples_per_statistic = per_rank_batch / K``. A synchronising variant
(statistics over the whole batch) and a batch-free one (gn: none) compute the same thing however
the batch is split, so at one global batch each is one configuration, drawn as a flat line over
every split the local variant was run at (``flat``).

The published anchor beside it: Wu & He, Group Normalization (ECCV 2018), ResNet-50 on ImageNet,
top-1 error (%) at 32, 16, 8, 4 and 2 images per GPU.
"""
from __future__ import annotations

import math

import pandas as pd

from analysis.stats.intervals import diff_ci
from bench.rundir import BATCH_FREE, SYNCHRONISING

X = "examples_per_statistic"
# (model, data, training length, recipe): a curve never mixes them
CURVE_KEY = ["model", "global_batch", "epochs", "lr", "limit_train", "data", "image_size", "mode", "amp", "steps"]
CURVE_COLUMNS = (*CURVE_KEY, "variant", X, "flat", "n_seeds", "test_acc_mean", "test_acc_std",
                 "test_acc_ci95_low", "test_acc_ci95_high")
ANCHOR = pd.DataFrame({"images_per_gpu": [32, 16, 8, 4, 2], "bn_top1_error_pct": [23.6, 23.7, 24.8, 27.3, 34.7],
                       "gn_top1_error_pct": [24.1, 24.2, 24.0, 24.2, 24.1]})
ANCHOR_SOURCE = "Wu & He, Group Normalization (ECCV 2018), ResNet-50 on ImageNet, Figure 1"


def _local(variant: str) -> bool:
    return variant not in SYNCHRONISING and variant not in BATCH_FREE


def curve(groups: pd.DataFrame) -> pd.DataFrame:
    """One row per (curve, variant, examples per statistic) from analysis.stats.seed_groups.group_stats rows of
    world size 1; empty unless some local variant ran at two or more emulated rank counts.

        variant per_rank_batch bn_emulate_ranks test_acc_mean  ->  variant examples_per_statistic flat
        nn      256            1                0.88               nn      256                    False
        nn      256            128              0.47               nn      2                      False
        gn      256            1                0.86               gn      256, 2                 True
    """
    g = groups[(groups["world_size"] == 1) & (groups["n_seeds"] > 0) & groups["test_acc_mean"].notna()].copy()
    if g.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    g["bn_emulate_ranks"] = g["bn_emulate_ranks"].fillna(1).astype(int)
    g[X] = g["per_rank_batch"] / g["bn_emulate_ranks"]
    g["flat"] = False
    parts = []
    for _, c in g.groupby(CURVE_KEY, dropna=False, sort=True):
        local = c[[_local(v) for v in c["variant"]]]
        if local.empty or local.groupby("variant")["bn_emulate_ranks"].nunique().max() < 2:
            continue
        xs = sorted(local[X].unique(), reverse=True)
        others = c[[not _local(v) and k == 1 for v, k in zip(c["variant"], c["bn_emulate_ranks"])]]
        flat = [o.to_frame().T.assign(**{X: x, "flat": True}) for _, o in others.iterrows() for x in xs]
        parts += [local, *flat]
    if not parts:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    out = pd.concat(parts, ignore_index=True)[list(CURVE_COLUMNS)]
    return out.sort_values([*CURVE_KEY, "variant", X], ascending=[True] * (len(CURVE_KEY) + 1) + [False],
                           kind="stable").reset_index(drop=True)


def _row(c: pd.DataFrame, variant: str, x: float) -> dict | None:
    hit = c[(c["variant"] == variant) & (c[X] == x)]
    return None if hit.empty else hit.iloc[0].to_dict()


def drops(curve_df: pd.DataFrame, small: int = 2, large: int = 32) -> pd.DataFrame:
    """Per curve and variant: accuracy at ``small`` examples per statistic minus at ``large``, in points,
    with Welch's 95 % interval over seeds; and each flat variant minus the local one at ``small``.

    >>> c = pd.DataFrame({"variant": ["nn", "nn"], X: [32.0, 2.0], "flat": False, "n_seeds": 3,
    ...                   "test_acc_mean": [0.88, 0.50], "test_acc_std": [0.01, 0.02]}).assign(
    ...     **{k: 0 for k in CURVE_KEY})
    >>> round(float(drops(c)["diff_pts"][0]), 1)
    -38.0
    """
    rows = []
    for key, c in curve_df.groupby(CURVE_KEY, dropna=False, sort=True):
        local = [v for v in c.loc[~c["flat"].astype(bool), "variant"].unique()]
        pairs = [(v, large, v, small) for v in local]
        pairs += [(v, small, f, small) for v in local for f in c.loc[c["flat"].astype(bool), "variant"].unique()]
        for va, xa, vb, xb in pairs:
            a, b = _row(c, va, xa), _row(c, vb, xb)
            if a is None or b is None:
                continue
            d = diff_ci(int(a["n_seeds"]), a["test_acc_mean"], a["test_acc_std"], int(b["n_seeds"]),
                        b["test_acc_mean"], b["test_acc_std"], bounds=(-1.0, 1.0))
            rows.append({**dict(zip(CURVE_KEY, key)), "a": f"{va} at {xa:g}", "b": f"{vb} at {xb:g}",
                         "n_a": int(a["n_seeds"]), "n_b": int(b["n_seeds"]), "diff_pts": 100 * d.estimate,
                         "diff_ci95_low": 100 * d.low, "diff_ci95_high": 100 * d.high})
    return pd.DataFrame(rows, columns=[*CURVE_KEY, "a", "b", "n_a", "n_b", "diff_pts", "diff_ci95_low",
                                       "diff_ci95_high"])


def spread_pts(curve_df: pd.DataFrame, variant: str) -> float:
    """Largest minus smallest mean accuracy of ``variant`` over its curve, in points (NaN if absent)."""
    m = curve_df.loc[(curve_df["variant"] == variant) & ~curve_df["flat"].astype(bool), "test_acc_mean"]
    return 100 * float(m.max() - m.min()) if len(m) else math.nan
