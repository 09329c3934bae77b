"""Inputs of ``analysis.scale`` read from disk: measured runs, ``bench.collectives`` CSVs, presets,
workload files.

Everything here reads files and returns tidy frames or plain dicts; the model that turns them into
predictions is :mod:`analysis.atscale`, the drawing :mod:`analysis.render.scale_section`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import pandas as pd

try:  # Python 3.11+; tomli is the same parser for 3.10 (pyproject requires it there)
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10 only
    import tomli as tomllib

from analysis.load.run_dirs import load_bn_params, load_runs
from bench import rundir
from bench.errors import UsageError

PRESETS_FILE = Path(__file__).with_name("scale_presets.toml")
# What a run would use across ranks when its config names no backend (world size 1): bench.dist's "auto".
BACKEND_OF_DEVICE = {"cpu": "gloo", "cuda": "nccl"}
MEASURED_COLUMNS = ("run", "status", "model", "variant", "per_rank_batch", "mode", "amp", "world_size",
                    "bn_group_size", "backend", "device_type", "check_finite_every", "step_ms", "grad_bytes", "path")


def preset_names() -> list[str]:
    with open(PRESETS_FILE, "rb") as f:
        return sorted(tomllib.load(f))


def read_preset(name: str) -> dict:
    """The named preset of PRESETS_FILE, as written there (``analysis.atscale.collective_model.preset_model``
    makes it a cost model)."""
    with open(PRESETS_FILE, "rb") as f:
        presets = tomllib.load(f)
    if name not in presets:
        raise UsageError(f"unknown preset {name!r}; choose from {', '.join(sorted(presets))}")
    return presets[name]


WORKLOAD_FIELDS = ("model", "variant", "per_rank_batch", "compute_ms", "compute_source", "grad_bytes",
                   "exposed_frac", "exposed_source", "channels")


def load_workload(path: str | Path) -> tuple[dict, list[str]]:
    """A workload stated in a TOML file (a network not run here): the step model's inputs with their
    sources. Returns the workload row and the sentences that say where its numbers come from."""
    try:
        with open(path, "rb") as f:
            w = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read workload {path}: {e}") from None
    if missing := [k for k in WORKLOAD_FIELDS if k not in w]:
        raise UsageError(f"workload {path} lacks {', '.join(missing)}")
    row = {"model": w["model"], "variant": w["variant"], "per_rank_batch": int(w["per_rank_batch"]),
           "mode": w.get("mode", "eager"), "amp": w.get("amp", "none"), "backend": w.get("backend", "nccl"),
           "compute_ms": float(w["compute_ms"]), "runs": 0, "channels": tuple(int(c) for c in w["channels"]),
           "bn_layers": len(w["channels"]), "grad_bytes": float(w["grad_bytes"]),
           "exposed_frac": float(w["exposed_frac"]), "exposed_source": w["exposed_source"],
           # a training loop of one's own has no bench.train divergence guard unless the file says so
           "guard_every": float(w.get("guard_every", math.inf))}
    name = Path(path).name
    return row, [f"{name}: compute {row['compute_ms']:g} ms a step: {w['compute_source']}",
                 f"{name}: DDP exposed share {row['exposed_frac']:g}: {w['exposed_source']}"]


def load_collectives(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Every row of the given bench.collectives CSVs (rundir.COLLECTIVES_COLUMNS), one backend."""
    frames = []
    for path in map(Path, paths):
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError) as e:
            raise UsageError(f"cannot read collectives CSV {path}: {e}") from None
        missing = [c for c in rundir.COLLECTIVES_COLUMNS if c not in frame.columns]
        if missing or frame.empty:
            raise UsageError(f"{path} is not a bench.collectives CSV (missing {', '.join(missing) or 'rows'})")
        frames.append(frame.assign(source=str(path)))
    table = pd.concat(frames, ignore_index=True)
    if table["backend"].nunique() > 1:
        raise UsageError(f"collectives CSVs of several backends ({', '.join(sorted(table['backend'].unique()))}): "
                         "give one backend's measurements")
    return table


def _field(path: str, name: str, key: str) -> float:
    """A number from one of a run's JSON files; NaN when absent (older runs) or unreadable."""
    try:
        value = rundir.read_json(Path(path) / name).get(key)
    except (OSError, ValueError):
        return math.nan
    return float(value) if value is not None else math.nan


def load_measured(paths: Iterable[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Complete runs under `paths` (one row each, MEASURED_COLUMNS) and their BN layers (path, layer,
    channels). Tables join on the run's path: two sweeps can hold runs of one name."""
    runs = load_runs(paths)
    if runs.empty:
        raise UsageError(f"no run directories (with config.json) under {', '.join(map(str, paths))}")
    runs = runs[runs["status"] == rundir.COMPLETE].copy()
    if runs.empty:
        raise UsageError("no complete run among the inputs")
    runs["backend"] = runs["backend"].where(runs["backend"].notna() & (runs["world_size"] > 1),
                                            runs["device_type"].map(BACKEND_OF_DEVICE))
    runs["step_ms"] = runs["step_ms_p50"]
    runs["grad_bytes"] = [_field(p, rundir.SUMMARY, "grad_bytes") for p in runs["path"]]
    runs["check_finite_every"] = [_field(p, rundir.CONFIG, "check_finite_every") for p in runs["path"]]
    runs = runs[list(MEASURED_COLUMNS)].reset_index(drop=True)
    bn = load_bn_params(runs.assign(run=runs["path"])).rename(columns={"run": "path"})
    layers = (bn.groupby(["path", "layer"], sort=False).size().rename("channels").reset_index()
              if not bn.empty else pd.DataFrame(columns=["path", "layer", "channels"]))
    return runs, layers
