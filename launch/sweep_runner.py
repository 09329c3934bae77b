"""Run an experiment matrix, one bench.train run directory per cell; re-running resumes it.

    python -m launch.sweep --variants scratch nn --world-sizes 1 2 --per-rank-batch-sizes 64 \\
        --seeds 0 1 2 --epochs 2 --out runs/my-sweep --limit-train 4096      # any bench.train flag
    python -m launch.sweep --preset seed --out runs/seed                    # the textbook experiment
    python -m launch.sweep --config sweep.toml --dry-run                    # print the cells only
    python -m launch.sweep --out runs/my-sweep --plan-seeds --resolve 1.4pt # seeds needed, from a pilot

World size 1 runs `python -m bench.train`; more runs torchrun with that many processes: gloo ranks
on a machine without GPUs. On a GPU machine with fewer GPUs than a world size the sweep refuses,
because ranks sharing a GPU measure contention, not scaling; `--backend gloo` overrides that (ranks
then share GPUs round-robin, and the timings say nothing about scaling).

A cell whose summary.json says complete or diverged is finished and skipped. An interrupted cell
(stopped by SIGTERM/SIGUSR1 with a checkpoint) continues from it (--auto-resume). Any other
directory of a cell (killed mid-run, failed) is replaced: that cell runs again with --overwrite. A
variant that cannot run here (bench.variants says why) is skipped, its reason in <out>/skipped.csv.
Each cell's output goes to <out>/logs/<run>.log; <out>/sweep.json records the matrix and every
cell's outcome. A failed cell does not stop the sweep; the sweep exits 1 at the end and names it.
A cell that ends interrupted, or a SIGTERM/SIGUSR1 to the sweep (passed on to the running cell),
stops the sweep with exit code 75 (bench.errors.EXIT_INTERRUPTED): run it again to go on. Then
analysis.report writes the report (seed intervals, variant comparisons, scaling) for every run under
<out> into <out>/report (--report DIR elsewhere, --no-report for none; --resolve goes to it).
--plan-seeds runs nothing: it prints the seeds needed from a pilot's spread (launch/plan_seeds.py).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from bench import rundir
from bench.argcheck import in_file, non_negative_int, out_dir, positive_int
from bench.errors import EXIT_INTERRUPTED, OneLineParser, cli
from bench.rundir import FINISHED
from launch.matrix import PRESET_HELP, PRESETS, Cell, Sweep, build, drop_unavailable, load_toml, merge
from launch import plan_seeds, preflight
LOG_TAIL_LINES = 8
CELL_GRACE_S = 60  # a stopped cell's time to checkpoint and exit (torchrun gives its ranks 30 s)


def cell_state(run_dir: Path) -> str:
    """'missing', 'started' (no summary.json yet), a summary status ('complete', 'diverged',
    'running', 'failed', 'interrupted'), or 'unreadable'."""
    if not run_dir.exists():
        return "missing"
    if not (run_dir / rundir.SUMMARY).exists():
        return "started"
    try:
        return str(rundir.read_json(run_dir / rundir.SUMMARY).get("status", "unreadable"))
    except (OSError, ValueError):
        return "unreadable"


def command(cell: Cell, overwrite: bool, resume: bool = False) -> list[str]:
    """The cell's bench.train command; `resume` continues an interrupted cell from its checkpoint."""
    train = ["-m", "bench.train", *cell.train_args, *(["--overwrite"] if overwrite else []),
             *(["--auto-resume"] if resume else [])]
    if cell.world_size == 1:
        return [sys.executable, *train]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={cell.world_size}", *train]


def fmt_duration(seconds: float) -> str:
    """12.3 -> '12 s', 80 -> '1m20s', 3900 -> '1h05m'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def estimate_left_s(todo: list[Cell], took_s: dict[int, list[float]]) -> float | None:
    """Seconds for the cells in `todo`: mean time so far at each world size (any size if unseen)."""
    every = [t for ts in took_s.values() for t in ts]
    if not every:
        return None
    mean = lambda ts: sum(ts) / len(ts)  # noqa: E731
    return sum(mean(took_s.get(c.world_size) or every) for c in todo)


def check_devices(sweep: Sweep) -> str:
    """Where the ranks will run, in words; UsageError when a world size cannot get its GPUs."""
    return preflight.check_devices(sweep.config.device, sweep.config.backend, max(c.world_size for c in sweep.cells))


def validate_cells(sweep: Sweep) -> None:
    """bench.train's own checks for every cell before anything runs (a bad cell fails now, not hours in)."""
    for cell in sweep.cells:
        preflight.check_train_args([*cell.train_args, "--overwrite"], cell.world_size)


