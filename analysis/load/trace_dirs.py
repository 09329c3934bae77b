"""Where a job's traces live: run directories and bare folders of trace files → loaded runs.

A run directory (``config.json`` present, see :mod:`bench.rundir`) keeps its traces in ``traces/``;
a bare folder that directly holds ``*.json[.gz]`` trace files is a run of its own, named after the
folder. Anything else in a trace folder (TensorBoard event files, for one) is not a trace and is
ignored by :func:`analysis.load.trace_files.find_trace_files`.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import msgspec

from analysis.load.trace_files import TraceSet, find_trace_files, load_traces
from bench import rundir  # the format module; it imports no torch


@dataclass(frozen=True)
class Run:
    """One run's traces. ``meta`` holds ``variant`` and ``world_size`` from the run's config.json."""

    name: str
    run_dir: Path
    traces: TraceSet
    meta: dict


def find_trace_dirs(path: Path | str) -> list[Path]:
    """Folders under ``path`` (itself included) that directly hold ``*.json[.gz]`` trace files.

    A run directory (one with ``config.json``) counts only through its ``traces/`` subfolder: its
    own JSON files are config and metrics, not traces.
    """
    path = Path(path)
    if (path / rundir.TRACES).is_dir():
        return find_trace_dirs(path / rundir.TRACES)
    if rundir.is_run_dir(path):
        return []
    if find_trace_files(path):
        return [path]
    return [d for sub in sorted(p for p in path.iterdir() if p.is_dir())
            for d in find_trace_dirs(sub)]


def run_dir_of(trace_dir: Path) -> Path:
    """``run/traces`` → ``run``; a bare folder of traces is its own run."""
    return trace_dir.parent if trace_dir.name == rundir.TRACES else trace_dir


def read_run_meta(run_dir: Path) -> dict:
    """``variant`` and ``world_size`` from ``run_dir/config.json`` when present."""
    config = run_dir / rundir.CONFIG
    if not config.is_file():
        return {}
    data = msgspec.json.decode(config.read_bytes())
    return {k: data[k] for k in ("variant", "world_size") if isinstance(data, dict) and k in data}


def load_runs(paths: list[Path | str]) -> list[Run]:
    """Every run found under ``paths`` (run dirs, trace dirs or parents of runs), loaded."""
    trace_dirs = [d for p in paths for d in find_trace_dirs(Path(p))]
    if not trace_dirs:
        raise ValueError(f"no trace files under {', '.join(str(p) for p in paths)}")
    runs = []
    for d in trace_dirs:
        traces, meta = load_traces(d), read_run_meta(run_dir_of(d))
        if traces.world_size is None and "world_size" in meta:
            # A one-process run has no distributedInfo; its config.json still knows the world size.
            traces = dataclasses.replace(traces, world_size=int(meta["world_size"]))
        runs.append(Run(run_dir_of(d).name, run_dir_of(d), traces, meta))
    return runs


def load_traced_runs(run_dirs: Iterable[Path]) -> list[Run]:
    """The runs among `run_dirs` that hold traces; a run whose traces cannot be read is left out with a
    warning, so that the rest of a report goes on."""
    runs = []
    for d in run_dirs:
        if not find_trace_dirs(Path(d)):
            continue
        try:
            runs.extend(load_runs([d]))
        except ValueError as err:  # e.g. no readable trace in it: the rest of the report goes on
            warnings.warn(f"no kernel analysis for {d}: {err}", stacklevel=2)
    return runs
