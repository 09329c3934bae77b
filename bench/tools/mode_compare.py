"""Examples/s of execution modes side by side, in one process: the eager-vs-graph check.

    python -m bench.modes --variants nn,scratch --batches 256,1024 --modes eager,graph --epochs 2
    python -m bench.modes --device cpu --modes eager,compile --limit-train 2048 --batches 64

Runs bench.train.train() once per (variant, batch, mode, amp), profiler off, and prints one table:
examples/s, median step time, set-up time (compile or capture), and the speed-up over eager of the
same variant, batch and amp. `--csv` writes the same rows. Every run also leaves its run directory
under `--out`.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

from bench import rundir
from bench.argcheck import out_file
from bench.errors import OneLineParser, cli
from bench.argcheck import positive_int
from bench.run.config import TrainConfig, add_flags, comma_list
from bench.run.step import AMPS, MODES
from bench.run.runner import train
from bench.rundir import VARIANTS

COLUMNS = ("model", "variant", "global_batch", "mode", "amp", "examples_per_s", "step_ms_p50", "setup_s",
           "speedup_over_eager", "device")


def speedups(rows: list[dict]) -> list[dict]:
    """Add `speedup_over_eager`: examples/s over the eager row with the same model/variant/batch/amp.

    >>> speedups([{"model": "m", "variant": "nn", "global_batch": 8, "amp": "none", "mode": "eager",
    ...            "examples_per_s": 2.0}, {"model": "m", "variant": "nn", "global_batch": 8, "amp": "none",
    ...            "mode": "graph", "examples_per_s": 9.0}])[1]["speedup_over_eager"]
    4.5
    """
    key = lambda r: (r["model"], r["variant"], r["global_batch"], r["amp"])  # noqa: E731
    eager = {key(r): r["examples_per_s"] for r in rows if r["mode"] == "eager"}
    return [{**r, "speedup_over_eager": r["examples_per_s"] / eager[key(r)] if key(r) in eager else None}
            for r in rows]


def run_all(base: TrainConfig, variants: list[str], batches: list[int], modes: list[str],
            amps: list[str]) -> list[dict]:
    rows = []
    for variant in variants:
        for batch in batches:
            for amp in amps:
                for mode in modes:
                    cfg = TrainConfig(**{**base.as_dict(), "variant": variant, "batch_size": batch, "mode": mode,
                                         "amp": amp, "overwrite": True, "profile": False})
                    with contextlib.redirect_stdout(io.StringIO()):
                        s = train(cfg)
                    setup = s["compile_s"] if mode == "compile" else s["graph_capture_s"]
                    rows.append({"model": cfg.model, "variant": variant, "global_batch": batch, "mode": mode,
                                 "amp": amp, "examples_per_s": s["examples_per_s"],
                                 "step_ms_p50": s["step_ms_p50"],
                                 "setup_s": setup, "device": s["device"]})
                    print(f"{variant:<8} batch {batch:<5} {amp:<4} {mode:<8} {s['examples_per_s']:>12,.0f} "
                          f"examples/s", flush=True)
    return speedups(rows)


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="bench.modes", description="Examples/s per execution mode, one process.")
    p.add_argument("--variants", type=comma_list(str, VARIANTS), default=["nn", "scratch"],
                   help="comma-separated BN variants (default nn,scratch)")
    p.add_argument("--batches", type=comma_list(positive_int), default=[256], help="comma-separated global batches (default 256)")
    p.add_argument("--modes", type=comma_list(str, MODES), default=["eager", "graph"],
                   help="comma-separated execution modes (default eager,graph)")
    p.add_argument("--amps", type=comma_list(str, AMPS), default=["none"],
                   help="comma-separated autocast settings (default none)")
    add_flags(p, ("model", "epochs", "limit_train", "limit_test", "data_dir", "device", "out"),
              epochs=2, limit_test=1000, out="runs/modes")
    p.add_argument("--csv", default=None, type=out_file, help="write the table here too")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli("bench.modes", lambda: _run(args))


def _run(a) -> int:
    base = TrainConfig(model=a.model, epochs=a.epochs, limit_train=a.limit_train, limit_test=a.limit_test,
                       data_dir=a.data_dir, device=a.device, out=a.out)
    rows = run_all(base, a.variants, a.batches, a.modes, a.amps)
    print(f"{'variant':<8} {'batch':>6} {'amp':<5} {'mode':<8} {'examples/s':>12} {'step_ms_p50':>12} "
          f"{'setup_s':>8} {'x_eager':>8}")
    for r in rows:
        setup = "" if r["setup_s"] is None else f"{r['setup_s']:.2f}"
        sp = "" if r["speedup_over_eager"] is None else f"{r['speedup_over_eager']:.2f}"
        print(f"{r['variant']:<8} {r['global_batch']:>6} {r['amp']:<5} {r['mode']:<8} "
              f"{r['examples_per_s']:>12,.0f} {r['step_ms_p50']:>12.3f} {setup:>8} {sp:>8}")
    if a.csv:
        Path(a.csv).parent.mkdir(parents=True, exist_ok=True)
        rundir.write_csv(a.csv, COLUMNS, rows)
    return 0
