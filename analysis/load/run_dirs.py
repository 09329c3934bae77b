"""Run directories → tidy DataFrames. The only module of analysis/ that reads run directories.

Unreadable or unfinished directories are skipped with a warning naming the file, never guessed at.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from bench import rundir  # the format module; it imports no torch

# One row per run: the configuration that groups it, then what it measured.
RUN_COLUMNS = (
    "run", "status", "variant", "model", "world_size", "per_rank_batch", "global_batch", "epochs", "seed",
    "mode", "amp", "bn_group_size", "bn_emulate_ranks", "lr", "limit_train", "data", "image_size",
    "channels_last", "steps", "device", "device_type",
    "launcher", "backend", "bn_description", "bn_synchronised", "epochs_done", "train_loss", "train_acc",
    "test_acc", "examples_per_s", "examples_per_s_per_rank", "step_ms_p50", "step_ms_p90",
    "peak_mem_bytes", "data_wait_share", "failure", "path",
)
# What a run directory written before a column existed meant by it. image_size is the side of the
# images the network saw (config.json's resolved image_shape; Fashion-MNIST's 28); steps 0: one pass.
DEFAULTS = {"mode": "eager", "amp": "none", "bn_emulate_ranks": 1, "limit_train": 0, "failure": "",
            "data": "fashion-mnist", "image_size": 28, "channels_last": False, "steps": 0}

def _number(value) -> float:
    """A summary's number, NaN where it has none (null, absent, or the NaN of older files)."""
    return float("nan") if value is None else value


def _read_run(path: Path) -> dict | None:
    try:
        config = rundir.read_json(path / rundir.CONFIG)
    except (OSError, ValueError) as e:
        warnings.warn(f"skipping {path / rundir.CONFIG}: unreadable ({e})", stacklevel=3)
        return None
    if config.get("kind") == rundir.TIMING_KIND:  # a timing phase, not a training run: analysis.interleaved
        return None
    try:
        summary = rundir.read_json(path / rundir.SUMMARY)
    except FileNotFoundError:
        summary = {"status": rundir.RUNNING}
    except (OSError, ValueError) as e:
        warnings.warn(f"skipping {path / rundir.SUMMARY}: unreadable ({e})", stacklevel=3)
        return None
    try:
        env = rundir.read_json(path / rundir.ENV)
    except (OSError, ValueError):
        env = {}
    row = {**DEFAULTS, **{k: v for k, v in config.items() if k in RUN_COLUMNS}}
    # summary.json writes a missing number as null (strict JSON); older files wrote NaN: both mean "none"
    metrics = {k: _number(summary.get(k)) for k in ("train_loss", "train_acc", "test_acc", "examples_per_s",
                                                    "examples_per_s_per_rank", "step_ms_p50", "step_ms_p90",
                                                    "peak_mem_bytes", "data_wait_share")}
    row.update(metrics)
    row.update({
        "run": path.name, "path": str(path), "status": summary.get("status", rundir.RUNNING),
        "epochs_done": summary.get("epochs_done"), "device": env.get("device_name", config.get("device_type")),
        "limit_train": config.get("limit_train") or 0, "steps": config.get("steps") or 0,
        "image_size": (config.get("image_shape") or [DEFAULTS["image_size"]])[-1],
        "bn_synchronised": config.get("variant") in rundir.SYNCHRONISING and config.get("bn_group_size", 1) > 1,
        "failure": summary.get("failure") or summary.get("reason") or "",
    })
    return row


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run directory found under `paths` (RUN_COLUMNS), whatever its status."""
    rows = [r for r in map(_read_run, rundir.find_run_dirs(paths)) if r is not None]
    df = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    return df.sort_values(["variant", "world_size", "global_batch", "seed", "run"], ignore_index=True)


GROUP_COLUMNS = ("run", "variant", "world_size", "global_batch", "seed")  # attached to per-run tables


def _per_run_csv(runs: pd.DataFrame, name: str, columns: Iterable[str], missing_ok: bool,
                 fill: Mapping[str, object] | None = None) -> pd.DataFrame:
    """`name` read from every run directory in `runs`, GROUP_COLUMNS attached, then `columns`.

    An unreadable file is skipped with a warning naming it; so is a missing one unless
    `missing_ok`. `fill` gives a value for a column an older file lacks."""
    frames = []
    for row in runs.itertuples(index=False):
        f = Path(row.path) / name
        if missing_ok and not f.is_file():
            continue
        try:
            table = pd.read_csv(f)
        except (OSError, ValueError, pd.errors.ParserError) as e:
            warnings.warn(f"skipping {f}: unreadable ({e})", stacklevel=3)
            continue
        if table.empty:  # a header alone (a run with no timed step) would make every column text
            continue
        table = table.assign(**{k: v for k, v in (fill or {}).items() if k not in table.columns})
        frames.append(table.assign(**{c: getattr(row, c) for c in GROUP_COLUMNS}))
    cols = [*GROUP_COLUMNS, *columns]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def load_metrics(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch metrics of every run in `runs`, with the run's grouping columns attached."""
    return _per_run_csv(runs, rundir.METRICS, rundir.METRICS_COLUMNS, missing_ok=False,
                        fill={"data_wait_s": float("nan"),  # before the input wait was recorded
                              "test_acc5": float("nan")})  # before top-5 was


