"""What a run is before it starts: its name, how its BN layers group ranks, and every check that
can fail before a process group exists (bad input exits 2 with one line, leaving nothing behind)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from bench import checkpoint, emulate, rundir
from bench.config import TrainConfig
from bench.errors import UsageError
from bench.model import MODELS
from bench.norms import SYNCHRONISING, VARIANTS
from bench.profiling import ACTIVE, WAIT, WARMUP
from bench.step import check_mode

N_TRAIN = 60_000


def run_name(cfg: TrainConfig, world_size: int) -> str:
    return cfg.run_name or rundir.default_run_name(cfg.model, cfg.variant, world_size, cfg.batch_size,
                                                    cfg.seed, mode=cfg.mode, amp=cfg.amp,
                                                    bn_group_size=cfg.bn_group_size,
                                                    bn_emulate_ranks=cfg.bn_emulate_ranks)


def bn_group_size(cfg: TrainConfig, world_size: int) -> int:
    """Ranks whose samples one BN layer normalises together (1 = local statistics)."""
    if cfg.variant not in SYNCHRONISING:
        return 1
    return cfg.bn_group_size or world_size


def describe_bn(cfg: TrainConfig, world_size: int) -> str:
    impl = {"scratch": "from-scratch BN (textbook)", "nn": "nn.BatchNorm1d/2d",
            "sync": "nn.SyncBatchNorm", "scratch-sync": "from-scratch cross-rank BN"}[cfg.variant]
    k = bn_group_size(cfg, world_size)
    if cfg.variant in SYNCHRONISING and k == 1:
        return f"{impl}: local statistics only (world size {world_size}), no synchronisation"
    if k > 1:
        return f"{impl}: statistics synchronised over {k} of {world_size} ranks"
    if cfg.bn_emulate_ranks > 1:
        return f"{impl}: local statistics on each of {cfg.bn_emulate_ranks} emulated ranks per process"
    return f"{impl}: local statistics on each rank"


def validate(cfg: TrainConfig, world_size: int, device: torch.device,
             restarted: bool = False) -> tuple[Path, bool]:
    """Check everything that can be checked before any process group exists; return the run dir
    and whether to resume it."""
    if cfg.variant not in VARIANTS:
        raise UsageError(f"unknown variant {cfg.variant!r}: choose one of {', '.join(VARIANTS)}")
    if cfg.model not in MODELS:
        raise UsageError(f"unknown model {cfg.model!r}: choose one of {', '.join(MODELS)}")
    if cfg.epochs <= 0 or not 0 < cfg.lr <= torch.finfo(torch.float32).max:
        raise UsageError(f"--epochs and --lr must be positive and --lr a finite float32 (got {cfg.epochs}, "
                         f"{cfg.lr}): pass e.g. --epochs 10 --lr 0.9")
    if cfg.batch_size % world_size:
        raise UsageError(f"--batch-size {cfg.batch_size} is not divisible by world size {world_size}: "
                         f"pick a multiple of {world_size}")
    per_rank = cfg.batch_size // world_size
    if cfg.bn_group_size is not None:
        if cfg.variant not in SYNCHRONISING:
            raise UsageError(f"--bn-group-size applies to {' and '.join(SYNCHRONISING)}, not {cfg.variant}")
        if world_size % cfg.bn_group_size:
            raise UsageError(f"--bn-group-size {cfg.bn_group_size} does not divide world size {world_size}")
    emulate.check(cfg.variant, per_rank, cfg.bn_emulate_ranks, cfg.mode)
    if per_rank * bn_group_size(cfg, world_size) < 2:
        raise UsageError(f"per-rank batch {per_rank} with local BN statistics: BN needs more than one value "
                         f"per channel; use a larger --batch-size or a synchronised variant")
    n_train = min(cfg.limit_train or N_TRAIN, N_TRAIN)
    if n_train < cfg.batch_size:
        raise UsageError(f"--limit-train {n_train} is smaller than one global batch ({cfg.batch_size}): "
                         f"raise --limit-train or lower --batch-size")
    check_mode(cfg.mode, cfg.amp, cfg.variant, world_size, device,
               (WAIT + WARMUP + ACTIVE if cfg.profile else 0) + cfg.warmup_steps)
    if cfg.variant == "sync" and device.type != "cuda" and world_size > 1:
        raise UsageError("nn.SyncBatchNorm synchronises only CUDA tensors, so --variant sync cannot run on "
                         "CPU with world size > 1: use --variant scratch-sync (runs on gloo) or GPUs")
    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --out {out} ({e.strerror}): pass a writable directory") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out} is not writable: pass a writable directory")
    options = {**cfg.as_dict(), "bn_group_size": bn_group_size(cfg, world_size)}
    return checkpoint.choose_run_dir(options, out / run_name(cfg, world_size), world_size, restarted)
