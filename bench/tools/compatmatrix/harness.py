"""What every compatibility case shares: variants as factories, the per-rank context, the inputs,
batch norm in float64, and comparisons that raise `CaseFailed` with the measured difference.
bench.tools.compatmatrix.build explains the matrix; the cases are in bench.tools.compatmatrix.cases_numeric and
bench.tools.compatmatrix.cases_ranks; counting and timing in bench.tools.compatmatrix.counting.

Every rank of a cell sees the same global batch (seeded), takes its own rows of it, and compares
what the layer gives it with float64 batch norm over the whole global batch: y and dx row by row,
dweight and dbias as the sum over ranks (each rank's are local sums, as under nn.SyncBatchNorm),
running statistics on every rank.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

from bench.bn import fused, make_norm
from bench.rundir import SYNCHRONISING

EPS, MOMENTUM = 1e-5, 0.1
SHAPE = (8, 8, 12, 12)  # default per-rank input (N, C, H, W): python -m bench.compat --shape
FP32_TOL = 1e-4  # absolute and relative, float32 against float64


class CaseFailed(Exception):
    """The layer ran but missed the case's criterion; the message says by how much."""


class NotApplicable(Exception):
    """The case cannot run for this variant here; the message says why."""


@dataclass(frozen=True)
class VariantSpec:
    """A BN variant as the matrix sees it: `build(num_features, dims)` -> layer (synchronising
    layers over the default process group), as bench.nets' norm factories; module-level, so that
    it pickles into the cell's processes."""

    name: str
    build: Callable[..., nn.Module]
    synchronising: bool


def spec_for(variant: str) -> VariantSpec:
    """The spec of one of bench.rundir.VARIANTS, built by bench.bn.make_norm."""
    return VariantSpec(variant, functools.partial(make_norm, variant), variant in SYNCHRONISING)


@dataclass(frozen=True)
class Ctx:
    """What a case function gets on each rank. world_size 1: no process group."""

    spec: VariantSpec
    rank: int
    world_size: int
    device: torch.device
    reps: int  # timed steps for the speed ratio; 0: none
    shape: tuple[int, int, int, int] = SHAPE  # each rank's (N, C, H, W) in an even split

    @property
    def channels(self) -> int:
        return self.shape[1]

    def even(self) -> tuple[int, ...]:
        """Per-rank batch sizes of an even split: N on every rank."""
        return (self.shape[0],) * self.world_size


def unavailable(layer: nn.Module, device: torch.device, world_size: int,
                synced_training: bool) -> str | None:
    """Why `layer` cannot run a case on `device` with `world_size` ranks, or None.
    `synced_training`: the case trains with statistics shared across the ranks."""
    if isinstance(layer, fused.FusedBatchNorm):
        return fused.unavailable_reason(device)
    if (isinstance(layer, nn.SyncBatchNorm) and synced_training and world_size > 1
            and device.type != "cuda"):
        return ("nn.SyncBatchNorm synchronises CUDA tensors only: on more than one rank its training "
                "forward raises ValueError for CPU input")
    return None


def new_layer(ctx: Ctx, synced_training: bool = True) -> nn.Module:
    """The variant's layer for (N, C, H, W) input, with a seeded non-trivial affine, in training
    mode on ctx.device; NotApplicable when it cannot run here."""
    layer = ctx.spec.build(ctx.channels, 4)
    reason = unavailable(layer, ctx.device, ctx.world_size, synced_training)
    if reason is not None:
        raise NotApplicable(reason)
    weight, bias = affine(ctx.channels)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer.to(ctx.device).train()


