"""The training recipe of a run: optimiser, learning-rate schedule, label smoothing, resolved once
per model from the flags (``python -m bench.train --opt/--momentum/--weight-decay/--lr-scheduler …``).

    textbook     lenet: SGD, lr 1.0, no momentum, no weight decay, no schedule (the textbook's)
    torchvision  every torchvision network (resnet18, resnet50, regnet_*, …): torchvision's reference
                 recipe: SGD, momentum 0.9, weight decay 1e-4 (none on norm layers' weight and bias,
                 as its --norm-weight-decay 0), lr 0.1 × global batch / 256, a linear warm-up from
                 1 % over min(5, epochs / 5) epochs, then cosine decay to 0

A flag given wins over the model's default; ``--opt adamw`` without ``--lr`` takes 1e-3 × global
batch / 256. The schedule is applied per step (a warm-up of 0.2 epochs is 20 % of an epoch's steps);
``step`` multiplies by 0.1 every 30 epochs (torchvision's default). config.json records the resolved
recipe (``recipe``, ``opt``, ``lr``, …), so a run says what trained it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import torch

from bench.errors import UsageError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("none", "step", "cosine")
WARMUP_START = 0.01   # the warm-up's first factor (torchvision's --lr-warmup-decay)
STEP_EVERY_EPOCHS, STEP_GAMMA = 30, 0.1


@dataclass(frozen=True)
class Recipe:
    name: str                # textbook | torchvision: where the defaults came from
    opt: str
    lr: float                # the peak learning rate
    momentum: float
    weight_decay: float
    norm_weight_decay: float  # on norm layers' weight and bias
    lr_scheduler: str
    lr_warmup_epochs: float
    label_smoothing: float

    def record(self) -> dict:
        """config.json's account of the recipe (the resolved values, under the flags' names)."""
        record = dataclasses.asdict(self)
        return {"recipe": record.pop("name"), **record}

    @property
    def scheduled(self) -> bool:
        return self.lr_scheduler != "none" or self.lr_warmup_epochs > 0


def resolve(cfg, global_batch: int) -> Recipe:
    """The recipe of ``cfg`` (a TrainConfig): the model's defaults, each overridden by a flag given.

    >>> from bench.run.config import TrainConfig
    >>> resolve(TrainConfig(), 256)
    Recipe(name='textbook', opt='sgd', lr=1.0, momentum=0.0, weight_decay=0.0, norm_weight_decay=0.0, \
lr_scheduler='none', lr_warmup_epochs=0.0, label_smoothing=0.0)
    >>> r = resolve(TrainConfig(model="resnet50", epochs=90), 1024)
    >>> r.lr, r.momentum, r.weight_decay, r.lr_warmup_epochs, r.lr_scheduler
    (0.4, 0.9, 0.0001, 5.0, 'cosine')
    """
    opt = cfg.opt or "sgd"
    if cfg.model == "lenet":
        base = dict(name="textbook", lr=1.0, momentum=0.0, weight_decay=0.0, lr_scheduler="none", warmup=0.0)
    else:
        base = dict(name="torchvision", lr=0.1 * global_batch / 256, momentum=0.9, weight_decay=1e-4,
                    lr_scheduler="cosine", warmup=min(5.0, cfg.epochs / 5))
    if opt == "adamw":
        base.update(lr=1e-3 * global_batch / 256, momentum=0.0)
        if cfg.momentum is not None:
            raise UsageError("--momentum applies to --opt sgd; AdamW has its own betas: drop --momentum")
    r = Recipe(name=base["name"], opt=opt, lr=_given(cfg.lr, base["lr"]), momentum=_given(cfg.momentum, base["momentum"]),
               weight_decay=_given(cfg.weight_decay, base["weight_decay"]), norm_weight_decay=cfg.norm_weight_decay,
               lr_scheduler=cfg.lr_scheduler or base["lr_scheduler"],
               lr_warmup_epochs=_given(cfg.lr_warmup_epochs, base["warmup"]), label_smoothing=cfg.label_smoothing)
    _check(r, cfg)
    return r


def _given(flag, default):
    return float(default if flag is None else flag)


def _check(r: Recipe, cfg) -> None:
    if r.opt not in OPTIMIZERS or r.lr_scheduler not in SCHEDULERS:
        raise UsageError(f"--opt {r.opt} / --lr-scheduler {r.lr_scheduler}: choose --opt from {', '.join(OPTIMIZERS)} "
                         f"and --lr-scheduler from {', '.join(SCHEDULERS)}")
    if not 0 <= r.label_smoothing < 1:
        raise UsageError(f"--label-smoothing {r.label_smoothing} must be in [0, 1)")
    stateful = r.opt != "sgd" or r.momentum > 0 or r.scheduled
    if cfg.mode == "graph" and stateful:
        raise UsageError(f"--mode graph replays a stateless optimiser at a fixed learning rate, but the {r.name} "
                         f"recipe has {r.opt}, momentum {r.momentum:g}, schedule {r.lr_scheduler}, warm-up "
                         f"{r.lr_warmup_epochs:g}: pass --opt sgd --momentum 0 --lr-scheduler none "
                         f"--lr-warmup-epochs 0, or --mode eager/compile")


def _norm_param_ids(model: torch.nn.Module) -> set[int]:
    from bench.bn.convert import is_norm_layer
    return {id(p) for m in model.modules() if is_norm_layer(m) for p in m.parameters(recurse=False)}


def make_optimizer(model: torch.nn.Module, r: Recipe) -> torch.optim.Optimizer:
    """The optimiser of recipe ``r`` over ``model``'s parameters; norm layers' weight and bias in a
    group of their own when their weight decay differs. Each group remembers its peak lr (``base_lr``)."""
    params = list(model.parameters())
    if r.weight_decay == r.norm_weight_decay:
        groups = [{"params": params, "weight_decay": r.weight_decay}]
    else:
        norm = _norm_param_ids(model)
        groups = [{"params": [p for p in params if id(p) not in norm], "weight_decay": r.weight_decay},
                  {"params": [p for p in params if id(p) in norm], "weight_decay": r.norm_weight_decay}]
        groups = [g for g in groups if g["params"]]
    if r.opt == "adamw":
        opt = torch.optim.AdamW(groups, lr=r.lr)
    else:
        opt = torch.optim.SGD(groups, lr=r.lr, momentum=r.momentum)
    for g in opt.param_groups:
        g["base_lr"] = r.lr
    return opt


def lr_factor(r: Recipe, step: int, steps_per_epoch: int, epochs: int) -> float:
    """The learning rate of global step ``step`` (0-based) over the peak lr.

    >>> r = Recipe("t", "sgd", 1.0, 0.9, 0, 0, "cosine", 1.0, 0)
    >>> [round(lr_factor(r, s, 10, 3), 3) for s in (0, 5, 10, 20, 29)]
    [0.01, 0.505, 1.0, 0.5, 0.006]
    """
    warm = r.lr_warmup_epochs * steps_per_epoch
    if step < warm:
        return WARMUP_START + (1 - WARMUP_START) * step / warm
    if r.lr_scheduler == "step":
        return STEP_GAMMA ** (step // steps_per_epoch // STEP_EVERY_EPOCHS)
    if r.lr_scheduler == "cosine":
        span = max(epochs * steps_per_epoch - warm, 1)
        return 0.5 * (1 + math.cos(math.pi * min(step - warm, span) / span))
    return 1.0


def per_step(run: Callable, opt: torch.optim.Optimizer, r: Recipe, steps_per_epoch: int, epochs: int,
             print_freq: int = 0, log: Callable = print) -> Callable:
    """``run`` (a step's ``(x, y) -> (loss, logits)``) that first sets each group's lr for this step and,
    every ``print_freq`` steps, prints a progress line (one host synchronisation to read the loss).
    The step count lives in the optimiser's groups (``step_count``), so a checkpoint resumes it."""
    if not r.scheduled and not print_freq:
        return run

    def step(x: torch.Tensor, y: torch.Tensor):
        done = opt.param_groups[0].get("step_count", 0)
        if r.scheduled:
            factor = lr_factor(r, done, steps_per_epoch, epochs)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * factor
        out = run(x, y)
        for g in opt.param_groups:
            g["step_count"] = done + 1
        if print_freq and (done + 1) % print_freq == 0:
            epoch, i = divmod(done, steps_per_epoch)
            log(f"  epoch {epoch + 1} step {i + 1}/{steps_per_epoch}  loss {out[0].item():.4f}  "
                f"lr {opt.param_groups[0]['lr']:.4g}", flush=True)
        return out
    return step
