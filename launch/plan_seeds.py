"""launch.sweep --plan-seeds: how many seeds a question needs, from a pilot's spread, before any cell runs.

The pilot is every run directory under `--pilot DIR`, or under the sweep's `--out` when --pilot is
not given: a sweep started with a few seeds is its own pilot, and run again with more `--seeds` it
resumes, running only the new cells. The pilot's runs are grouped and paired as in the report
(analysis.stats.variant_pairs). Each comparison the report shows (test accuracy, examples/s, p50 step time) with
at least 2 complete seeds on both sides gets its per-seed spread, the smallest difference
resolvable with the pilot's seeds and with the sweep's planned seeds, and for each `--resolve`
target the seeds needed per variant (80 % power, 5 % two-sided Welch t test; analysis.stats.power).
Nothing runs; the plan is printed and the exit code is 0.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import pandas as pd

from analysis.load.run_dirs import load_runs
from analysis.render.comparison_views import SHOWN_METRICS, plan_view
from analysis.render.mdtable import to_markdown
from analysis.render.sweep_figures import varying
from analysis.stats.power import ResolveTarget, parse_targets, sigma_ci_factors
from analysis.stats.seed_groups import COMPLETE
from analysis.stats.variant_pairs import PAIR_KEY, pairwise
from bench.argcheck import in_path
from bench.errors import UsageError


def pilot_pairs(pilot: Path, targets: tuple[ResolveTarget, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the pilot's runs, its shown comparisons with ≥ 2 seeds per side); UsageError when there are none."""
    runs = load_runs([pilot]) if pilot.is_dir() else pd.DataFrame()
    if runs.empty:
        raise UsageError(f"no run directories under {pilot}: run a pilot first (e.g. launch/sweep --variants "
                         f"scratch nn --seeds 0 1 2 --out {pilot}) or name its folder with --pilot DIR")
    metrics = [m for m in SHOWN_METRICS if m in runs.columns]
    pairs = pairwise(runs, metrics=metrics, resolve=targets)
    pairs = pairs[(pairs["n_a"] >= 2) & (pairs["n_b"] >= 2)]
    if pairs.empty:
        raise UsageError(f"the pilot under {pilot} has no configuration with two variants of 2 or more "
                         f"complete seeds each: a spread needs at least 2 seeds (3 are better)")
    return runs, pairs.reset_index(drop=True)


def render(pilot: Path, runs: pd.DataFrame, pairs: pd.DataFrame, targets: tuple[ResolveTarget, ...],
           planned_seeds: int | None) -> str:
    done = runs[runs["status"] == COMPLETE]
    n_min = int(min(pairs["n_a"].min(), pairs["n_b"].min()))
    low, high = sigma_ci_factors(n_min)
    lines = [f"launch.sweep: seed plan from the pilot in {pilot}: {len(done)} complete runs; "
             f"80 % power, 5 % two-sided (Welch t); accuracy in points, ratio metrics in percent", "",
             to_markdown(plan_view(pairs, varying(pairs, list(PAIR_KEY), keep=()), planned_seeds)), ""]
    if not targets:
        lines.append("Add --resolve 0.5pt (accuracy points) and/or --resolve 5% (relative) for the seeds "
                     "needed to resolve a difference of your choosing.")
    lines.append(f"The spread is itself an estimate: from {n_min} seeds the true per-seed spread could be "
                 f"{low:.2f}× to {high:.1f}× the one observed (95 %). Plan again once more seeds are in "
                 f"(docs/statistics.md).")
    return "\n".join(lines)


def plan_seeds(pilot: Path, targets: tuple[ResolveTarget, ...], planned_seeds: int | None,
               out: TextIO | None = None) -> int:
    """Print the plan for the pilot under `pilot`; 0, or UsageError for a pilot with nothing to plan from."""
    runs, pairs = pilot_pairs(pilot, targets)
    print(render(pilot, runs, pairs, targets, planned_seeds), file=out or sys.stdout)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """launch.sweep's flags for targets and planning."""
    p.add_argument("--resolve", action="append", metavar="DIFF", help="a difference to resolve: 0.5pt "
                   "(accuracy points) or 5%% (relative); for --plan-seeds and the report; once per kind")
    p.add_argument("--plan-seeds", action="store_true", help="print the seeds needed from a pilot's spread "
                   "(--pilot, else --out); run nothing")
    p.add_argument("--pilot", type=in_path, metavar="DIR", help="the pilot sweep's folder for --plan-seeds (default: --out)")


def targets_and_plan(args: argparse.Namespace, matrix: dict) -> tuple[tuple[ResolveTarget, ...], int | None]:
    """(the --resolve targets, the exit code of --plan-seeds or None when not planning); UsageError."""
    targets = parse_targets(args.resolve)
    if args.pilot and not args.plan_seeds:
        raise UsageError("--pilot names the pilot for --plan-seeds: add --plan-seeds, or drop --pilot")
    if not args.plan_seeds:
        return targets, None
    planned = len(matrix["seeds"]) if len(matrix["seeds"]) > 1 else None
    return targets, plan_seeds(Path(args.pilot or matrix["out"]), targets, planned)
