"""What the interleaved timing phase (bench.timing) shows: per arm its median step, per timing run
every arm against the baseline, the A/A control, the machine's load.

Pure DataFrame → DataFrame functions over the tables of analysis.load.timing_dirs. A step's time is
its slowest rank's (the slowest rank sets the pace). Ratios are of median step times, other arm over
the baseline's copy 0, with the interval and verdict of analysis.stats.round_bootstrap; the
baseline's copy 1 is the A/A control.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.stats import round_bootstrap as rounds
from bench import rundir

# The columns a timing run shares with the training runs of its configuration (analysis.stats.findings).
MATCH_KEY = ("model", "world_size", "per_rank_batch", "mode", "amp", "data", "image_size", "channels_last",
             "bn_emulate_ranks", "device")
ARM_COLUMNS = ("timing_run", "variant", "copy", "steps", "rounds", "median_ms", "iqr_over_median", "examples_per_s")
COMPARISON_COLUMNS = ("timing_run", "variant", "copy", "median_ms", "baseline_median_ms", "step_ms_ratio",
                      "ci95_low", "ci95_high", "verdict", "examples_per_s", "control", "noise_floor")
LOAD_SUMMARY_COLUMNS = ("timing_run", "samples", "cpus", "other_cpu_share_max", "other_cpu_share_median",
                        "loadavg_1m_max", "busy")
# The columns of a timing run's row that these functions read (analysis.load.timing_dirs has them all).
RUN_COLUMNS = ("timing_run", "baseline", "global_batch", "rounds", "steps_per_round", *MATCH_KEY)


def slowest_rank(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per timed step of every arm: the slowest rank's ms.

    >>> s = pd.DataFrame({"timing_run": "t", "round": 0, "variant": "nn", "copy": 0, "step": 0,
    ...                   "rank": [0, 1], "ms": [2.0, 3.0]})
    >>> slowest_rank(s)["ms"].tolist()
    [3.0]
    """
    keys = ["timing_run", "round", "variant", "copy", "step"]
    return steps.groupby(keys, as_index=False, sort=True)["ms"].max()


def _by_round(g: pd.DataFrame) -> dict[int, np.ndarray]:
    return {int(r): x["ms"].to_numpy(float) for r, x in g.groupby("round")}


