"""Examples/s of execution modes side by side, in one process: the eager-vs-graph check.

    python -m bench.modes --variants nn,scratch --batches 256,1024 --modes eager,graph --epochs 2
    python -m bench.modes --device cpu --modes eager,compile --limit-train 2048 --batches 64

Runs bench.train.train() once per (variant, batch, mode, amp), profiler off, and prints one table:
examples/s, median step time, set-up time (compile or capture), and the speed-up over eager of the
same variant, batch and amp. `--csv` writes the same rows. Every run also leaves its run directory
under `--out`.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from bench import rundir
from bench.config import TrainConfig
from bench.errors import EXIT_USAGE, UsageError
from bench.model import MODELS
from bench.norms import VARIANTS
from bench.step import AMPS, MODES
from bench.train import train

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


def _list(kind, choices=None):
    def parse(text: str):
        items = [kind(t) for t in text.split(",") if t]
        if not items or (choices and any(i not in choices for i in items)):
            raise argparse.ArgumentTypeError(f"comma-separated {'/'.join(choices or ('integers',))}, got {text}")
        return items
    return parse


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.modes", description="Examples/s per execution mode, one process.")
    p.add_argument("--model", default="lenet", choices=MODELS, help="network (default: %(default)s)")
    p.add_argument("--variants", type=_list(str, VARIANTS), default=["nn", "scratch"], metavar="A,B",
                   help="comma-separated BN variants (default: nn,scratch)")
    p.add_argument("--batches", type=_list(int), default=[256], metavar="N,M",
                   help="comma-separated global batches (default: 256)")
    p.add_argument("--modes", type=_list(str, MODES), default=["eager", "graph"], metavar="A,B",
                   help=f"comma-separated execution modes among {', '.join(MODES)} (default: eager,graph)")
    p.add_argument("--amps", type=_list(str, AMPS), default=["none"], metavar="A,B",
                   help=f"comma-separated autocast settings among {', '.join(AMPS)} (default: none)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per run (default: %(default)s)")
    p.add_argument("--limit-train", type=int, default=None, metavar="N",
                   help="first N training images only (default: all)")
    p.add_argument("--limit-test", type=int, default=1000, metavar="N",
                   help="first N test images (default: %(default)s)")
    p.add_argument("--data-dir", default="data", help="Fashion-MNIST folder, as bench.train's (default: %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when there is one, else CPU (default: %(default)s)")
    p.add_argument("--out", default="runs/modes", help="parent of the run directories")
    p.add_argument("--csv", default=None, help="also write the table's rows to this CSV file")
    a = p.parse_args(argv)
    base = TrainConfig(model=a.model, epochs=a.epochs, limit_train=a.limit_train, limit_test=a.limit_test,
                       data_dir=a.data_dir, device=a.device, out=a.out)
    try:
        rows = run_all(base, a.variants, a.batches, a.modes, a.amps)
    except UsageError as e:
        print(f"bench.modes: error: {e}", file=sys.stderr)
        return EXIT_USAGE
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


if __name__ == "__main__":
    sys.exit(main())
