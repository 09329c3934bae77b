"""Predict what synchronised BN costs at 1 to 4,096 ranks, and check the prediction against measured runs.

    python -m analysis.scale RUN_OR_SWEEP_DIR... (--collectives CSV [CSV...] | --preset NAME) -o OUT_DIR
        [--world-sizes N ...] [--bn-group-size K ...] [--gpus-per-node N] [--workload TOML ...]

The runs give each workload's world-size-1 compute, BN layers, gradient bytes and (from multi-rank
GPU traces) how much of DDP's all-reduce is exposed; the collectives come from a fit to
``bench.collectives`` CSVs of the runs' backend, or from a preset (analysis/load/scale_presets.toml).
Writes scale_prediction.csv (one row per workload, BN scope and world size), scale_validation.csv
(each measured run above world size 1 beside its prediction: ``error``, ``residual``),
scale_costs.csv (the cost model's parameters), scale.png and scale.md into OUT_DIR.
"""
from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.atscale.collective_model import CostModel, fit, preset_model
from analysis.atscale.step_model import VALIDATION_COLUMNS, WORLD, predict, validate
from analysis.atscale.traced import trace_facts, traced_steps, traced_table
from analysis.atscale.workloads import WORKLOAD_COLUMNS, backend_mismatch, workloads
from analysis.load.scale_files import (PRESETS_FILE, load_collectives, load_measured, load_workload, preset_names,
                                       read_preset)
from analysis.load.trace_dirs import find_trace_dirs, load_runs as load_trace_runs
from analysis.render.scale_section import scale_section
from bench.argcheck import in_file, in_path, out_dir, positive_int
from bench.errors import OneLineParser, UsageError, cli, one_line_warnings

DEFAULT_WORLD_SIZES = tuple(2 ** k for k in range(13))  # 1 ... 4096
CSV_NAMES = {"prediction": "scale_prediction.csv", "validation": "scale_validation.csv", "costs": "scale_costs.csv"}


@dataclass(frozen=True)
class ScaleResult:
    prediction: pd.DataFrame
    validation: pd.DataFrame
    workloads: pd.DataFrame
    cost: CostModel
    notes: tuple[str, ...]
    inputs: tuple[str, ...]


def cost_model(collectives: list[str] | None, preset: str | None, gpus_per_node: int | None) -> CostModel:
    if bool(collectives) == bool(preset):
        raise UsageError("give the collectives' cost as exactly one of --collectives CSV or --preset NAME")
    if preset:
        return preset_model(preset, read_preset(preset), PRESETS_FILE.name, gpus_per_node)
    if gpus_per_node:
        raise UsageError("--gpus-per-node sets a preset's node size; a fit to measurements has one level")
    table = load_collectives(collectives)
    name = "fit to " + ", ".join(Path(c).name for c in collectives)
    return fit(table, name, str(table["backend"].iloc[0]))


def _trace_facts(run: pd.Series) -> tuple[float, float, str]:
    """(exposed_frac, collective calls per step, note) from a multi-rank run's traces."""
    if not find_trace_dirs(Path(run["path"])):
        return math.nan, math.nan, "no trace"
    try:  # trace parsing only when a run has traces
        traces = load_trace_runs([run["path"]])
        steps = traced_steps(traces)
    except ValueError as e:
        warnings.warn(f"{run['run']}: traces unreadable ({e})", stacklevel=2)
        return math.nan, math.nan, "trace unreadable"
    return trace_facts(traces, steps)


def _measured_workloads(paths: list[str], cost: CostModel, strict: bool):
    """Workloads, runs and notes from run directories; the backend check of the collectives."""
    measured, layers = load_measured(paths)
    traced = traced_table([(r["path"], *_trace_facts(r)) for _, r in measured[measured["world_size"] > 1].iterrows()])
    notes = []
    if mismatched := backend_mismatch(measured, cost):
        if strict:
            raise UsageError(f"the collectives were measured on {cost.backend} but these runs use another backend: "
                             f"{', '.join(mismatched)}; measure bench.collectives on the runs' backend")
        notes.append(f"the preset describes {cost.backend} GPUs, but the compute comes from runs on another "
                     f"backend ({', '.join(mismatched)}): read the prediction as those runs' arithmetic "
                     "on that network")
    table, workload_notes = workloads(measured, layers, traced)
    runs = measured.merge(traced[["path", "calls_per_step"]], on="path", how="left")
    return table, runs, notes + workload_notes


