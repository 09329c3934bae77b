"""The flags of ``python -m launch.sweep`` (the sweep itself: launch.sweep_runner)."""
from __future__ import annotations

from bench.errors import OneLineParser
from bench.argcheck import in_file, non_negative_int, out_dir, positive_int
from launch import plan_seeds
from launch.matrix import PRESET_HELP, PRESETS
from launch.timing_phase import DEFAULT_STEPS

DESCRIPTION = "Run an experiment matrix, one bench.train run directory per cell; re-running resumes it."


def build_parser() -> OneLineParser:
    """launch.sweep's parser: the matrix, where runs and report go, the timing phase, seed planning."""
    p = OneLineParser(prog="launch.sweep", allow_abbrev=False,  # --variant must not mean --variants
                      description=DESCRIPTION,
                      epilog="Every other flag goes to each bench.train run (e.g. --limit-train N).")
    p.add_argument("--config", type=in_file, metavar="FILE.toml", help="matrix from a TOML file (see launch/matrix.py)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()))
    p.add_argument("--variants", nargs="+", help="BN variants, one cell each (default nn)")
    p.add_argument("--world-sizes", nargs="+", type=positive_int, help="ranks per run; 1 runs one process (default 1)")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch-sizes", nargs="+", type=positive_int, help="global batches")
    batch.add_argument("--per-rank-batch-sizes", nargs="+", type=positive_int, help="global = per-rank × world size")
    p.add_argument("--seeds", nargs="+", type=non_negative_int, help="seeds, one cell each (default 0)")
    p.add_argument("--bn-emulate-ranks", nargs="+", type=positive_int, metavar="K",
                   help="local variants (scratch, nn) once per K emulated ranks (bench.bn.emulate); others once")
    p.add_argument("--epochs", type=positive_int, help="epochs of every cell (default 10)")
    p.add_argument("--out", type=out_dir, help="parent of the run directories (default: runs)")
    p.add_argument("--report", type=out_dir, metavar="DIR", help="report directory (default: <out>/report)")
    p.add_argument("--no-report", action="store_true", help="skip the report after the cells")
    p.add_argument("--dry-run", action="store_true", help="print the cells and their commands; run nothing")
    p.add_argument("--timing", action="store_true", help="then a timing phase per configuration (bench.timing)")
    p.add_argument("--timing-rounds", type=positive_int, metavar="R",
                   help="its rounds (default: sized to about a fifth of the sweep's time)")
    p.add_argument("--timing-steps", type=positive_int, metavar="K",
                   help=f"its timed steps per arm per round (default {DEFAULT_STEPS})")
    plan_seeds.add_arguments(p)  # --resolve, --plan-seeds, --pilot
    return p
