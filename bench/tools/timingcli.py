"""The flags and exit codes of ``python -m bench.timing``; the timing itself is bench.tools.interleave.

bench.timing takes bench.train's flags (bench.run.config.FLAGS), each meaning what it means there,
but for those that shape a training run rather than a step: `--steps` is the timed steps per round
here, and epochs, the profiler, warm-up steps, evaluation, checkpoints and divergence checks do not
apply. `TRAIN_FLAGS` lists the ones it takes; launchers pass a run's flags on through `timing_args`.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback

from bench import rundir
from bench.errors import EXIT_FAILED, EXIT_USAGE, OneLineParser, UsageError
from bench.run import dist, failure
from bench.argcheck import non_negative_int, positive_int
from bench.run.config import FLAGS, TrainConfig, add_flags, build_parser
from bench.tools.interleave import TimingConfig, timing

NOT_TAKEN = ("variant", "epochs", "steps", "profile", "warmup_steps", "eval_batch", "limit_test", "resume",
             "auto_resume", "checkpoint_every_steps", "check_finite_every", "diverge_above")
TRAIN_FLAGS = tuple(name for name in FLAGS if name not in NOT_TAKEN)
USAGE_GRACE_S = 5.0


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="bench.timing", description="Time BN variants side by side: interleaved rounds "
                      "of shuffled order, the baseline timed twice as an A/A control; writes a timing run "
                      "directory.")
    p.add_argument("--variants", nargs="+", required=True, choices=rundir.VARIANTS, metavar="VARIANT",
                   help="variants to time; the first is the baseline, timed twice (A and A′)")
    p.add_argument("--rounds", type=positive_int, default=TimingConfig.rounds,
                   help="rounds of shuffled arms (default %(default)s)")
    p.add_argument("--steps", type=positive_int, default=TimingConfig.steps,
                   help="timed steps of each arm per round (default %(default)s: arms alternate every step)")
    p.add_argument("--warmup", type=non_negative_int, default=5,
                   help="untimed steps of each arm before the first round (default %(default)s)")
    add_flags(p, TRAIN_FLAGS)
    return p


def from_argv(argv: list[str] | None = None) -> TimingConfig:
    ns = vars(parser().parse_args(argv))
    variants = tuple(ns.pop("variants"))
    if len(set(variants)) != len(variants):
        parser().error(f"--variants {' '.join(variants)} names a variant twice: name each once "
                       "(the first is timed twice on its own)")
    own = {k: ns.pop(k) for k in ("rounds", "steps", "warmup")}
    return TimingConfig(train=TrainConfig(**ns), variants=variants, **own)


def timing_args(train_argv: list[str]) -> list[str]:
    """The bench.timing flags of a bench.train command line: those bench.timing takes, as given, but
    for --out, --run-name and --overwrite, which the launcher decides.

    >>> timing_args(["--epochs", "1", "--limit-train", "4096", "--no-profile", "--batch-size", "64"])
    ['--batch-size', '64', '--limit-train', '4096']
    """
    ns, _ = build_parser().parse_known_args(train_argv)
    defaults = vars(build_parser().parse_args([]))
    out = []
    for name in TRAIN_FLAGS:
        if name in ("out", "run_name", "overwrite"):  # where the phase's own directory goes: the launcher's
            continue
        value = getattr(ns, name)
        if value == defaults[name]:
            continue
        option = FLAGS[name][0][0]
        out += [option] if isinstance(value, bool) else [option, str(value)]
    return out


def _quiet_exit(signum, frame):
    raise SystemExit(EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    """0 written, 1 failed, 2 usage error (one line from rank 0)."""
    tc = from_argv(argv)
    rank = dist.read_env()[0]
    try:
        timing(tc)
    except UsageError as e:
        if rank == 0:
            print(f"bench.timing: error: {e}", file=sys.stderr)
        else:  # torchrun stops the job when any rank exits: give rank 0 time to print its line
            for s in (signal.SIGTERM, signal.SIGINT):
                signal.signal(s, _quiet_exit)
            time.sleep(USAGE_GRACE_S)
        return EXIT_USAGE
    except (Exception, KeyboardInterrupt) as e:
        if failure.is_peer_loss(e):
            print(f"bench.timing: rank {rank} stopped: {failure.reason(e)}", file=sys.stderr)
        else:
            traceback.print_exc()
        return EXIT_FAILED
    return 0
