"""Per-step GPU/CPU time tables of profiled runs, written as CSVs.

The columns are defined in :mod:`analysis.transform.gpu_steps`.

    python -m analysis.kernels TRACE_DIR... -o OUT [--micro micro.csv]
        # writes OUT/steps.csv, OUT/categories.csv, OUT/bn_layers.csv (analysis.transform.bn_layers) and,
        # when the traces hold bn/<layer> ranges, OUT/bn_layers.png
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from analysis.load.micro_csv import load_micro
from analysis.load.trace_dirs import load_runs
from analysis.render.bn_layers_section import PNG, plot_layers
from analysis.transform.bn_layers import layer_table, layer_times
from analysis.transform.gpu_steps import add_skew, step_table, summarize_steps
from bench.argcheck import in_file, in_path, out_dir
from bench.errors import OneLineParser, UsageError, cli, one_line_warnings


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m analysis.kernels", description=__doc__.split("\n")[0])
    p.add_argument("trace_dirs", nargs="+", type=in_path, metavar="TRACE_DIR",
                   help="run directories, folders holding them, or folders of kineto trace files")
    p.add_argument("-o", "--out", type=out_dir, required=True,
                   help="folder for steps.csv, categories.csv, bn_layers.csv (and bn_layers.png)")
    p.add_argument("--micro", type=in_file, action="append", help="bench.micro CSV of the same device: BN layers' "
                   "time over a copy's in bn_layers.csv (repeatable)")
    args = p.parse_args(argv)
    return cli("analysis.kernels", lambda: _run([Path(d) for d in args.trace_dirs], Path(args.out),
                                                [Path(m) for m in args.micro or []]))


def _run(trace_dirs: list[Path], out: Path, micro: list[Path] | None = None) -> int:
    missing = [str(d) for d in [*trace_dirs, *(micro or [])] if not d.exists()]
    if missing:
        raise UsageError(f"no such directory: {', '.join(missing)}")
    with one_line_warnings():
        try:
            runs = load_runs(trace_dirs)
        except ValueError as e:  # no traces at all, or two files claiming one rank
            raise UsageError(str(e)) from None
        return _write_tables(runs, out, micro)


def _write_tables(runs: list, out: Path, micro: list[Path] | None = None) -> int:
    micro_rows = load_micro(micro) if micro else None
    steps_parts, cat_parts, bn_parts = [], [], []
    for run in runs:
        print(f"{run.name}: {run.traces.describe_ranks()}", file=sys.stderr)
        steps, cats = step_table(run.traces.events)
        meta = {"run": run.name, **run.meta}
        steps_parts.append(steps.assign(**meta))
        cat_parts.append(cats.assign(**meta))
        bn_parts.append(layer_table(layer_times(run.traces.events), micro_rows).assign(**meta))
    by_run = {part["run"].iat[0]: part for part in bn_parts if len(part)}
    meta_cols = list(dict.fromkeys(c for part in steps_parts for c in part.columns
                                   if c in ("run", "variant", "world_size")))
    steps = add_skew(pd.concat(steps_parts, ignore_index=True), by=["run"])
    steps = steps[meta_cols + [c for c in steps.columns if c not in meta_cols]]
    cats = pd.concat(cat_parts, ignore_index=True)
    cats = cats[meta_cols + [c for c in cats.columns if c not in meta_cols]]
    out.mkdir(parents=True, exist_ok=True)
    steps.to_csv(out / "steps.csv", index=False)
    cats.to_csv(out / "categories.csv", index=False)
    pd.concat(bn_parts, ignore_index=True).to_csv(out / "bn_layers.csv", index=False)
    if by_run:  # traces with bn/<layer> ranges: the report's bar chart of BN time per layer
        plot_layers(by_run, out / PNG)
    table = summarize_steps(steps)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print("times in microseconds (us); medians over steps")
        print(table.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