def affine(channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(99)
    return 1 + 0.5 * torch.randn(channels, generator=gen), torch.randn(channels, generator=gen)


def global_batch(ctx: Ctx, per_rank: tuple[int, ...], step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, dy) of the whole global batch at `step` (per_rank[r] samples of rank r, each of
    ctx.shape's C, H, W), float32 on the CPU; channels differ in scale and offset, so a mix-up of
    channels or of statistics shows."""
    gen = torch.Generator().manual_seed(1000 + step)
    shape = (sum(per_rank), *ctx.shape[1:])
    scale = (0.5 + torch.rand(ctx.channels, generator=gen)).view(1, -1, 1, 1)
    shift = (2 * torch.randn(ctx.channels, generator=gen)).view(1, -1, 1, 1)
    return shift + scale * torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)


def rows(per_rank: tuple[int, ...], rank: int) -> slice:
    start = sum(per_rank[:rank])
    return slice(start, start + per_rank[rank])


def reference(x: torch.Tensor, dy: torch.Tensor, groups: int | None = None) -> dict[str, torch.Tensor]:
    """Batch norm over all of x in float64 (group norm in ``groups`` groups, each example on its own,
    for a layer without batch statistics), with autograd's gradients of sum(dy * y)."""
    x = x.double().requires_grad_()
    weight, bias = (t.double().requires_grad_() for t in affine(x.size(1)))
    if groups:
        g = x.reshape(x.size(0), groups, -1)
        mean, var = g.mean(-1, keepdim=True), g.var(-1, unbiased=False, keepdim=True)
        x_hat = ((g - mean) / torch.sqrt(var + EPS)).reshape(x.shape)
    else:
        mean = x.mean((0, 2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean((0, 2, 3), keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + EPS)
    y = x_hat * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
    y.backward(dy.double())
    return {"y": y.detach(), "dx": x.grad, "dweight": weight.grad, "dbias": bias.grad,
            "mean": mean.flatten().detach(), "var": var.flatten().detach(),
            "count": x.numel() // x.size(1)}


def close(name: str, got: torch.Tensor | None, want: torch.Tensor, atol: float,
          rtol: float = 0.0) -> None:
    """CaseFailed naming the largest difference when |got - want| > atol + rtol·|want| anywhere."""
    if got is None:
        raise CaseFailed(f"{name} is None (no gradient reached it)")
    got = got.detach().double().cpu()
    if got.shape != want.shape:
        raise CaseFailed(f"{name} has shape {tuple(got.shape)}, float64 batch norm {tuple(want.shape)}")
    if not torch.isfinite(got).all():
        raise CaseFailed(f"{name} holds {int((~torch.isfinite(got)).sum())} non-finite value(s)")
    excess = (got - want).abs() - (atol + rtol * want.abs())
    if want.numel() and excess.max() > 0:
        diff = float((got - want).abs().max())
        raise CaseFailed(f"{name} differs from float64 batch norm by up to {diff:.3g} "
                         f"(allowed {atol:.2g} + {rtol:.2g}·|value|)")


def train_step(layer: nn.Module, x: torch.Tensor, dy: torch.Tensor,
               autocast: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """One forward and backward of `layer` (x, dy already on the device); gradients then zeroed."""
    x = x.detach().requires_grad_()
    with torch.autocast(x.device.type, dtype=autocast, enabled=autocast is not None):
        y = layer(x)
    y.backward(dy.to(y.dtype))
    out = {"y": y.detach(), "dx": x.grad, "dweight": layer.weight.grad.clone(),
           "dbias": layer.bias.grad.clone()}
    layer.zero_grad(set_to_none=True)
    return out


def summed_over_ranks(t: torch.Tensor, ctx: Ctx) -> torch.Tensor:
    """The sum of every rank's `t` (a copy; the check's own collective, not the layer's)."""
    t = t.detach().clone()
    if ctx.world_size > 1:
        dist.all_reduce(t)
    return t


def check_step(ctx: Ctx, got: dict, ref: dict, mine: slice, atol: float, rtol: float) -> None:
    """This rank's y and dx rows, and the ranks' summed dweight and dbias, against float64."""
    close("y", got["y"], ref["y"][mine], atol, rtol)
    close("dx", got["dx"], ref["dx"][mine], atol, rtol)
    for key in ("dweight", "dbias"):
        close(f"{key} (summed over ranks)", summed_over_ranks(got[key], ctx), ref[key], atol, rtol)


def check_running(layer: nn.Module, refs: list[dict], atol: float, rtol: float = 0.0) -> str:
    """Running statistics after the steps of `refs`, from mean 0 and variance 1 with momentum 0.1.

    The variance may follow either convention ('scratch' keeps the biased one, nn the unbiased):
    it is compared with the closer one, whose name is returned; CaseFailed when that misses.
    """
    mean = torch.zeros_like(refs[0]["mean"])
    unbiased, biased = torch.ones_like(mean), torch.ones_like(mean)
    for r in refs:
        n = r["count"]
        mean = (1 - MOMENTUM) * mean + MOMENTUM * r["mean"]
        unbiased = (1 - MOMENTUM) * unbiased + MOMENTUM * r["var"] * n / max(n - 1, 1)
        biased = (1 - MOMENTUM) * biased + MOMENTUM * r["var"]
    close("running_mean", layer.running_mean, mean, atol, rtol)
    got = layer.running_var.detach().double().cpu()
    conventions = {"unbiased": unbiased, "biased": biased}
    # the closer convention is the layer's; where both are within tolerance, the name is a guess
    name = min(conventions, key=lambda k: float((got - conventions[k]).abs().max()))
    close("running_var", layer.running_var, conventions[name], atol, rtol)
    return f"{name} running_var"


def check_training(ctx: Ctx, layer: nn.Module, per_rank: tuple[int, ...], steps: int = 2,
                   atol: float = FP32_TOL, rtol: float = FP32_TOL,
                   prepare: Callable[[torch.Tensor], torch.Tensor] = lambda t: t,
                   autocast: torch.dtype | None = None) -> tuple[dict, str]:
    """`steps` training steps on this rank's rows, each checked against float64 batch norm over the
    global batch, then the running statistics. `prepare` maps the float32 CPU input (and dy) to
    what the layer gets, e.g. channels_last or bfloat16; the reference sees the same values.
    Returns the last step's outputs and which running-variance convention matched."""
    mine, refs, got = rows(per_rank, ctx.rank), [], {}
    groups = layer.num_groups if isinstance(layer, nn.GroupNorm) else None
    for step in range(steps):
        x, dy = (prepare(t) for t in global_batch(ctx, per_rank, step))
        refs.append(reference(x, dy, groups))
        got = train_step(layer, x[mine].to(ctx.device), dy[mine].to(ctx.device), autocast)
        check_step(ctx, got, refs[-1], mine, atol, rtol)
    if groups:
        return got, "no running statistics (group norm)"
    return got, check_running(layer, refs, atol, rtol)
