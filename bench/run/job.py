"""What one rank trains with, built once before the first epoch: data, network, DDP, optimizer, step.

``build_job`` turns the resolved plan into a ``Job``; the loop (bench.run.loop) receives it and
trains, the step boundaries (bench.run.stepbounds) checkpoint it and bench.run.results writes what
it found. Nothing here trains or writes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from bench import rundir
from bench.bn import emulate, make_norm
from bench.nets import FASHION_MNIST_SHAPE, build_model
from bench.run import dist, recipe
from bench.run.config import TrainConfig
from bench.run.datasets import feeds
from bench.run.datasets.feeds import Source
from bench.run.datasets.spec import DataSpec
from bench.run.plan import RunPlan
from bench.run.step import Step, make_step


@dataclass
class Job:
    """What one rank trains with: the plan, its place in the world, data, network and step."""
    plan: RunPlan
    info: dist.DistInfo
    data: Source                       # where batches come from (bench.run.datasets.feeds)
    net: torch.nn.Module               # the network itself (checkpoints, BN parameters)
    model: torch.nn.Module             # what the step calls: the network, or DDP around it
    opt: torch.optim.Optimizer
    step: Step
    metrics: list[dict] = field(default_factory=list)  # one row per finished epoch (metrics.csv)
    measured_ms: list = field(default_factory=list)    # (epoch index, step, ms) of every timed step


def build_net(cfg: TrainConfig, device: torch.device, group=None, data: DataSpec | None = None) -> torch.nn.Module:
    """The seeded network of ``cfg`` with its BN variant (synchronising over ``group``), on ``device``,
    for the images of ``data`` (default Fashion-MNIST's), in channels_last where ``cfg`` asks."""
    torch.manual_seed(cfg.seed)
    norm = lambda c, d: emulate.wrap(make_norm(cfg.variant, c, d, process_group=group),  # noqa: E731
                                     cfg.bn_emulate_ranks)
    shape, classes = (data.input_shape, data.num_classes) if data else (FASHION_MNIST_SHAPE, 10)
    net = build_model(cfg.model, norm, shape, classes).to(device)
    return net.to(memory_format=torch.channels_last) if cfg.channels_last else net


def build_job(plan: RunPlan, info: dist.DistInfo) -> Job:
    """Data, network (DDP around it on several ranks), optimizer and step of this rank."""
    cfg = plan.cfg
    data = feeds.load(cfg, plan.data, info.device)
    # a synchronising variant gets its group of ranks (groups of one under --bn-group-size 1)
    group = None
    if cfg.variant in rundir.SYNCHRONISING and info.distributed:
        group = dist.consecutive_groups(plan.bn_group_size, info)
    net = build_net(cfg, info.device, group, plan.data)
    model = net
    if info.distributed:
        model = DDP(net, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    opt = recipe.make_optimizer(model, plan.recipe)
    # Built before the profiler starts, so graph capture never runs under it.
    step = make_step(model, opt, cfg.mode, cfg.amp, data.example(plan.per_rank_batch), plan.recipe.label_smoothing)
    step.run = recipe.per_step(step.run, opt, plan.recipe, plan.steps_per_epoch, cfg.epochs, cfg.print_freq,
                               print if info.is_main else (lambda *a, **k: None))
    return Job(plan, info, data, net, model, opt, step)
