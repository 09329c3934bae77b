"""A run resolved once, before it starts: every check that can fail before a process group exists
(bad input exits 2 with one line, leaving nothing behind), and the derived facts the rest of the run
reads — name, directory, batches, BN group size, description, untimed steps — from one frozen object.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import rundir
from bench.argcheck import output_file
from bench.bn import emulate, unavailable_reason
from bench.errors import UsageError
from bench.run import checkpoint
from bench.run.config import TrainConfig
from bench.run.datasets.spec import FASHION_MNIST, DataSpec, image_size, resolve_data
from bench.run.profiler import WINDOW_STEPS
from bench.run.recipe import Recipe
from bench.run.recipe import resolve as resolve_recipe
from bench.run.step import check_mode

N_TRAIN = FASHION_MNIST["n_train"]  # Fashion-MNIST's training images


@dataclass(frozen=True)
class RunPlan:
    """What one job is, as every rank computes it alike from its flags and the world size."""
    cfg: TrainConfig
    world_size: int
    device: torch.device
    run_dir: Path
    resume: bool           # continue run_dir from its checkpoint
    per_rank_batch: int
    data: DataSpec         # the data source: image shape, classes, set sizes (bench.run.datasets.spec)
    steps_per_epoch: int   # --steps, else one pass: the last incomplete global batch is dropped, as
                           # DistributedSampler can
    bn_group_size: int     # ranks whose samples one BN layer normalises together (1 = local statistics)
    bn_description: str
    profile: bool          # a profiler window in this attempt (a resumed attempt keeps the first's trace)
    untimed_steps: int     # first steps of this attempt left out of the timing: profiler window + warm-up
    recipe: Recipe         # optimiser, learning rate and schedule (bench.run.recipe)

    @property
    def run_name(self) -> str:
        return self.run_dir.name

    @property
    def global_batch(self) -> int:
        return self.cfg.batch_size

    def record(self) -> dict:
        """The plan's part of config.json."""
        return {**self.cfg.as_dict(), "world_size": self.world_size, "per_rank_batch": self.per_rank_batch,
                "global_batch": self.global_batch, "bn_group_size": self.bn_group_size,
                "bn_description": self.bn_description, "run_name": self.run_name,
                "steps_per_epoch": self.steps_per_epoch, **self.data.record(), **self.recipe.record()}


def run_name(cfg: TrainConfig, world_size: int) -> str:
    return cfg.run_name or rundir.default_run_name(cfg.model, cfg.variant, world_size, cfg.batch_size,
                                                    cfg.seed, mode=cfg.mode, amp=cfg.amp,
                                                    bn_group_size=cfg.bn_group_size,
                                                    bn_emulate_ranks=cfg.bn_emulate_ranks, data=cfg.data,
                                                    image_size=image_size(cfg), channels_last=cfg.channels_last,
                                                    steps=cfg.steps)


def _group_size(cfg: TrainConfig, world_size: int) -> int:
    """The one place the BN group size is derived: 1 for local variants, else the flag or the world."""
    if cfg.variant not in rundir.SYNCHRONISING:
        return 1
    return cfg.bn_group_size or world_size


def _describe_bn(cfg: TrainConfig, k: int, world_size: int) -> str:
    impl = rundir.VARIANT_NAMES[cfg.variant]
    if cfg.variant in rundir.BATCH_FREE:
        return f"{impl}: statistics of each example on its own, whatever the batch or the ranks"
    if cfg.variant in rundir.SYNCHRONISING and k == 1:
        return f"{impl}: local statistics only (world size {world_size}), no synchronisation"
    if k > 1:
        return f"{impl}: statistics synchronised over {k} of {world_size} ranks"
    if cfg.bn_emulate_ranks > 1:
        return f"{impl}: local statistics on each of {cfg.bn_emulate_ranks} emulated ranks per process"
    return f"{impl}: local statistics on each rank"


