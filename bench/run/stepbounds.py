"""Preemption: SIGTERM or SIGUSR1 stops a run at a step boundary, after a checkpoint to resume from.

Clusters take nodes back with a signal and a grace period: Slurm sends `--signal` (for example USR1
two minutes before the time limit) and SIGTERM on preemption, Kubernetes sends SIGTERM and kills
after `terminationGracePeriodSeconds`, and torchrun passes SIGTERM (under launch.run SIGUSR1 too)
on to its workers. While the epochs run (`StopRequest.armed`), either signal only records the
request. The ranks agree at the next step boundary that has a divergence check: the request rides
in the check's own all-reduce (bench.run.divergence), so agreeing costs no extra collective and no
extra host synchronisation. Checks fall at every step on CPU and every `--check-finite-every`
steps on CUDA (50 by default: at most 49 steps of delay). One process alone needs no agreement and
stops at the very next step boundary. A request that arrives during an epoch's end is agreed in the
epoch checkpoint's own gather. Then every rank joins one checkpoint holding the position in the epoch
(bench.run.checkpoint), and the run records `status: "interrupted"`, `resumable: true` and exits with
bench.errors.EXIT_INTERRUPTED.

`--checkpoint-every-steps N` writes the same kind of checkpoint every N steps, counted from the
run's first step (epoch ends have their own). Each one is a forced check (one collective on several
ranks), a host read of the step times so far (one synchronisation on CUDA) and a gather of every
rank's state. The step timer is read before it and started again after it, so writing a checkpoint
never lands in a timed step.
"""
from __future__ import annotations

import contextlib
import signal
import time
from typing import Iterator

from bench.run import checkpoint
from bench.run.checkpoint import MidEpoch
from bench.run.divergence import DivergenceGuard, Verdict
from bench.run.job import Job
from bench.run.stepstash import StepOutputs
from bench.run.steptimer import StepTimer


STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """The first stop signal this process received while `armed()` (`signal`, 0 for none)."""

    def __init__(self) -> None:
        self.signal = 0

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """Within the block SIGTERM and SIGUSR1 only ask for a stop; repeats change nothing (a launcher
        and the scheduler may both pass the same preemption on). The previous handlers come back
        after it. Main thread only, as signal.signal requires."""
        before = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        try:
            yield
        finally:
            for s, handler in before.items():
                signal.signal(s, handler)

    def _on_signal(self, signum: int, frame) -> None:
        self.signal = self.signal or signum


class StepBoundaries:
    """What happens between two steps of an epoch: the divergence check and stop agreement, step
    checkpoints, and the bookkeeping of which steps are timed."""

    def __init__(self, job: Job, guard: DivergenceGuard, timer: StepTimer, outputs: StepOutputs,
                 stop: StopRequest):
        self.job, self.guard, self.timer, self.outputs, self.stop = job, guard, timer, outputs, stop
        self.every = job.plan.cfg.checkpoint_every_steps
        self._untimed_left = job.plan.untimed_steps  # this attempt's first steps are not timed
        self._alone = job.info.world_size == 1
        self._epoch = self._next = 0
        self._timed: list[tuple[int, float]] = []
        self._seconds_before = self._t0 = 0.0

    def begin(self, epoch: int, mid: MidEpoch | None = None) -> int:
        """Start `epoch`, where an earlier attempt stopped in it for `mid`; return its first step."""
        self._epoch = epoch
        self._next = mid.steps_done if mid else 0  # the step the next timer reading starts with
        self._timed = list(mid.timed) if mid else []
        self._seconds_before = mid.seconds if mid else 0.0
        self.guard.new_epoch(self._next)
        self.outputs.new_epoch((mid.losses, mid.preds) if mid else None)
        self._t0 = time.perf_counter()
        return self._next

    def after(self, step: int, steps: int) -> Verdict:
        """After step `step` of `steps` (every rank, every step): check when due, write a step
        checkpoint when one is due or a stop was agreed. Collective when a check is due."""
        due = self.every > 0 and (self._epoch * steps + step + 1) % self.every == 0
        asked = self.stop.signal
        verdict = self.guard.check(self.outputs, step, steps, asked, force=due or (bool(asked) and self._alone))
        if verdict.bad_step is None and step + 1 < steps and (due or verdict.stop_signal):
            self._save(step + 1)
            if not verdict.stop_signal:
                self.timer.mark()  # the next step is timed from here, after the checkpoint
        return verdict

    def end(self) -> tuple[list[tuple[int, float]], float]:
        """The epoch's timed (step, ms) pairs and the wall seconds of its steps (all attempts)."""
        self._read_timer()
        return self._timed, self._seconds()

    def _seconds(self) -> float:
        return self._seconds_before + time.perf_counter() - self._t0

    def _read_timer(self) -> None:
        for ms in self.timer.read_ms():
            if self._untimed_left:
                self._untimed_left -= 1
            else:
                self._timed.append((self._next, ms))
            self._next += 1

    def _save(self, steps_done: int) -> None:
        self._read_timer()
        job = self.job
        losses, preds = self.outputs.done(steps_done)
        mid = MidEpoch(steps_done, losses, preds, list(self._timed), self._seconds())
        checkpoint.save(job.plan.run_dir, net=job.net, opt=job.opt, epochs_done=self._epoch, metrics=job.metrics,
                        measured_ms=job.measured_ms, rank=job.info.rank, device=job.info.device,
                        guard=self.guard.state(), mid=mid)
