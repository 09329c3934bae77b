"""The textbook's from-scratch batch norm: the ``scratch`` variant."""
from __future__ import annotations

import torch
from torch import nn


class ScratchBatchNorm(nn.Module):
    """The textbook's BN, with buffers updated in place.

    Batch mean and *biased* variance over dim 0 for (N,C) input and over (N,H,W) for (N,C,H,W),
    eps 1e-5, running statistics ``0.9·running + 0.1·batch`` (biased variance kept). The textbook
    reassigns ``self.moving_mean = ...``; under CUDA-graph capture that detaches the attribute from the
    captured memory and the running stats silently stop updating. In-place updates keep one storage
    through ``.to()``, ``state_dict``, ``torch.compile`` and graph replay.
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
