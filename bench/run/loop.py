"""The training loop of one rank, in pieces of one concern each: set-up, one epoch, its metrics.

Every rank trains on its shard of one seeded permutation per epoch (``epoch_order``), its batches
served by its data source (bench.run.sources); steps are timed by bench.run.timing, their outputs
kept on the device by bench.run.outputs; between steps, bench.run.preempt checks divergence
(bench.run.divergence), agrees on stop requests and writes step checkpoints. bench.run.train drives
these pieces; bench.run.results writes what they found.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as tdist

from bench import rundir
from bench.bn import emulate, make_norm
from bench.nets import FASHION_MNIST_SHAPE, build_model
from bench.run import dist, envinfo
from bench.run.checkpoint import MidEpoch
from bench.run.config import TrainConfig
from bench.run.divergence import Verdict
from bench.run.inputs import DataSpec
from bench.run.outputs import StepOutputs
from bench.run.plan import RunPlan
from bench.run.preempt import StepBoundaries
from bench.run.sources import Source
from bench.run.step import Step
from bench.run.timing import gc_paused


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


def build_net(cfg: TrainConfig, device: torch.device, group=None, data: DataSpec | None = None) -> torch.nn.Module:
    """The seeded network of ``cfg`` with its BN variant (synchronising over ``group``), on ``device``,
    for the images of ``data`` (default Fashion-MNIST's), in channels_last where ``cfg`` asks."""
    torch.manual_seed(cfg.seed)
    norm = lambda c, d: emulate.wrap(make_norm(cfg.variant, c, d, process_group=group),  # noqa: E731
                                     cfg.bn_emulate_ranks)
    shape, classes = (data.input_shape, data.num_classes) if data else (FASHION_MNIST_SHAPE, 10)
    net = build_model(cfg.model, norm, shape, classes).to(device)
    return net.to(memory_format=torch.channels_last) if cfg.channels_last else net


def evaluate(data: Source, model: torch.nn.Module, info: dist.DistInfo, batch: int) -> float | None:
    """Accuracy over the whole test set exactly once (each rank scores a contiguous slice, counts
    summed); None where the source has no test set."""
    return data.evaluate(model, info.rank, info.world_size, batch)


def sync_buffers(model: torch.nn.Module) -> None:
    """Rank 0's running statistics everywhere, so every rank evaluates the same network."""
    if tdist.is_initialized():
        for b in model.buffers():
            tdist.broadcast(b, src=0)


def start_run_dir(plan: RunPlan, info: dist.DistInfo) -> None:
    """Rank 0 lays out the run directory (fresh, or as left for a resume) and records what runs."""
    if info.distributed:
        tdist.barrier()  # every rank has validated before rank 0 touches the file system
    ranks = envinfo.rank_hosts()
    if info.is_main:
        if not plan.resume:
            if plan.run_dir.exists():
                shutil.rmtree(plan.run_dir)
            (plan.run_dir / rundir.TRACES).mkdir(parents=True)
        config = {**plan.record(), "launcher": info.launcher, "backend": info.backend,
                  "device_type": info.device.type, "restart_count": info.restart_count}
        rundir.write_json(plan.run_dir / rundir.CONFIG, config)
        rundir.write_json(plan.run_dir / rundir.ENV, {**envinfo.collect(info.device), "ranks": ranks,
                                                      "hosts": len({r["hostname"] for r in ranks})})
        rundir.write_json(plan.run_dir / rundir.SUMMARY, {"status": rundir.RUNNING, "run_name": plan.run_name,
                                                          "resumed": plan.resume,
                                                          "restart_count": info.restart_count})
    if info.distributed:
        tdist.barrier()


@dataclass
class Job:
    """What one rank trains with: the plan, its place in the world, data, network and step."""
    plan: RunPlan
    info: dist.DistInfo
    data: Source                       # where batches come from (bench.run.sources)
    net: torch.nn.Module               # the network itself (checkpoints, BN parameters)
    model: torch.nn.Module             # what the step calls: the network, or DDP around it
    opt: torch.optim.Optimizer
    step: Step
    metrics: list[dict] = field(default_factory=list)  # one row per finished epoch (metrics.csv)
    measured_ms: list = field(default_factory=list)    # (epoch index, step, ms) of every timed step


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
    with gc_paused():  # a full collection would land in one timed step (bench.run.timing)
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
    test_acc = evaluate(data, job.net, info, plan.cfg.eval_batch)
    # random labels (synthetic data): an accuracy would look like a result, so there is none
    train_acc = (sums[1] / sums[2]).item() if plan.data.accuracy else None
    return {"epoch": ep.index + 1, "train_loss": (sums[0] / (sums[2] / P)).item(),
            "train_acc": train_acc, "test_acc": test_acc,
            "examples_per_s": G * len(timed) / timed_s if timed else float("nan"), "epoch_s": ep.seconds,
            "data_wait_s": wait_s if timed else float("nan")}
