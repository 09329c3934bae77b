"""Per-rank step-time statistics: pure DataFrame -> DataFrame transforms.

The input is `analysis.load.run_dirs.load_step_times`: one row per measured step per rank (run, variant,
world_size, ..., rank, epoch, step, step_ms). Under DDP every step ends in a gradient all-reduce, so
a rank that computes faster waits for the slowest one; comparing ranks' medians shows that skew,
and each rank's IQR over its median says whether its steps were steady enough to trust one number
(torch.utils.benchmark flags more than 10 %). A run's median also gets a within-run interval by a
block bootstrap of its steps in time order (analysis.stats.block_bootstrap, whose docstring states its limits).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats.block_bootstrap import median_ci
from bench.rundir import NOISY_IQR_OVER_MEDIAN  # torch.utils.benchmark's "this measurement is noisy"

RANK_COLUMNS = ("run", "variant", "world_size", "rank", "steps", "step_ms_p50", "step_ms_p90",
                "step_ms_iqr", "iqr_over_median", "noisy")
MEDIAN_CI_COLUMNS = ("run", "rank", "steps", "step_ms_p50", "step_ms_p50_ci95_low", "step_ms_p50_ci95_high",
                     "block_steps")
RUN_COLUMNS = ("run", "variant", "world_size", "steps_per_rank", "slowest_rank", "step_ms_p50",
               "step_ms_p90", "iqr_over_median", "noisy_ranks", "slowest_over_fastest_p50")


def rank_stats(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, rank): step count, median, p90, IQR (ms), IQR/median and the noise flag.

    >>> s = pd.DataFrame({"run": "r", "variant": "nn", "world_size": 1, "rank": 0,
    ...                   "step_ms": [1.0, 2.0, 3.0, 4.0, 5.0]})
    >>> rank_stats(s)[["steps", "step_ms_p50", "step_ms_iqr", "iqr_over_median", "noisy"]].values.tolist()
    [[5, 3.0, 2.0, 0.6666666666666666, True]]
    """
    if steps.empty:
        return pd.DataFrame(columns=list(RANK_COLUMNS))
    g = steps.groupby(["run", "variant", "world_size", "rank"], sort=True)["step_ms"]
    out = pd.DataFrame({
        "steps": g.size(),
        "step_ms_p50": g.median(),
        "step_ms_p90": g.quantile(0.9),
        "step_ms_iqr": g.quantile(0.75) - g.quantile(0.25),
    }).reset_index()
    out["iqr_over_median"] = out["step_ms_iqr"] / out["step_ms_p50"]
    out["noisy"] = out["iqr_over_median"] > NOISY_IQR_OVER_MEDIAN
    return out[list(RANK_COLUMNS)]


def with_hosts(ranks: pd.DataFrame, hosts: pd.DataFrame) -> pd.DataFrame:
    """`ranks` (one row per run and rank) with a `host` column from `hosts` (run, rank, host); ''
    where a run did not record its ranks' hosts.

    >>> r = pd.DataFrame({"run": "r", "rank": [0, 1]})
    >>> with_hosts(r, pd.DataFrame({"run": ["r"], "rank": [1], "host": ["b"]}))["host"].tolist()
    ['', 'b']
    """
    if hosts.empty:
        return ranks.assign(host="")
    out = ranks.merge(hosts[["run", "rank", "host"]], on=["run", "rank"], how="left")
    return out.assign(host=out["host"].fillna(""))


def run_stats(ranks: pd.DataFrame) -> pd.DataFrame:
    """One row per run from `rank_stats`: the slowest rank's (largest median) numbers, how many ranks
    are noisy, and the slowest rank's median over the fastest's (1.0 for one rank).

    >>> r = pd.DataFrame({"run": "r", "variant": "nn", "world_size": 2, "rank": [0, 1], "steps": 4,
    ...                   "step_ms_p50": [10.0, 12.5], "step_ms_p90": [11.0, 14.0], "step_ms_iqr": 1.0,
    ...                   "iqr_over_median": [0.1, 0.08], "noisy": [False, False]})
    >>> run_stats(r)[["slowest_rank", "step_ms_p50", "slowest_over_fastest_p50"]].to_dict("records")
    [{'slowest_rank': 1, 'step_ms_p50': 12.5, 'slowest_over_fastest_p50': 1.25}]
    """
    if ranks.empty:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    rows = []
    for (run, variant, world_size), g in ranks.groupby(["run", "variant", "world_size"], sort=True):
        slow = g.loc[g["step_ms_p50"].idxmax()]
        rows.append({
            "run": run, "variant": variant, "world_size": world_size, "steps_per_rank": int(g["steps"].min()),
            "slowest_rank": int(slow["rank"]), "step_ms_p50": slow["step_ms_p50"],
            "step_ms_p90": slow["step_ms_p90"], "iqr_over_median": slow["iqr_over_median"],
            "noisy_ranks": int(g["noisy"].sum()),
            "slowest_over_fastest_p50": slow["step_ms_p50"] / g["step_ms_p50"].min(),
        })
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


def _slowest_rank(g: pd.DataFrame) -> tuple[int, np.ndarray]:
    """(rank with the largest median, that rank's step_ms in time order) of one run's steps."""
    slowest = g.groupby("rank")["step_ms"].median().idxmax()
    return int(slowest), g[g["rank"] == slowest].sort_values(["epoch", "step"])["step_ms"].to_numpy(dtype=float)


def slowest_rank_samples(steps: pd.DataFrame) -> dict[str, np.ndarray]:
    """{run: step_ms of its slowest rank (largest median, as `run_stats`), in time order}.

    >>> s = pd.DataFrame({"run": "r", "rank": [0, 0, 1, 1], "epoch": 1, "step": [1, 2, 1, 2],
    ...                   "step_ms": [1.0, 2.0, 5.0, 4.0]})
    >>> slowest_rank_samples(s)["r"].tolist()
    [5.0, 4.0]
    """
    return {run: _slowest_rank(g)[1] for run, g in steps.groupby("run", sort=True)}


def run_median_cis(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its slowest rank's median step time with a within-run 95 % block-bootstrap
    interval (NaN below block_bootstrap.MIN_STEPS steps) and the block length used (`MEDIAN_CI_COLUMNS`)."""
    rows = []
    for run, g in steps.groupby("run", sort=True):
        rank, x = _slowest_rank(g)
        ci = median_ci(x)
        rows.append({"run": run, "rank": rank, "steps": len(x), "step_ms_p50": ci.estimate,
                     "step_ms_p50_ci95_low": ci.low, "step_ms_p50_ci95_high": ci.high, "block_steps": ci.block})
    return pd.DataFrame(rows, columns=list(MEDIAN_CI_COLUMNS))
