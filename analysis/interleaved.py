"""Timing run directories (bench.timing) → tidy tables, and the comparisons they support.

Loading (`load_timing`) reads every run directory of kind "timing" under the given paths; the rest
are pure DataFrame → DataFrame functions. A step's time is its slowest rank's (the slowest rank sets
the pace). Ratios are of median step times, other arm over the baseline's copy 0, with the interval
and verdict of analysis.rounds; the baseline's copy 1 is the A/A control.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd

from analysis import rounds
from bench import rundir

# One row per timing run: what it timed and the configuration it belongs to.
TIMING_RUN_COLUMNS = ("timing_run", "status", "model", "world_size", "per_rank_batch", "global_batch", "mode",
                      "amp", "data", "image_size", "channels_last", "bn_emulate_ranks", "device", "baseline",
                      "variants", "rounds", "steps_per_round", "path")
# The columns a timing run shares with the training runs of its configuration (analysis.findings).
MATCH_KEY = ("model", "world_size", "per_rank_batch", "mode", "amp", "data", "image_size", "channels_last",
             "bn_emulate_ranks", "device")
ARM_COLUMNS = ("timing_run", "variant", "copy", "steps", "rounds", "median_ms", "iqr_over_median", "examples_per_s")
COMPARISON_COLUMNS = ("timing_run", "variant", "copy", "median_ms", "baseline_median_ms", "step_ms_ratio",
                      "ci95_low", "ci95_high", "verdict", "examples_per_s", "control")
LOAD_SUMMARY_COLUMNS = ("timing_run", "samples", "cpus", "other_cpu_share_max", "other_cpu_share_median",
                        "loadavg_1m_max", "busy")


class Timing(NamedTuple):
    runs: pd.DataFrame   # TIMING_RUN_COLUMNS
    steps: pd.DataFrame  # bench.rundir.TIMING_COLUMNS + timing_run
    load: pd.DataFrame   # bench.rundir.LOAD_COLUMNS + timing_run


def _kind(path: Path) -> str | None:
    try:
        return rundir.read_json(path / rundir.CONFIG).get("kind")
    except (OSError, ValueError):
        return None


def timing_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories of kind "timing" among `paths` and their descendants."""
    return [p for p in rundir.find_run_dirs(paths) if _kind(p) == rundir.TIMING_KIND]


def _run_row(path: Path) -> dict:
    config = rundir.read_json(path / rundir.CONFIG)
    try:
        env = rundir.read_json(path / rundir.ENV)
    except (OSError, ValueError):
        env = {}
    try:
        status = rundir.read_json(path / rundir.SUMMARY).get("status", rundir.RUNNING)
    except (OSError, ValueError):
        status = rundir.RUNNING
    return {**{c: config.get(c) for c in TIMING_RUN_COLUMNS}, "timing_run": path.name, "status": status,
            "device": env.get("device_name", config.get("device_type")),
            "image_size": (config.get("image_shape") or [28])[-1], "path": str(path)}


def _csv(path: Path, name: str, columns: tuple[str, ...]) -> pd.DataFrame | None:
    try:
        table = pd.read_csv(path / name)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        warnings.warn(f"skipping {path / name}: unreadable ({e})", stacklevel=3)
        return None
    return table.reindex(columns=list(columns)).assign(timing_run=path.name)


def load_timing(paths: Iterable[str | Path]) -> Timing:
    """Every complete timing run under `paths`: its row, its steps, its load records."""
    runs, steps, load = [], [], []
    for path in timing_dirs(paths):
        row = _run_row(path)
        if row["status"] != rundir.COMPLETE:
            warnings.warn(f"skipping {path}: the timing run did not complete ({row['status']})", stacklevel=2)
            continue
        s = _csv(path, rundir.TIMING, rundir.TIMING_COLUMNS)
        if s is None:
            continue
        runs.append(row)
        steps.append(s)
        if (l_ := _csv(path, rundir.LOAD, rundir.LOAD_COLUMNS)) is not None:
            load.append(l_)
    cat = lambda frames, cols: (pd.concat(frames, ignore_index=True) if frames  # noqa: E731
                                else pd.DataFrame(columns=[*cols, "timing_run"]))
    return Timing(pd.DataFrame(runs, columns=list(TIMING_RUN_COLUMNS)), cat(steps, rundir.TIMING_COLUMNS),
                  cat(load, rundir.LOAD_COLUMNS))


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
    baseline's copy 1), whose interval decides whether the others get a verdict (analysis.rounds)."""
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
        for (v, c), arm in sorted(by_arm.items(), key=lambda kv: (kv[0] != (run.baseline, 1), kv[0])):
            if (v, c) == (run.baseline, 0):
                continue
            est, lo, hi = ctrl if (v, c) == (run.baseline, 1) else rounds.ratio_over_rounds(base, arm)
            word = ("within noise" if rounds.contains_one(lo, hi) else "outside noise") if (v, c) == (
                run.baseline, 1) else rounds.verdict(lo, hi, ctrl[1], ctrl[2])
            med = base_med * est
            out.append({"timing_run": run.timing_run, "variant": v, "copy": c, "median_ms": med,
                        "baseline_median_ms": base_med, "step_ms_ratio": est, "ci95_low": lo, "ci95_high": hi,
                        "verdict": word, "examples_per_s": float(run.global_batch) / (med / 1e3),
                        "control": (v, c) == (run.baseline, 1)})
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
