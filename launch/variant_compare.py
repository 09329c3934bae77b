"""Run every BN variant one after another with the launcher this machine calls for, then the report.

    python -m launch.compare [--out DIR] [--report DIR] [--preset NAME] [bench.train flags...]

Each comparison gets fresh folders (runs/compare-<time>, reports/compare-<time>) unless told otherwise,
so a report never mixes runs of an earlier comparison.

Several GPUs: torchrun over all of them (nccl). One GPU: one process. No GPU: one CPU process, where
`sync` takes SyncBatchNorm's local path (no synchronisation — the report says so); `--nproc N` runs N
gloo ranks instead, and then `scratch-sync` stands in for `sync`, which cannot run on CPU ranks.
`fused` and `fused-sync` run where their Triton kernels can: on CUDA devices, or on CPU when
TRITON_INTERPRET=1 is set (slow; `python -m bench.variants` says which variants run here).
After the runs, an interleaved timing phase (bench.timing, launch/timing_phase.py) times the variants
that ran side by side, under the same launcher, sized to about a fifth of the comparison's time
(--timing-rounds / --timing-steps to set it, --no-timing to skip it); the report's speed verdicts
come from it. Variants asked for but not run are recorded, with the reason, in <out>/skipped.csv; the report lists them.
--preset takes a preset of launch/matrix.py (the sweep's): its variants, per-rank batch, seed, epochs and
training options; flags given after it override them.
Every other flag goes to each bench.train run; each run's flags are checked at its world size before the
first run starts, so a bad flag is one line and exit code 2, not one error per run.
"""
from __future__ import annotations

import subprocess
import sys
import time
from typing import Mapping

import torch

from analysis import report
from bench import bn, rundir
from bench.argcheck import out_dir, positive_int
from bench.errors import EXIT_FAILED, OneLineParser, cli
from launch import preflight, timing_phase
from launch.matrix import PRESET_HELP, PRESETS, preset_args

SYNC_ON_CPU_RANKS = "nn.SyncBatchNorm refuses CPU tensors"


def plan(variants: list[str], nproc: int, cuda: bool,
         unavailable: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(variant, why it is skipped) for each variant asked for; the reason is '' for those that run.

    `sync` cannot run on several CPU ranks; the reason names scratch-sync, the stand-in, and says
    whether it is part of this comparison. `unavailable` maps a variant to the reason its layer
    cannot run on this machine (bench.bn.unavailable_reason: the Triton variants).

    >>> plan(["nn", "sync", "scratch-sync"], 2, cuda=False)[1]
    ('sync', 'nn.SyncBatchNorm refuses CPU tensors; scratch-sync runs instead')
    >>> plan(["nn", "fused"], 1, cuda=False, unavailable={"fused": "no triton"})[1]
    ('fused', 'no triton')
    """
    stand_in = ("scratch-sync runs instead" if "scratch-sync" in variants
                else "scratch-sync, not asked for here, is the cross-rank BN for CPU ranks")
    unavailable = unavailable or {}
    return [(v, f"{SYNC_ON_CPU_RANKS}; {stand_in}" if v == "sync" and nproc > 1 and not cuda
             else unavailable.get(v, "")) for v in variants]


def unavailable_here(variants: list[str], cuda: bool) -> dict[str, str]:
    """Variant -> why its layer cannot run on this machine's device, for those that cannot."""
    device = torch.device("cuda" if cuda else "cpu")
    return {v: why for v in variants if (why := bn.unavailable_reason(v, device)) is not None}


def command(variant: str, nproc: int, out: str, extra: list[str]) -> list[str]:
    train = ["-m", "bench.train", "--variant", variant, "--out", out, *extra]
    if nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *train]
    return [sys.executable, *train]


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="launch.compare", description=__doc__.splitlines()[0],
                      epilog="Every other flag goes to each bench.train run (python -m bench.train --help); "
                             "all runs' flags are checked before the first starts.")
    p.add_argument("--variants", nargs="+", default=None, choices=rundir.VARIANTS, metavar="VARIANT",
                   help=f"BN variants to run, in order (default: the preset's, else {' '.join(rundir.VARIANTS)})")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()))
    p.add_argument("--nproc", type=positive_int, default=None,
                   help="ranks per run, at least 1 (default: all visible GPUs, or 1 on CPU)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    p.add_argument("--out", default=f"runs/compare-{stamp}", type=out_dir,
                   help="parent of the run directories (default runs/compare-<time>)")
    p.add_argument("--report", default=f"reports/compare-{stamp}", type=out_dir, help="report directory (default "
                   "reports/compare-<time>)")
    p.add_argument("--no-timing", action="store_true",
                   help="skip the interleaved timing phase after the runs (bench.timing)")
    p.add_argument("--timing-rounds", type=positive_int, metavar="R",
                   help="rounds of the timing phase (default: sized to about a fifth of the comparison's time)")
    p.add_argument("--timing-steps", type=positive_int, metavar="K",
                   help=f"timed steps per arm per round (default {timing_phase.DEFAULT_STEPS})")
    args, extra = p.parse_known_args(argv)
    return cli("launch.compare", lambda: _run(args, extra))


def check_runs(steps: list[tuple[str, str]], nproc: int, out: str, extra: list[str]) -> None:
    """bench.train's own checks for every run that will start, at its world size, creating nothing;
    UsageError (or argparse's one line, exit 2) for the first run that could not start."""
    for variant, why in steps:
        if not why:
            preflight.check_train_args(["--variant", variant, "--out", out, *extra], nproc,
                                       prog="launch.compare", create=False)


def _run(args, extra: list[str]) -> int:
    cuda = torch.cuda.is_available()
    nproc = args.nproc or (torch.cuda.device_count() if cuda else 1)
    if args.preset:  # the preset's flags first: the user's own, after them, win
        variants, flags = preset_args(args.preset, nproc)
        args.variants, extra = args.variants or variants, [*flags, *extra]
    args.variants = args.variants or list(rundir.VARIANTS)
    steps = plan(args.variants, nproc, cuda, unavailable_here(args.variants, cuda))
    check_runs(steps, nproc, args.out, extra)
    where = f"{nproc} GPU rank(s)" if cuda else f"{nproc} CPU rank(s) (gloo)" if nproc > 1 else "one CPU process"
    print(f"launch.compare: {', '.join(args.variants)} on {where}; runs in {args.out}", flush=True)
    failed = []
    t0 = time.perf_counter()
    # Recorded beside the runs so the report lists what was asked for and not run, and why.
    rundir.write_skipped(args.out, [(v, why) for v, why in steps if why])
    for i, (variant, why) in enumerate(steps, 1):
        if why:
            print(f"[{i}/{len(steps)}] {variant}: skipped: {why}", flush=True)
            continue
        print(f"[{i}/{len(steps)}] {variant} (elapsed {time.perf_counter() - t0:.0f} s)", flush=True)
        rc = subprocess.call(command(variant, nproc, args.out, extra))
        if rc:
            failed.append(f"{variant} (exit {rc})")
    ran = [v for v, why in steps if not why and not any(f.startswith(f"{v} (") for f in failed)]
    if not args.no_timing and ran:  # speed verdicts come from this phase (docs/measurement.md)
        if timing_phase.run(ran, nproc, args.out, extra, time.perf_counter() - t0, args.timing_rounds,
                            args.timing_steps):
            failed.append("timing phase")
    rc = report.main([args.out, "-o", args.report])
    if failed:
        print(f"launch.compare: failed runs: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return rc

