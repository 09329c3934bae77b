"""The reference the cross-rank BN tests compare against: a global batch split across ranks (``Case``),
batch norm written out in float64 over it and differentiated by autograd (``reference_batch_norm``),
and the comparison of every rank's steps with it. Nothing from bench.bn computes these values.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from tests.dist_helpers import CountCollectives

EPS = 1e-5
MOMENTUM = 0.1


@dataclasses.dataclass(frozen=True)
class Case:
    """A sequence of global batches split across ranks; everything derives from the seed."""

    dims: int
    per_rank_batch: tuple[int, ...]
    channels: int = 3
    spatial: int = 4  # H = W when dims is 4
    steps: int = 3
    offset: float = 0.0  # added to every input value
    channels_last: bool = False
    ranks_per_group: int | None = None  # None: one group of every rank
    seed: int = 0

    def global_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, upstream gradient) of the whole global batch at this step, float32."""
        gen = torch.Generator().manual_seed(1000 * self.seed + step)
        shape = (sum(self.per_rank_batch), self.channels)
        shape += (self.spatial, self.spatial) if self.dims == 4 else ()
        view = (1, -1) + (1,) * (self.dims - 2)
        scale = (0.5 + torch.rand(self.channels, generator=gen)).view(view)
        shift = torch.randn(self.channels, generator=gen).view(view)
        x = self.offset + shift + scale * torch.randn(shape, generator=gen)
        return x, torch.randn(shape, generator=gen)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(1000 * self.seed + 999)
        weight = 1 + 0.5 * torch.randn(self.channels, generator=gen)
        return weight, torch.randn(self.channels, generator=gen)

    def rows(self, rank: int) -> slice:
        start = sum(self.per_rank_batch[:rank])
        return slice(start, start + self.per_rank_batch[rank])

    def groups(self) -> list[list[int]]:
        world_size = len(self.per_rank_batch)
        size = self.ranks_per_group or world_size
        return [list(range(first, first + size)) for first in range(0, world_size, size)]


def reference_batch_norm(x, weight, bias, grad_y) -> dict[str, torch.Tensor]:
    """Float64 batch norm over all of x, with autograd gradients of sum(grad_y * y)."""
    x = x.double().requires_grad_()
    weight = weight.double().requires_grad_()
    bias = bias.double().requires_grad_()
    dims = [0, *range(2, x.dim())]
    view = (1, -1) + (1,) * (x.dim() - 2)
    mean = x.mean(dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dims, keepdim=True)
    y = (x - mean) / torch.sqrt(var + EPS) * weight.view(view) + bias.view(view)
    (y * grad_y.double()).sum().backward()
    count = x.numel() // x.size(1)
    return {
        "y": y.detach(), "dx": x.grad, "dweight": weight.grad, "dbias": bias.grad,
        "mean": mean.flatten().detach(),
        "var_unbiased": var.flatten().detach() * count / (count - 1),
    }  # fmt: skip


def run_steps(module: nn.Module, case: Case, rows: slice, counter: CountCollectives) -> list[dict]:
    """case.steps training steps on the given rows of each global batch; one record per step."""
    records = []
    for step in range(case.steps):
        x, grad_y = (t[rows] for t in case.global_batch(step))
        if case.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        y = module(x)
        forward_calls = counter.take()
        (y * grad_y).sum().backward()
        records.append({
            "y": y.detach(), "dx": x.grad, "dweight": module.weight.grad.clone(),
            "dbias": module.bias.grad.clone(), "running_mean": module.running_mean.clone(),
            "running_var": module.running_var.clone(), "forward_calls": forward_calls,
            "backward_calls": counter.take(),
            "channels_last": y.is_contiguous(memory_format=torch.channels_last),
        })  # fmt: skip
        module.zero_grad()
    return records


def assert_matches_reference(case: Case, per_rank: list[list[dict]], atol: float = 1e-5) -> None:
    """Each group of ranks together equals float64 batch norm over the group's samples."""
    close = dict(atol=atol, rtol=1e-5)
    weight, bias = case.affine()
    for members in case.groups():
        running_mean = torch.zeros(case.channels, dtype=torch.float64)
        running_var = torch.ones(case.channels, dtype=torch.float64)
        for step in range(case.steps):
            x, grad_y = case.global_batch(step)
            rows = torch.cat([torch.arange(len(x))[case.rows(r)] for r in members])
            ref = reference_batch_norm(x[rows], weight, bias, grad_y[rows])
            got = [per_rank[r][step] for r in members]
            for key in ("y", "dx"):
                stacked = torch.cat([g[key] for g in got]).double()
                torch.testing.assert_close(stacked, ref[key], **close)
            for key in ("dweight", "dbias"):  # local grads add up to the full-batch gradient
                torch.testing.assert_close(sum(g[key] for g in got).double(), ref[key], **close)
            running_mean = (1 - MOMENTUM) * running_mean + MOMENTUM * ref["mean"]
            running_var = (1 - MOMENTUM) * running_var + MOMENTUM * ref["var_unbiased"]
            for g in got:  # every rank, including those without samples
                torch.testing.assert_close(g["running_mean"].double(), running_mean, **close)
                torch.testing.assert_close(g["running_var"].double(), running_var, **close)