def _record(sweep: Sweep, results: list[dict], started: str) -> None:
    rundir.write_json(sweep.out / "sweep.json", {"matrix": sweep.spec, "started": started, "cells": results})


def _run_cell(cell: Cell, state: str, log: Path) -> int:
    """Run one cell (left in `state` by an earlier attempt) with its output in ``log``; its exit code."""
    resume = state == "interrupted"
    with open(log, "a" if resume else "w") as f:
        proc = subprocess.Popen(command(cell, state != "missing" and not resume, resume), stdout=f,
                                stderr=subprocess.STDOUT)
        try:
            return proc.wait()
        except BaseException:  # Ctrl-C or a stop signal: stop the cell too (it checkpoints first)
            proc.terminate()
            try:
                proc.wait(timeout=CELL_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise


def run(sweep: Sweep, out: TextIO | None = None) -> int:
    """Run every unfinished cell in order; 0 when all finished, 1 when any failed, EXIT_INTERRUPTED
    when a cell was interrupted (the sweep stops there)."""
    def say(line: str) -> None:
        print(line, file=out or sys.stdout, flush=True)

    logs = sweep.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    states = {c.run_name: cell_state(sweep.out / c.run_name) for c in sweep.cells}
    todo = [c for c in sweep.cells if states[c.run_name] not in FINISHED]
    say(f"launch.sweep: {len(sweep.cells)} cells, {len(sweep.cells) - len(todo)} already finished; "
        f"runs in {sweep.out}, logs in {logs}")
    started, t0 = time.strftime("%Y-%m-%dT%H:%M:%S"), time.perf_counter()
    took_s: dict[int, list[float]] = {}
    results, failed = [], []
    n = len(sweep.cells)
    for i, cell in enumerate(sweep.cells, 1):
        state = states[cell.run_name]
        result = {"run_name": cell.run_name, "variant": cell.variant, "world_size": cell.world_size,
                  "global_batch": cell.global_batch, "per_rank_batch": cell.per_rank_batch, "seed": cell.seed}
        if state in FINISHED:
            say(f"[{i}/{n}] {cell.run_name}  already {state}, skipped")
            results.append({**result, "outcome": f"skipped ({state})"})
            continue
        log = logs / f"{cell.run_name}.log"
        t = time.perf_counter()
        rc = _run_cell(cell, state, log)
        dt = time.perf_counter() - t
        took_s.setdefault(cell.world_size, []).append(dt)
        final = cell_state(sweep.out / cell.run_name)
        todo.remove(cell)
        left = estimate_left_s(todo, took_s)
        timing = f"(elapsed {fmt_duration(time.perf_counter() - t0)}" + (
            f", ~{fmt_duration(left)} left)" if left is not None and todo else ")")
        redo = {"missing": "", "interrupted": "resumed interrupted cell (--auto-resume)  "}.get(
            state, "re-ran incomplete leftover (--overwrite)  ")
        if final in FINISHED:  # bench.train exits 1 on divergence, yet the cell has its result
            word = "done" if final == "complete" else final
            say(f"[{i}/{n}] {cell.run_name}  {redo}{word} in {dt:.1f} s  {timing}")
            outcome = final
        elif final == "interrupted":  # the machine is being taken back: the next cells would be too
            say(f"[{i}/{n}] {cell.run_name}  {redo}INTERRUPTED after {dt:.1f} s; re-run the same command to resume")
            _record(sweep, results + [{**result, "outcome": "interrupted", "log": str(log)}], started)
            return EXIT_INTERRUPTED
        else:
            say(f"[{i}/{n}] {cell.run_name}  {redo}FAILED (exit {rc}) after {dt:.1f} s, log {log}  {timing}")
            for line in log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]:
                say(f"      | {line}")
            failed.append(f"{cell.run_name} (exit {rc})")
            outcome = f"failed (exit {rc})"
        results.append({**result, "outcome": outcome, "seconds": round(dt, 3), "log": str(log)})
        _record(sweep, results, started)
    _record(sweep, results, started)
    say(f"launch.sweep: cells finished in {fmt_duration(time.perf_counter() - t0)}")
    if failed:
        say(f"launch.sweep: {len(failed)} failed cell(s): {', '.join(failed)}; re-run the same command to retry them")
        return 1
    return 0


