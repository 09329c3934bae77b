"""The training loop of one rank, in pieces of one concern each: set-up, one epoch, its metrics.

Every rank trains on its shard of one seeded permutation per epoch (``epoch_order``), its batches
served by its data source (bench.run.datasets.feeds); steps are timed by bench.run.steptimer, their outputs
kept on the device by bench.run.stepstash; between steps, bench.run.stepbounds checks divergence
(bench.run.divergence), agrees on stop requests and writes step checkpoints. bench.run.runner drives
these pieces; bench.run.results writes what they found.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from bench import rundir
from bench.run import checkpoint, dist, scalars
from bench.run.checkpoint import MidEpoch
from bench.run.datasets.feeds import Source
from bench.run.divergence import DivergenceGuard, Verdict
from bench.run.job import Job
from bench.run.stepbounds import StepBoundaries
from bench.run.stepstash import StepOutputs
from bench.run.steptimer import gc_paused


def reduce_(t: torch.Tensor, op=tdist.ReduceOp.SUM) -> torch.Tensor:
    """All-reduce in place when a process group exists; the tensor itself otherwise."""
    if tdist.is_initialized():
        tdist.all_reduce(t, op=op)
    return t


def epoch_order(seed: int, epoch: int, n: int, steps: int, global_batch: int) -> torch.Tensor:
    """(steps, global_batch) example indices of one epoch: a permutation seeded by (seed, epoch), followed
    by further permutations from the same generator when the steps need more than n examples (--steps).

    >>> epoch_order(0, 0, 10, 2, 4).shape, epoch_order(0, 0, 10, 5, 4).shape
    (torch.Size([2, 4]), torch.Size([5, 4]))
    """
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    need = steps * global_batch
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-need // n))])
    return order[:need].view(steps, global_batch)


def evaluate(data: Source, model: torch.nn.Module, info: dist.DistInfo,
             batch: int) -> tuple[float, float | None] | None:
    """(top-1, top-5) accuracy over the whole test set exactly once (each rank scores a contiguous
    slice, counts summed; top-5 None with 5 classes or fewer); None where the source has no test set."""
    return data.evaluate(model, info.rank, info.world_size, batch)


def sync_buffers(model: torch.nn.Module) -> None:
    """Rank 0's running statistics everywhere, so every rank evaluates the same network."""
    if tdist.is_initialized():
        for b in model.buffers():
            tdist.broadcast(b, src=0)


@dataclass
class Epoch:
    """One epoch's raw outcome on this rank."""
    index: int                 # 0-based
    order: torch.Tensor        # (steps, per-rank batch) example indices, on the device
    timed: list[tuple[int, float]]  # (step, ms) of its timed steps (a run's first steps are not timed)
    wait_ms: dict[int, float]  # step -> host time it waited for its batch (ms, inside its step time);
                               # this attempt's steps only
    seconds: float             # wall time of the epoch's steps
    bad_step: int | None       # first step whose loss diverged, on any rank
    steps_done: int = 0        # fewer than the epoch's steps when a stop was agreed inside it
    stop_signal: int = 0       # the stop request agreed at its last step boundary, 0 for none


def run_epoch(job: Job, epoch: int, prof, bounds: StepBoundaries, mid: MidEpoch | None = None) -> Epoch:
    """Train one epoch (from where an earlier attempt stopped in it, for `mid`); stop early at a
    diverged step or an agreed stop request (every rank at the same step)."""
    plan, info, data = job.plan, job.info, job.data
    timer, outputs = bounds.timer, bounds.outputs
    steps = plan.steps_per_epoch
    order = epoch_order(plan.cfg.seed, epoch, plan.data.n_train, steps, plan.global_batch)
    order = order.view(steps, plan.world_size, plan.per_rank_batch)[:, info.rank].to(info.device)
    first = done = bounds.begin(epoch, mid)
    batches, wait_ms, verdict = data.batches(order[first:]), {}, Verdict()
    with gc_paused():  # a full collection would land in one timed step (bench.run.steptimer)
        timer.mark()
        for i in range(first, steps):
            t = time.perf_counter()
            x, y = next(batches)
            wait_ms[i] = (time.perf_counter() - t) * 1e3
            outputs.put(i, *job.step(x, y))
            prof.step()  # before the mark: the window's trace export lands in an untimed step
            timer.mark()
            done = i + 1
            verdict = bounds.after(i, steps)
            if verdict.bad_step is not None or verdict.stop_signal:
                break
    timed, seconds = bounds.end()
    if verdict.bad_step is None and info.device.type == "cuda":
        torch.cuda.synchronize(info.device)
    return Epoch(epoch, order, timed, wait_ms, seconds, verdict.bad_step, done, verdict.stop_signal)


