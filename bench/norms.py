"""Every batch-norm variant, behind one factory.

All variants expose Parameters `weight`, `bias` and buffers `running_mean`, `running_var`, each of
shape (C,), so state_dicts, DDP's buffer broadcast and the reports treat them alike.

    scratch       the textbook's from-scratch BN: batch mean and biased variance, running stats
                  0.9·running + 0.1·batch (biased variance kept)
    nn            torch.nn.BatchNorm1d / BatchNorm2d (unbiased running variance)
    sync          torch.nn.SyncBatchNorm: statistics over all ranks (CUDA only)
    scratch-sync  from-scratch cross-rank BN (bench.syncnorm), runs on gloo and NCCL
"""
from __future__ import annotations

import torch
from torch import nn

from bench.rundir import SYNCHRONISING, VARIANTS  # the one list, shared with analysis/


class ScratchBatchNorm(nn.Module):
    """The textbook's BN, with buffers updated in place.

    The textbook reassigns `self.moving_mean = ...`; under CUDA-graph capture that detaches the
    attribute from the captured memory and the running stats silently stop updating. In-place
    updates keep one storage through `.to()`, `state_dict`, `torch.compile` and graph replay.
    """

    def __init__(self, num_features: int, dims: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if dims not in (2, 4):
            raise ValueError(f"dims must be 2 (N,C) or 4 (N,C,H,W), got {dims}")
        self.num_features, self.dims, self.eps, self.momentum = num_features, dims, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) if self.dims == 2 else (1, -1, 1, 1)
        if self.training:
            reduce = (0,) if self.dims == 2 else (0, 2, 3)
            mean = x.mean(dim=reduce, keepdim=True)
            var = ((x - mean) ** 2).mean(dim=reduce, keepdim=True)  # biased, as the textbook
            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            with torch.no_grad():
                m = self.momentum
                self.running_mean.mul_(1.0 - m).add_(mean.reshape(-1), alpha=m)
                self.running_var.mul_(1.0 - m).add_(var.reshape(-1), alpha=m)
        else:
            x_hat = (x - self.running_mean.reshape(shape)) / torch.sqrt(
                self.running_var.reshape(shape) + self.eps)
        return self.weight.reshape(shape) * x_hat + self.bias.reshape(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, dims={self.dims}, eps={self.eps}, momentum={self.momentum}"


def make_norm(variant: str, num_features: int, dims: int, process_group=None) -> nn.Module:
    """A BN layer of `variant` for (N,C) input (dims=2) or (N,C,H,W) input (dims=4).

    `process_group` limits synchronisation to a group of ranks (sync variants only; None = all).
    """
    if dims not in (2, 4):
        raise ValueError(f"dims must be 2 or 4, got {dims}")
    if variant == "scratch":
        return ScratchBatchNorm(num_features, dims)
    if variant == "nn":
        return nn.BatchNorm1d(num_features) if dims == 2 else nn.BatchNorm2d(num_features)
    if variant == "sync":
        return nn.SyncBatchNorm(num_features, process_group=process_group)
    if variant == "scratch-sync":
        from bench.syncnorm import ScratchSyncBatchNorm
        return ScratchSyncBatchNorm(num_features, dims, process_group=process_group)
    raise ValueError(f"unknown BN variant {variant!r}; choose from {', '.join(VARIANTS)}")
