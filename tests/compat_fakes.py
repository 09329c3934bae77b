"""Faulty BN layers that tests/test_compatmatrix.py plants in the compatibility matrix. Each is right
except for one fault that one case exists to catch; they live in a module of their own because the
matrix's child processes import them by name.
"""
from __future__ import annotations

import functools
import os
import sys
import time

import torch
import torch._dynamo  # noqa: F401 - graph_break, for the graph-breaking layer
import torch.distributed as dist
from torch import nn

from bench.bn import make_norm
from bench.bn.scratch_sync import ScratchSyncBatchNorm
from bench.tools.compatmatrix.harness import VariantSpec


class EvalSyncingBN(nn.BatchNorm2d):
    """Local BN that all-reduces a copy of its running mean in eval mode, as nn.SyncBatchNorm once
    synchronised during validation (pytorch/pytorch#48988). Its output is still right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.running_mean.clone())
        return super().forward(x)


class EmptyRankStaleBN(ScratchSyncBatchNorm):
    """Cross-rank BN whose rank without samples joins the collectives but keeps its old running
    statistics: that rank's statistics ignore the global batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and x.size(0) == 0):
            return super().forward(x)
        kept = self.running_mean.clone(), self.running_var.clone()
        y = super().forward(x)
        with torch.no_grad():
            self.running_mean.copy_(kept[0])
            self.running_var.copy_(kept[1])
        return y


class ContiguousOutputBN(nn.BatchNorm2d):
    """Right numbers, but a channels_last input comes back contiguous (the silent fallback of
    pytorch/pytorch#88021)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).contiguous()


class NoisyBN(nn.BatchNorm2d):
    """Adds noise of 1e-3 from the global generator: two identical runs differ."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 1e-3 * torch.rand_like(x)


class LowPrecisionStatsBN(nn.BatchNorm2d):
    """Takes a low-precision input's statistics in its own dtype, the variance as E[x²] − E[x]²: right
    in float32, far off in bfloat16 (what autocast exists to prevent)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 or not self.training:
            return super().forward(x)
        mean = x.mean((0, 2, 3), keepdim=True)
        var = (x * x).mean((0, 2, 3), keepdim=True) - mean * mean
        with torch.no_grad():
            n = x.numel() // x.size(1)
            self.running_mean.lerp_(mean.flatten().float(), self.momentum)
            self.running_var.lerp_(var.flatten().float() * n / (n - 1), self.momentum)
        w, b = self.weight.view(1, -1, 1, 1), self.bias.view(1, -1, 1, 1)
        return ((x - mean) * torch.rsqrt(var + self.eps) * w + b).to(x.dtype)


class GraphBreakingBN(nn.BatchNorm2d):
    """Right numbers, but a Python-side step torch.compile cannot trace: one graph break."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._dynamo.graph_break()
        return super().forward(x)


class NeedsGroupBN(nn.BatchNorm2d):
    """Asks for the world size whether or not a process group exists (pytorch/pytorch#63662)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dist.get_world_size()
        return super().forward(x)


class ExitingBN(nn.BatchNorm2d):
    """Says goodbye on stderr and ends its process, as a crash in native code would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("goodbye from the layer", file=sys.stderr, flush=True)
        os._exit(3)


class HangingBN(nn.BatchNorm2d):
    """Never returns."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(3600)
        return super().forward(x)


def _build(cls, num_features: int, dims: int) -> nn.Module:
    return cls(num_features)


def _scratch_sync_stale(num_features: int, dims: int) -> nn.Module:
    return EmptyRankStaleBN(num_features, dims)


FAKES = {
    "eval-syncing": VariantSpec("eval-syncing", functools.partial(_build, EvalSyncingBN), False),
    "empty-rank-stale": VariantSpec("empty-rank-stale", _scratch_sync_stale, True),
    "contiguous-output": VariantSpec("contiguous-output", functools.partial(_build, ContiguousOutputBN),
                                     False),
    # nn.BatchNorm2d declared synchronising: its statistics stay local and it joins no collective
    "unsynced": VariantSpec("unsynced", functools.partial(make_norm, "nn"), True),
    "noisy": VariantSpec("noisy", functools.partial(_build, NoisyBN), False),
    "needs-group": VariantSpec("needs-group", functools.partial(_build, NeedsGroupBN), False),
    "low-precision-stats": VariantSpec("low-precision-stats", functools.partial(_build, LowPrecisionStatsBN),
                                       False),
    "graph-breaking": VariantSpec("graph-breaking", functools.partial(_build, GraphBreakingBN), False),
    "hanging": VariantSpec("hanging", functools.partial(_build, HangingBN), False),
    "exiting": VariantSpec("exiting", functools.partial(_build, ExitingBN), False),
}
