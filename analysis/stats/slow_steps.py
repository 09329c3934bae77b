"""Where a run's mean throughput and its median step disagree, and which steps made them disagree.

Mean examples/s (the Runs table's) is global batch × steps / total time: a few very slow steps pull
it down. The median step is not moved by them. Where the two differ by more than
bench.rundir.MEAN_MEDIAN_GAP, the report names the slow steps: those over
bench.rundir.SLOW_STEP_OVER_MEDIAN × the median, on the slowest rank (the one that sets the pace).
"""
from __future__ import annotations

import pandas as pd

from bench.rundir import MEAN_MEDIAN_GAP, SLOW_STEP_OVER_MEDIAN

GAP_COLUMNS = ("run", "variant", "examples_per_s", "median_examples_per_s", "gap", "flagged", "steps",
               "median_ms", "slow_steps", "slow_ms_max", "first_slow", "last_slow")


def _slowest(g: pd.DataFrame) -> pd.DataFrame:
    rank = g.groupby("rank")["step_ms"].sum().idxmax()
    return g[g["rank"] == rank]


def mean_median_gaps(runs: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """Per run with step times: mean examples/s, the examples/s of its median step, their gap
    (mean / median-based − 1), whether it is flagged, and the slow steps: how many, the slowest
    (ms), the first and last as (epoch, step).

    >>> runs = pd.DataFrame({"run": ["r"], "variant": ["nn"], "global_batch": [100], "examples_per_s": [5000.0]})
    >>> steps = pd.DataFrame({"run": "r", "rank": 0, "epoch": 1, "step": range(10),
    ...                       "step_ms": [10.0] * 9 + [110.0]})
    >>> mean_median_gaps(runs, steps)[["median_examples_per_s", "flagged", "slow_steps", "last_slow"]].values.tolist()
    [[10000.0, True, 1, (1, 9)]]
    """
    rows = []
    meta = runs.set_index("run")
    for run, g in steps.groupby("run", sort=True):
        if run not in meta.index:
            continue
        s = _slowest(g)
        med = float(s["step_ms"].median())
        mean_eps = float(meta.at[run, "examples_per_s"])
        median_eps = float(meta.at[run, "global_batch"]) / (med / 1e3)
        slow = s[s["step_ms"] > SLOW_STEP_OVER_MEDIAN * med].sort_values(["epoch", "step"])
        gap = mean_eps / median_eps - 1
        rows.append({"run": run, "variant": meta.at[run, "variant"], "examples_per_s": mean_eps,
                     "median_examples_per_s": median_eps, "gap": gap, "flagged": abs(gap) > MEAN_MEDIAN_GAP,
                     "steps": len(s), "median_ms": med, "slow_steps": len(slow),
                     "slow_ms_max": float(slow["step_ms"].max()) if len(slow) else float("nan"),
                     "first_slow": tuple(map(int, slow.iloc[0][["epoch", "step"]])) if len(slow) else None,
                     "last_slow": tuple(map(int, slow.iloc[-1][["epoch", "step"]])) if len(slow) else None})
    return pd.DataFrame(rows, columns=list(GAP_COLUMNS))