def compute(paths: list[str], collectives: list[str] | None = None, preset: str | None = None,
            world_sizes: tuple[int, ...] = (), group_sizes: tuple[int, ...] = (),
            gpus_per_node: int | None = None, workload_files: tuple[str, ...] = ()) -> ScaleResult:
    """Load, model and validate; raises UsageError for bad input."""
    if bad := [w for w in (*world_sizes, *group_sizes, gpus_per_node or 1) if w <= 0]:
        raise UsageError(f"world sizes, BN group sizes and GPUs per node must be positive, got {bad[0]}")
    if not paths and not workload_files:
        raise UsageError("give run directories, or a --workload file, to predict from")
    cost = cost_model(collectives, preset, gpus_per_node)
    tables, notes, runs = [], [], None
    if paths:
        table, runs, run_notes = _measured_workloads(paths, cost, strict=bool(collectives))
        tables.append(table)
        notes += run_notes
    for f in workload_files:
        row, file_notes = load_workload(f)
        tables.append(pd.DataFrame([row], columns=list(WORKLOAD_COLUMNS)))
        notes += file_notes
    table = pd.concat(tables, ignore_index=True)
    sizes = sorted({*DEFAULT_WORLD_SIZES, *world_sizes})
    prediction = predict(table, cost, sizes, (WORLD, *group_sizes))
    validation = validate(runs, table, cost) if runs is not None else pd.DataFrame(columns=list(VALIDATION_COLUMNS))
    inputs = ((f"{len(runs)} complete run(s) from {', '.join(map(str, paths))}",) if paths else ()) + \
        tuple(f"workload {f}" for f in workload_files) + \
        (f"collectives: {cost.name}" + (f" ({', '.join(map(str, collectives))})" if collectives else ""),)
    return ScaleResult(prediction, validation, table, cost, tuple(dict.fromkeys(notes)), inputs)


def write(result: ScaleResult, out_dir: str | Path) -> str:
    """CSVs, scale.png and scale.md into out_dir; returns the markdown section."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.prediction.to_csv(out_dir / CSV_NAMES["prediction"], index=False)
    result.validation.to_csv(out_dir / CSV_NAMES["validation"], index=False)
    result.cost.params.assign(cost_model=result.cost.name, gpus_per_node=result.cost.gpus_per_node).to_csv(
        out_dir / CSV_NAMES["costs"], index=False)
    md = scale_section(result.prediction, result.validation, result.workloads, list(result.cost.notes),
                       list(result.notes), list(result.inputs), out_dir)
    (out_dir / "scale.md").write_text(md)
    return md


def section(paths: list[str], out_dir: str | Path, collectives: list[str] | None = None,
            preset: str | None = None) -> str:
    """The report's "At scale (predicted)" section for the runs under `paths` (files into out_dir)."""
    return write(compute(paths, collectives, preset), out_dir)


def _parser() -> OneLineParser:
    p = OneLineParser(prog="analysis.scale", description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="*", type=in_path, help="run directories or folders holding them (a sweep)")
    p.add_argument("--workload", nargs="+", default=[], type=in_file, metavar="TOML",
                   help="a network not run here, stated with sources (e.g. docs/scale/resnet50-b32.toml)")
    p.add_argument("--collectives", nargs="+", type=in_file, metavar="CSV", help="bench.collectives CSV(s) of the runs' backend")
    p.add_argument("--preset", help=f"named cost model: {', '.join(preset_names())}")
    p.add_argument("-o", "--out", required=True, type=out_dir, help="output directory")
    p.add_argument("--world-sizes", nargs="+", type=positive_int, default=[], metavar="N", help="beside 1, 2, 4, ..., 4096")
    p.add_argument("--bn-group-size", nargs="+", type=positive_int, default=[], metavar="K",
                   help="BN group sizes to predict beside the whole world (1 = local BN)")
    p.add_argument("--gpus-per-node", type=positive_int, default=None, help="override the preset's node size")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return cli("analysis.scale", lambda: _run(args))


def _run(a) -> int:
    with one_line_warnings():
        if missing := [p for p in a.paths if not Path(p).exists()]:
            raise UsageError(f"no such directory: {', '.join(missing)}")
        result = compute(a.paths, a.collectives, a.preset, tuple(a.world_sizes), tuple(a.bn_group_size),
                         a.gpus_per_node, tuple(a.workload))
    write(result, a.out)
    shown = result.prediction[result.prediction["world_size"].isin((1, 8, 64, 512, 4096))]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("MODEL, not measurement; times in milliseconds (ms)")
        print(shown[["model", "variant", "per_rank_batch", "bn_scope", "world_size", "step_ms",
                     "bn_comm_ms", "ddp_ms", "examples_per_s", "scaling_efficiency"]].round(3).to_string(index=False))
        if not result.validation.empty:
            print("\nchecked against measured runs (error = predicted / measured - 1):")
            print(result.validation[["run", "measured_step_ms", "predicted_step_ms", "error", "residual"]]
                  .round(3).to_string(index=False))
    for n in (*result.cost.notes, *result.notes):
        print(f"assumption: {n}")
    print(f"wrote {a.out}/scale.md, scale.png, {', '.join(CSV_NAMES.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