def arms(runs: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """Per (timing run, variant, copy): steps, rounds, median step (ms), IQR/median, and the
    examples/s of the median step (global batch / median)."""
    batch = runs.set_index("timing_run")["global_batch"]
    rows = []
    for (t, v, c), g in slowest_rank(steps).groupby(["timing_run", "variant", "copy"], sort=True):
        q1, med, q3 = np.quantile(g["ms"], [0.25, 0.5, 0.75])
        rows.append({"timing_run": t, "variant": v, "copy": int(c), "steps": len(g), "rounds": g["round"].nunique(),
                     "median_ms": med, "iqr_over_median": (q3 - q1) / med,
                     "examples_per_s": float(batch[t]) / (med / 1e3)})
    return pd.DataFrame(rows, columns=list(ARM_COLUMNS))


def comparisons(runs: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """Per timing run, every arm against the baseline's copy 0: the ratio of median step times
    (other / baseline), its interval over rounds and verdict; `control` marks the A/A row (the
    baseline's copy 1), whose interval is the run's noise floor (`noise_floor`, on every row): a
    verdict of faster or slower must clear it (analysis.stats.round_bootstrap)."""
    fast = slowest_rank(steps)
    out = []
    for run in runs.itertuples(index=False):
        mine = fast[fast["timing_run"] == run.timing_run]
        by_arm = {(v, int(c)): _by_round(g) for (v, c), g in mine.groupby(["variant", "copy"])}
        base = by_arm.get((run.baseline, 0))
        if base is None:
            continue
        base_med = float(np.median(np.concatenate(list(base.values()))))
        ctrl = rounds.ratio_over_rounds(base, by_arm.get((run.baseline, 1), {}))
        floor = rounds.noise_floor(ctrl[1], ctrl[2])
        for (v, c), arm in sorted(by_arm.items(), key=lambda kv: (kv[0] != (run.baseline, 1), kv[0])):
            if (v, c) == (run.baseline, 0):
                continue
            est, lo, hi = ctrl if (v, c) == (run.baseline, 1) else rounds.ratio_over_rounds(base, arm)
            word = rounds.control_verdict(lo, hi) if (v, c) == (run.baseline, 1) else rounds.verdict(
                lo, hi, ctrl[1], ctrl[2])
            med = base_med * est
            out.append({"timing_run": run.timing_run, "variant": v, "copy": c, "median_ms": med,
                        "baseline_median_ms": base_med, "step_ms_ratio": est, "ci95_low": lo, "ci95_high": hi,
                        "verdict": word, "examples_per_s": float(run.global_batch) / (med / 1e3),
                        "control": (v, c) == (run.baseline, 1), "noise_floor": floor})
    return pd.DataFrame(out, columns=list(COMPARISON_COLUMNS))


def load_summary(load: pd.DataFrame) -> pd.DataFrame:
    """Per timing run: how many load samples, the most and the median CPU share other processes
    took, the highest 1-minute load average, and whether that flags a busy machine: other processes
    held more than bench.rundir.BUSY_OTHER_CPU_SHARE of the CPUs in the median sample.

    >>> l_ = pd.DataFrame({"timing_run": "t", "cpus": 2, "loadavg_1m": [1.0, 3.0],
    ...                    "other_cpu_share": [0.1, 0.5]})
    >>> load_summary(l_)[["other_cpu_share_max", "busy"]].values.tolist()
    [[0.5, True]]
    """
    rows = []
    for t, g in load.groupby("timing_run", sort=True):
        share = pd.to_numeric(g["other_cpu_share"], errors="coerce")
        rows.append({"timing_run": t, "samples": len(g), "cpus": int(g["cpus"].max()),
                     "other_cpu_share_max": share.max(), "other_cpu_share_median": share.median(),
                     "loadavg_1m_max": float(g["loadavg_1m"].max()),
                     "busy": bool(share.median() > rundir.BUSY_OTHER_CPU_SHARE)})
    return pd.DataFrame(rows, columns=list(LOAD_SUMMARY_COLUMNS))


@dataclass
class Speed:
    """What the timing phase found, per timing run: its row, its comparisons, its arms, its load."""
    runs: pd.DataFrame
    comps: pd.DataFrame
    arms: pd.DataFrame
    load: pd.DataFrame

    @classmethod
    def of(cls, timing=None) -> "Speed":
        """From the tables of analysis.load.timing_dirs.load_timing (its Timing: runs, steps, load);
        None or no timing run: nothing timed."""
        if timing is None or timing.runs.empty:
            return cls(pd.DataFrame(columns=[*RUN_COLUMNS]), pd.DataFrame(columns=list(COMPARISON_COLUMNS)),
                       pd.DataFrame(columns=list(ARM_COLUMNS)), pd.DataFrame(columns=list(LOAD_SUMMARY_COLUMNS)))
        return cls(timing.runs, comparisons(timing.runs, timing.steps), arms(timing.runs, timing.steps),
                   load_summary(timing.load))

    def match(self, config: dict) -> str | None:
        """The timing run of a configuration (the last by name, where several match), or None."""
        for run in sorted(self.runs.itertuples(index=False), key=lambda r: r.timing_run, reverse=True):
            if all(_same(getattr(run, k), config.get(k)) for k in MATCH_KEY):
                return run.timing_run
        return None

    def row(self, timing_run: str) -> pd.Series:
        return self.runs.set_index("timing_run").loc[timing_run]

    def comparison(self, timing_run: str, variant: str):
        c = self.comps[(self.comps["timing_run"] == timing_run) & (self.comps["variant"] == variant)
                       & ~self.comps["control"].astype(bool)]
        return None if c.empty else c.iloc[0]


def _same(a, b) -> bool:
    if pd.isna(a) and pd.isna(b):
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)