def _check_numbers(cfg: TrainConfig, world_size: int) -> None:
    if cfg.variant not in rundir.VARIANTS:
        raise UsageError(f"unknown variant {cfg.variant!r}: choose one of {', '.join(rundir.VARIANTS)}")
    from bench.nets import model_problem
    if (problem := model_problem(cfg.model)) is not None:
        raise UsageError(problem)
    if cfg.epochs <= 0 or not 0 < (cfg.lr or 1.0) <= torch.finfo(torch.float32).max:
        raise UsageError(f"--epochs and --lr must be positive and --lr a finite float32 (got {cfg.epochs}, "
                         f"{cfg.lr}): pass e.g. --epochs 10 --lr 0.9")
    if cfg.batch_size % world_size:
        raise UsageError(f"--batch-size {cfg.batch_size} is not divisible by world size {world_size}: "
                         f"pick a multiple of {world_size}")
    if cfg.bn_group_size is not None:
        if cfg.variant not in rundir.SYNCHRONISING:
            raise UsageError(f"--bn-group-size applies to {' and '.join(rundir.SYNCHRONISING)}, not {cfg.variant}")
        if world_size % cfg.bn_group_size:
            raise UsageError(f"--bn-group-size {cfg.bn_group_size} does not divide world size {world_size}")


def _check_out(out: Path, create: bool) -> None:
    """--out is (or, with `create`, now is) a writable folder; without `create`, the nearest folder
    that exists must be writable, so creating the rest would succeed."""
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create --out {out} ({e.strerror}): pass a writable directory") from None
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out} is not writable: pass a writable directory")


def resolve(cfg: TrainConfig, world_size: int, device: torch.device, restarted: bool = False,
            create: bool = True) -> RunPlan:
    """Check everything that can be checked before any process group exists; return the plan.

    Raises UsageError naming the problem and the fix. ``restarted``: torchrun restarted this job
    (bench.run.checkpoint.choose_run_dir decides whether it resumes). ``create=False`` creates
    nothing, not even --out: a launcher checking a job before starting it (launch.run).
    """
    _check_numbers(cfg, world_size)
    data = resolve_data(cfg)
    per_rank = cfg.batch_size // world_size
    k = _group_size(cfg, world_size)
    emulate.check(cfg.variant, per_rank, cfg.bn_emulate_ranks, cfg.mode)
    if per_rank * k < 2:
        raise UsageError(f"per-rank batch {per_rank} with local BN statistics: BN needs more than one value "
                         f"per channel; use a larger --batch-size or a synchronised variant")
    check_mode(cfg.mode, cfg.amp, cfg.variant, world_size, device,
               (WINDOW_STEPS if cfg.profile else 0) + cfg.warmup_steps)
    if cfg.variant == "sync" and device.type != "cuda" and world_size > 1:
        raise UsageError("nn.SyncBatchNorm synchronises only CUDA tensors, so --variant sync cannot run on "
                         "CPU with world size > 1: use --variant scratch-sync (runs on gloo) or GPUs")
    if (why := unavailable_reason(cfg.variant, device)) is not None:
        raise UsageError(f"--variant {cfg.variant} cannot run on {device.type}: {why}")
    out = Path(cfg.out)
    if cfg.results_file is not None:  # the flag's type checks it too; main(cfg) callers reach here
        output_file("--results-file", cfg.results_file)
    _check_out(out, create)
    recipe = resolve_recipe(cfg, cfg.batch_size)
    options = {**cfg.as_dict(), "bn_group_size": k, **recipe.record()}
    run_dir, resume = checkpoint.choose_run_dir(options, out / run_name(cfg, world_size), world_size, restarted)
    profile = cfg.profile and not resume
    return RunPlan(cfg=cfg, world_size=world_size, device=device, run_dir=run_dir, resume=resume,
                   per_rank_batch=per_rank, data=data, steps_per_epoch=cfg.steps or data.n_train // cfg.batch_size,
                   bn_group_size=k, bn_description=_describe_bn(cfg, k, world_size), profile=profile,
                   untimed_steps=(WINDOW_STEPS if profile else 0) + cfg.warmup_steps, recipe=recipe)
