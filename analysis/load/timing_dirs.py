"""Timing run directories (bench.timing) → tidy tables: every run directory of kind "timing" under
the given paths, its row, its steps (timing.csv) and its load samples (load.csv). What they show is
computed by analysis.stats.interleaved."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, NamedTuple

import pandas as pd

from bench import rundir

# One row per timing run: what it timed and the configuration it belongs to.
TIMING_RUN_COLUMNS = ("timing_run", "status", "model", "world_size", "per_rank_batch", "global_batch", "mode",
                      "amp", "data", "image_size", "channels_last", "bn_emulate_ranks", "device", "baseline",
                      "variants", "rounds", "steps_per_round", "path")


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