def load_bn_params(runs: pd.DataFrame) -> pd.DataFrame:
    """Final BN parameters and running statistics (layer, channel, weight, bias, …) per run."""
    frames = []
    for row in runs.itertuples(index=False):
        f = Path(row.path) / rundir.BN_PARAMS
        if f.is_file():
            frames.append(pd.read_csv(f).assign(run=row.run, variant=row.variant))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["run", "variant", *rundir.BN_PARAMS_COLUMNS])


def load_step_times(runs: pd.DataFrame) -> pd.DataFrame:
    """Every measured step of every rank of every run in `runs` (STEP_TIMES_COLUMNS), with the run's
    grouping columns attached. Run directories written before step_times.csv had a `rank` column
    hold rank 0's steps only, and are read as such."""
    return _per_run_csv(runs, rundir.STEP_TIMES, rundir.STEP_TIMES_COLUMNS, missing_ok=True, fill={"rank": 0})


RANK_HOST_COLUMNS = ("run", "rank", "host", "address")


def load_rank_hosts(runs: pd.DataFrame) -> pd.DataFrame:
    """Each rank's host name and address (RANK_HOST_COLUMNS), from env.json's ``ranks``; a run whose
    env.json has no such table (written before it was recorded) has no rows."""
    rows = []
    for row in runs.itertuples(index=False):
        try:
            table = rundir.read_json(Path(row.path) / rundir.ENV).get("ranks") or []
        except (OSError, ValueError):
            continue
        rows += [{"run": row.run, "rank": int(r["rank"]), "host": r.get("hostname") or "",
                  "address": r.get("address") or ""} for r in table]
    return pd.DataFrame(rows, columns=list(RANK_HOST_COLUMNS))


def _skipped_files(paths: Iterable[str | Path]) -> list[Path]:
    found: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found.update(p.rglob(rundir.SKIPPED))
    return sorted(found)


def load_skipped(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Variants a launcher was asked for and did not run: every `skipped.csv` under `paths`.

    Columns: variant, reason, path (the folder holding the record). Empty when nothing was skipped
    or no launcher left a record.

        <out>/skipped.csv = "variant,reason\\nsync,no CUDA\\n"
        -> load_skipped([out]) == [{"variant": "sync", "reason": "no CUDA", "path": "<out>"}]
    """
    cols = [*rundir.SKIPPED_COLUMNS, "path"]
    frames = []
    for f in _skipped_files(paths):
        try:
            s = pd.read_csv(f, dtype=str, keep_default_na=False)
        except (OSError, ValueError, pd.errors.ParserError) as e:
            warnings.warn(f"skipping {f}: unreadable ({e})", stacklevel=2)
            continue
        if missing := set(rundir.SKIPPED_COLUMNS) - set(s.columns):
            warnings.warn(f"skipping {f}: no {', '.join(sorted(missing))} column", stacklevel=2)
            continue
        frames.append(s[list(rundir.SKIPPED_COLUMNS)].assign(path=str(f.parent)))
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