def dry_run(sweep: Sweep, out: TextIO | None = None) -> None:
    for i, cell in enumerate(sweep.cells, 1):
        state = cell_state(sweep.out / cell.run_name)
        what = {"missing": "to run", "complete": "finished, skip", "diverged": "finished (diverged), skip",
                "interrupted": "interrupted, resume (--auto-resume)"}.get(
            state, f"leftover ({state}), re-run with --overwrite")
        cmd = command(cell, state not in ("missing", "interrupted", *FINISHED), state == "interrupted")
        print(f"[{i}/{len(sweep.cells)}] {cell.run_name}  {what}\n      {' '.join(cmd)}", file=out or sys.stdout)


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="launch.sweep", allow_abbrev=False,  # --variant must not mean --variants
                      description=__doc__.splitlines()[0],
                      epilog="Every other flag goes to each bench.train run (e.g. --limit-train N).")
    p.add_argument("--config", type=in_file, metavar="FILE.toml", help="matrix from a TOML file (see launch/matrix.py)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()))
    p.add_argument("--variants", nargs="+", help="BN variants, one cell each (default nn)")
    p.add_argument("--world-sizes", nargs="+", type=positive_int, help="ranks per run; 1 runs one process (default 1)")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch-sizes", nargs="+", type=positive_int, help="global batches")
    batch.add_argument("--per-rank-batch-sizes", nargs="+", type=positive_int, help="global = per-rank × world size")
    p.add_argument("--seeds", nargs="+", type=non_negative_int, help="seeds, one cell each (default 0)")
    p.add_argument("--epochs", type=positive_int, help="epochs of every cell (default 10)")
    p.add_argument("--out", type=out_dir, help="parent of the run directories (default: runs)")
    p.add_argument("--report", type=out_dir, metavar="DIR", help="report directory (default: <out>/report)")
    p.add_argument("--no-report", action="store_true", help="skip the report after the cells")
    p.add_argument("--dry-run", action="store_true", help="print the cells and their commands; run nothing")
    plan_seeds.add_arguments(p)  # --resolve, --plan-seeds, --pilot
    return p


def _prepare(sweep: Sweep, dry_run_only: bool) -> None:
    """Check every cell and, unless only printing them, put the data in place; UsageError otherwise."""
    validate_cells(sweep)
    where = check_devices(sweep)
    if dry_run_only:
        print(f"launch.sweep: {len(sweep.cells)} cells on {where}; runs in {sweep.out}")
        return
    if sweep.config.data == "fashion-mnist":  # missing data fails once, not in every cell
        from bench.run.datasets.fashion_mnist import prepare
        prepare(sweep.config.data_dir, sweep.config.download)
    print(f"launch.sweep: {where}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args, passthrough = build_parser().parse_known_args(argv)
    return cli("launch.sweep", lambda: _main(args, passthrough))


def _main(args, passthrough: list[str]) -> int:
    matrix, train_args = merge(load_toml(args.config) if args.config else {}, vars(args), passthrough)
    targets, planned_rc = plan_seeds.targets_and_plan(args, matrix)
    if planned_rc is not None:  # --plan-seeds: before any cell is built or run
        return planned_rc
    sweep, skipped = drop_unavailable(build(matrix, train_args))
    for variant, why in skipped:  # recorded beside the runs; the report lists them under Not run
        print(f"launch.sweep: skipping every {variant} cell: {why}", flush=True)
    _prepare(sweep, args.dry_run)
    if args.dry_run:
        dry_run(sweep)
        return 0
    rundir.write_skipped(sweep.out, skipped)
    for s in (signal.SIGTERM, signal.SIGUSR1):  # unwinds through run(), which stops the cell first
        signal.signal(s, lambda *_: sys.exit(EXIT_INTERRUPTED))
    try:
        rc = run(sweep)
    except (KeyboardInterrupt, SystemExit) as e:
        print("launch.sweep: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130 if isinstance(e, KeyboardInterrupt) else EXIT_INTERRUPTED
    if args.no_report:
        return rc
    from analysis import report  # every run under --out, this sweep's and any earlier ones
    report_rc = report.main([str(sweep.out), "-o", args.report or str(sweep.out / "report"),
                             *[f"--resolve={t}" for t in targets]])
    return rc or report_rc

