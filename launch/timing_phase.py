"""The interleaved timing phase of a comparison or sweep: bench.timing after the accuracy runs.

The accuracy runs measure accuracy; their throughput, one run after another, carries whatever the
machine did meanwhile. The timing phase times the variants that ran side by side, in rounds of
shuffled order with an A/A control (bench.tools.interleave), under the same launcher as the runs,
into the same folder, where analysis.report finds it. By default it is sized from the runs' own
median steps to at most about a fifth of the whole comparison's time (`size`).
"""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from analysis.stats.findings import BASELINE
from bench import rundir
from bench.tools.timingcli import timing_args

PHASE_SHARE = 0.2                    # of the whole comparison's time (the runs' plus this phase's)
DEFAULT_STEPS = 1                    # timed steps per arm per round (bench.timing's default)
MIN_ROUNDS, MAX_ROUNDS = 10, 300
FIXED_S_PER_ARM = 3.0                # building an arm (data, network, step) and its warm-up, roughly
FIXED_S = 8.0                        # the job's start (imports, process group), roughly


def size(runs_s: float, arm_step_ms: list[float], steps: int = DEFAULT_STEPS) -> int:
    """Rounds of `steps` steps per arm that take at most about PHASE_SHARE of runs + phase, clipped
    to [MIN_ROUNDS, MAX_ROUNDS] (MIN_ROUNDS even where they take longer: fewer give no interval
    worth printing).

    >>> size(600.0, [10.0, 10.0, 20.0])   # a 150 s budget holds far more than 300 rounds of 40 ms
    300
    >>> size(300.0, [50.0, 50.0, 100.0])  # 75 s, less ~17 s of set-up, at 0.2 s a round
    290
    >>> size(60.0, [500.0, 500.0, 900.0])
    10
    """
    budget = runs_s * PHASE_SHARE / (1 - PHASE_SHARE) - FIXED_S - FIXED_S_PER_ARM * len(arm_step_ms)
    per_round_s = steps * sum(arm_step_ms) / 1e3
    rounds = math.floor(budget / per_round_s) if per_round_s > 0 else MAX_ROUNDS
    return max(MIN_ROUNDS, min(rounds, MAX_ROUNDS))


def ordered(variants: list[str]) -> list[str]:
    """The baseline first (it is timed twice, and Findings compare against it).

    >>> ordered(["scratch", "nn", "sync"])
    ['nn', 'scratch', 'sync']
    """
    return sorted(variants, key=lambda v: v != BASELINE)


def median_steps(out: str | Path) -> dict[str, float]:
    """variant -> median step (ms, slowest rank) of the complete training runs under `out`."""
    found: dict[str, float] = {}
    for d in rundir.find_run_dirs([out]):
        try:
            s = rundir.read_json(d / rundir.SUMMARY)
        except (OSError, ValueError):
            continue
        if s.get("status") == rundir.COMPLETE and s.get("step_ms_p50"):
            found[s["variant"]] = float(s["step_ms_p50"])
    return found


def command(variants: list[str], nproc: int, out: str, train_argv: list[str], rounds: int, steps: int,
            overwrite: bool = False) -> list[str]:
    """bench.timing under the runs' launcher: torchrun with `nproc` ranks, or one process."""
    timing = ["-m", "bench.timing", "--variants", *ordered(variants), "--rounds", str(rounds), "--steps", str(steps),
              *timing_args(train_argv), "--out", out, *(["--overwrite"] if overwrite else [])]
    if nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *timing]
    return [sys.executable, *timing]


def run(variants: list[str], nproc: int, out: str, train_argv: list[str], runs_s: float,
        rounds: int | None = None, steps: int | None = None, overwrite: bool = False) -> int:
    """Size (unless `rounds` is given), announce and run the phase; bench.timing's exit code."""
    medians = median_steps(out)
    arms = [medians.get(v, 0.0) for v in [ordered(variants)[0], *ordered(variants)]]
    steps = steps or DEFAULT_STEPS
    sized = rounds is None
    rounds = rounds or size(runs_s, arms, steps)
    guess = (sum(arms) * rounds * steps / 1e3) if all(arms) else math.nan
    over = guess == guess and guess > runs_s * PHASE_SHARE / (1 - PHASE_SHARE)
    why = (f"{MIN_ROUNDS} rounds are the fewest it runs" if sized else "as --timing-rounds asks")
    print(f"timing phase: {', '.join(ordered(variants))} interleaved, {rounds} rounds × {steps} steps per arm"
          + (f" (~{guess:.0f} s of steps)" if guess == guess else "")
          + (f", more than a fifth of the comparison: {why}" if over else ""), flush=True)
    return subprocess.call(command(variants, nproc, out, train_argv, rounds, steps, overwrite))


def sweep_groups(cells) -> list[tuple[list[str], int, list[str]]]:
    """(variants, world size, bench.train flags) of one timing phase per configuration of a sweep:
    cells that differ only in variant and seed share one phase, at their first seed."""
    groups: dict[tuple, tuple[list[str], int, list[str]]] = {}
    for c in cells:
        key = (c.world_size, tuple(timing_args([*c.train_args[:1], "nn", *c.train_args[2:], "--seed", "0"])))
        variants, _, _ = groups.setdefault(key, ([], c.world_size, list(c.train_args)))
        if c.variant not in variants:
            variants.append(c.variant)
    return list(groups.values())


def run_for_sweep(cells, out: str, runs_s: float, rounds: int | None, steps: int | None) -> int:
    """One timing phase per configuration of the sweep; the number that failed."""
    groups = sweep_groups(cells)
    return sum(run(v, ws, out, args, runs_s / len(groups), rounds, steps, overwrite=True) != 0
               for v, ws, args in groups)
