"""Group normalisation, the ``gn`` variant: the alternative to batch norm whose statistics do not
depend on the batch at all.

Each example is normalised on its own, over groups of channels (and, for (N, C, H, W) input, the
positions): 32 groups as in Wu & He (2018), or the largest divisor of C below that when 32 does not
divide C. An (N, C) input is grouped over its features. There are no running statistics, so a layer
computes the same thing in training and in evaluation, on one rank or many, and never communicates.
"""
from __future__ import annotations

from torch import nn

DEFAULT_GROUPS = 32


def gn_groups(num_channels: int, most: int = DEFAULT_GROUPS) -> int:
    """Groups for ``num_channels``: ``most`` when it divides them, else the largest divisor below it.

    >>> gn_groups(64), gn_groups(120), gn_groups(84), gn_groups(6), gn_groups(7)
    (32, 30, 28, 6, 7)
    """
    if num_channels < 1:
        raise ValueError(f"num_channels must be positive, got {num_channels}")
    return next(g for g in range(min(most, num_channels), 0, -1) if num_channels % g == 0)


class GroupNormLayer(nn.GroupNorm):
    """``nn.GroupNorm(gn_groups(C), C)`` that also records the input rank it replaces (``dims``: 2 for
    (N, C), 4 for (N, C, H, W)) and ``num_features``, as the BN variants do, so the converter can turn
    it back into batch norm and the reports can list it beside them.

    >>> layer = GroupNormLayer(64, 4)
    >>> layer.num_groups, layer.num_channels, layer.dims
    (32, 64, 4)
    """

    def __init__(self, num_features: int, dims: int, eps: float = 1e-5, affine: bool = True):
        if dims not in (2, 4):
            raise ValueError(f"dims must be 2 (N,C) or 4 (N,C,H,W), got {dims}")
        super().__init__(gn_groups(num_features), num_features, eps=eps, affine=affine)
        self.num_features, self.dims = num_features, dims
