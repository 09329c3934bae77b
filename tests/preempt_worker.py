"""bench.train that sends itself a signal during a chosen step, so a preemption test knows where the
run stops.

    torchrun ... -m tests.preempt_worker STEP RANKS SIGNAL [bench.train flags]
    torchrun ... -m tests.preempt_worker 11 1 SIGUSR1 --variant scratch --epochs 2 ...

On each rank listed in RANKS (comma-separated), the STEP-th training step of this attempt (1-based,
counted across epochs) sends SIGNAL to its own process while it runs, as a scheduler's signal
arriving mid-step would. In-process tests patch bench.run.job the same way with `signal_at`.
"""
from __future__ import annotations

import os
import signal
import sys

import bench.run.job
import bench.run.runner


def signal_at(step: int, signum: int, action=None):
    """A stand-in for bench.run.job.make_step whose steps signal this process at call `step`, or do
    `action()` there instead (e.g. raise, for a crash)."""
    real = bench.run.job.make_step

    def make_step(*args, **kwargs):
        built = real(*args, **kwargs)
        run, calls = built.run, [0]

        def counted(x, y):
            calls[0] += 1
            if calls[0] == step:
                action() if action else os.kill(os.getpid(), signum)
            return run(x, y)
        built.run = counted
        return built
    return make_step


if __name__ == "__main__":
    step, ranks, name, *flags = sys.argv[1:]
    if os.environ.get("RANK", "0") in ranks.split(","):
        bench.run.job.make_step = signal_at(int(step), signal.Signals[name])
    sys.exit(bench.run.runner.main(flags))
