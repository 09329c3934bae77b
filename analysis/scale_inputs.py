"""Inputs of ``analysis.scale`` read from disk: measured runs, ``bench.collectives`` CSVs, presets.

Everything here reads files and returns tidy frames or a :class:`CostModel`; the model itself is
:mod:`analysis.scale_model` (pure), the drawing :mod:`analysis.render_scale`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

try:  # Python 3.11+; tomli is the same parser for 3.10 (pyproject requires it there)
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10 only
    import tomli as tomllib

from analysis.collective_model import PARAM_COLUMNS, CostModel
from analysis.runs import load_bn_params, load_runs
from analysis.scale_workloads import calls_per_step
from bench import rundir
from bench.errors import UsageError

PRESETS_FILE = Path(__file__).with_name("scale_presets.toml")
# What a run would use across ranks when its config names no backend (world size 1): bench.dist's "auto".
BACKEND_OF_DEVICE = {"cpu": "gloo", "cuda": "nccl"}
MEASURED_COLUMNS = ("run", "status", "model", "variant", "per_rank_batch", "mode", "amp", "world_size",
                    "bn_group_size", "backend", "device_type", "check_finite_every", "step_ms", "grad_bytes", "path")


TRACED_COLUMNS = ("path", "exposed_frac", "calls_per_step", "trace_note")


@dataclass(frozen=True)
class Measured:
    """The measured runs: one row each (MEASURED_COLUMNS), their BN layers (path, layer, channels),
    and what the traces of multi-rank runs say (TRACED_COLUMNS): the exposed share of their
    communication and the collective calls a step makes. Tables join on the run's path: two
    sweeps can hold runs of one name."""
    runs: pd.DataFrame
    layers: pd.DataFrame
    traced: pd.DataFrame


def preset_names() -> list[str]:
    with open(PRESETS_FILE, "rb") as f:
        return sorted(tomllib.load(f))


def load_preset(name: str, gpus_per_node: int | None = None) -> CostModel:
    """The named preset as a cost model; `gpus_per_node` overrides the preset's node size."""
    with open(PRESETS_FILE, "rb") as f:
        presets = tomllib.load(f)
    if name not in presets:
        raise UsageError(f"unknown preset {name!r}; choose from {', '.join(sorted(presets))}")
    p = presets[name]
    params = pd.DataFrame(p["rows"]).assign(min_bytes=0.0, max_bytes=math.inf)
    per_node = gpus_per_node or int(p["gpus_per_node"])
    notes = (f"preset {name}: {p['description']}; {per_node} GPUs per node"
             + (" (set by --gpus-per-node)" if gpus_per_node else ""),
             f"parameters from {', '.join(p['sources'])} (cited in {PRESETS_FILE.name})")
    return CostModel(name, p["backend"], params[list(PARAM_COLUMNS)], per_node, str(PRESETS_FILE.name), notes)


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


def _trace_facts(run: pd.Series) -> tuple[float, float, str]:
    """(exposed_frac, collective calls per step, note) from a multi-rank run's traces: the median
    over traced steps of (comm − overlap) / comm, and of the process-group calls a step makes."""
    from analysis.kernels import step_table  # trace parsing only when a run has traces
    from analysis.tracedirs import find_trace_dirs, load_runs as load_trace_runs

    if not find_trace_dirs(Path(run["path"])):
        return math.nan, math.nan, "no trace"
    try:
        traces = load_trace_runs([run["path"]])
        steps = pd.concat([step_table(r.traces.events)[0] for r in traces])
    except ValueError as e:
        warnings.warn(f"{run['run']}: traces unreadable ({e})", stacklevel=2)
        return math.nan, math.nan, "trace unreadable"
    calls = float(pd.concat([calls_per_step(r.traces.events) for r in traces]).median())
    steps = steps[(steps["comm_us"] > 0) & steps["overlap_us"].notna()]
    if steps.empty:
        return math.nan, calls, "CPU-only trace: overlap not measurable"
    frac = ((steps["comm_us"] - steps["overlap_us"]) / steps["comm_us"]).clip(0, 1)
    return float(frac.median()), calls, f"{len(steps)} traced steps"


def load_measured(paths: Iterable[str | Path]) -> Measured:
    """Complete runs under `paths`, their BN layers, and what the traces of multi-rank runs show."""
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
    traced = [(r["path"], *_trace_facts(r)) for _, r in runs[runs["world_size"] > 1].iterrows()]
    traced = pd.DataFrame(traced, columns=list(TRACED_COLUMNS), dtype=object).astype(
        {"exposed_frac": float, "calls_per_step": float})
    return Measured(runs, layers, traced)