def epoch_metrics(job: Job, ep: Epoch, outputs: StepOutputs) -> dict:
    """The metrics.csv row of a finished epoch (collective: every rank calls it)."""
    plan, info, data = job.plan, job.info, job.data
    steps, P, G = plan.steps_per_epoch, plan.per_rank_batch, plan.global_batch
    timed = [ms for _, ms in ep.timed]
    # the slowest rank sets the pace, and the longest wait for input is the pipeline's
    waited = [ep.wait_ms[step] for step, _ in ep.timed if step in ep.wait_ms]
    timed_s, wait_s = reduce_(torch.tensor([sum(timed) / 1e3, sum(waited) / 1e3],
                                           dtype=torch.float64, device=info.device), tdist.ReduceOp.MAX).tolist()
    job.measured_ms += [(ep.index, step, ms) for step, ms in ep.timed]
    labels = data.train_y[ep.order]
    sums = reduce_(torch.stack([outputs.losses(0, steps).sum().double(),
                                (outputs.preds(steps) == labels).sum().double(),
                                torch.tensor(float(steps * P), dtype=torch.float64, device=info.device)]))
    sync_buffers(job.net)
    test_acc, test_acc5 = evaluate(data, job.net, info, plan.cfg.eval_batch) or (None, None)
    # random labels (synthetic data): an accuracy would look like a result, so there is none
    train_acc = (sums[1] / sums[2]).item() if plan.data.accuracy else None
    return {"epoch": ep.index + 1, "train_loss": (sums[0] / (sums[2] / P)).item(),
            "train_acc": train_acc, "test_acc": test_acc,
            "examples_per_s": G * len(timed) / timed_s if timed else float("nan"), "epoch_s": ep.seconds,
            "data_wait_s": wait_s if timed else float("nan"), "test_acc5": test_acc5}


def train_epochs(job: Job, start: int, mid: MidEpoch | None, prof, bounds: StepBoundaries,
                 epoch_scalars: scalars.EpochScalars, log) -> tuple[str, Epoch | None]:
    """Train from epoch `start` (step `mid.steps_done` of it, when resuming mid-epoch) until the last
    epoch, a divergence or an agreed stop; (status, last epoch)."""
    plan, cfg = job.plan, job.plan.cfg
    ep = None
    for epoch in range(start, cfg.epochs):
        ep = run_epoch(job, epoch, prof, bounds, mid if epoch == start else None)
        if ep.bad_step is not None:
            log(f"epoch {epoch + 1}: loss went bad (non-finite or above --diverge-above {cfg.diverge_above}) at "
                f"step {ep.bad_step} on some rank; stopping every rank")
            return rundir.DIVERGED, ep
        if ep.steps_done < plan.steps_per_epoch:
            return rundir.INTERRUPTED, ep  # the step checkpoint is written
        job.metrics.append(epoch_metrics(job, ep, bounds.outputs))
        ep.stop_signal = end_epoch(job, epoch_scalars, bounds.guard, bounds.stop.signal, log)
        if ep.stop_signal and epoch + 1 < cfg.epochs:
            return rundir.INTERRUPTED, ep
    return rundir.COMPLETE, ep


def end_epoch(job: Job, epoch_scalars: scalars.EpochScalars, guard: DivergenceGuard, stop_signal: int,
              log) -> int:
    """Record the epoch just finished: metrics.csv, the checkpoint, TensorBoard scalars, one line.
    Returns the stop request of any rank (agreed in the checkpoint's gather), 0 for none."""
    m, info = job.metrics[-1], job.info
    if info.is_main:
        rundir.write_csv(job.plan.run_dir / rundir.METRICS, rundir.METRICS_COLUMNS, job.metrics)
    agreed = checkpoint.save(job.plan.run_dir, net=job.net, opt=job.opt, epochs_done=m["epoch"],
                             metrics=job.metrics, measured_ms=job.measured_ms, rank=info.rank, device=info.device,
                             guard=guard.state(), stop_signal=stop_signal)
    epoch_scalars.log(m)
    acc = format_acc
    log(f"epoch {m['epoch']}/{job.plan.cfg.epochs}  loss {m['train_loss']:.3f}  train acc {acc(m['train_acc'])}  "
        f"test acc {acc(m['test_acc'])}  {m['examples_per_s']:,.1f} examples/s  {m['epoch_s']:.1f} s", flush=True)
    return agreed


def format_acc(value: float | None) -> str:
    """An accuracy as printed: three decimals, or n/a where it is not measured (never 0)."""
    return "n/a" if value is None else f"{value:.3f}"
