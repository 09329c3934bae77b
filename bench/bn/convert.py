"""One converter for every variant, the way ``nn.SyncBatchNorm.convert_sync_batchnorm`` works: each
normalisation layer of a network becomes a layer of the chosen variant at the same module path.

What is kept: ``num_features``, ``eps``, ``momentum`` and ``affine``, and the tensors both layers
have (``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``), copied
exactly. Converting to ``gn`` drops the running statistics (GroupNorm has none) and the momentum;
converting from ``gn`` starts them afresh (mean 0, variance 1). A layer the target cannot represent
(``affine=False`` or ``momentum=None`` into a variant that always has both) is refused, not bent.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from bench.bn.emulate import EmulatedRanksNorm
from bench.bn.groupnorm import GroupNormLayer

TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _kinds() -> tuple[type, ...]:
    from bench.bn.scratch import ScratchBatchNorm
    from bench.bn.scratch_sync import ScratchSyncBatchNorm
    kinds = [nn.modules.batchnorm._BatchNorm, ScratchBatchNorm, ScratchSyncBatchNorm, GroupNormLayer,
             EmulatedRanksNorm]
    try:
        from bench.bn.fused import FusedBatchNorm
        kinds.append(FusedBatchNorm)
    except ImportError:  # the Triton layer's module imports triton lazily; without it no such layer exists
        pass
    return tuple(kinds)


def is_norm_layer(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer the converter replaces (any variant, or torch's BN)."""
    return isinstance(module, _kinds())


def arithmetic(layer: nn.Module) -> nn.Module:
    """The layer whose settings (eps, momentum) govern ``layer``'s maths: an emulated-ranks wrapper's
    inner layer, else the layer itself."""
    return layer._layer if isinstance(layer, EmulatedRanksNorm) else layer


def dims_of(layer: nn.Module) -> int:
    """2 for a layer on (N, C) input, 4 for (N, C, H, W)."""
    inner = arithmetic(layer)
    if isinstance(inner, nn.BatchNorm1d):
        return 2
    if isinstance(inner, (nn.BatchNorm2d, nn.SyncBatchNorm)):
        return 4
    if isinstance(inner, nn.modules.batchnorm._BatchNorm):
        raise ValueError(f"{type(inner).__name__} is not supported: bnbench's variants take (N, C) or (N, C, H, W)")
    return inner.dims


def _settings(old: nn.Module) -> tuple[int, float, float | None, bool]:
    inner = arithmetic(old)
    features = inner.num_features if hasattr(inner, "num_features") else inner.num_channels
    affine = getattr(inner, "affine", True)
    return features, inner.eps, getattr(inner, "momentum", 0.1), affine


def _configure(new: nn.Module, old: nn.Module, path: str) -> None:
    """Give ``new`` ``old``'s eps, momentum and tensors; refuse what ``new`` cannot represent."""
    _, eps, momentum, affine = _settings(old)
    inner = arithmetic(new)
    new_affine = getattr(inner, "affine", True)
    if affine != new_affine:
        raise ValueError(f"{path}: affine={affine} cannot become {type(inner).__name__}, which has "
                         f"affine={new_affine}")
    inner.eps = eps
    if hasattr(inner, "momentum") and not isinstance(inner, GroupNormLayer):
        if momentum is None and not isinstance(inner, nn.modules.batchnorm._BatchNorm):
            raise ValueError(f"{path}: momentum=None (a cumulative average) cannot become {type(inner).__name__}")
        if not isinstance(arithmetic(old), GroupNormLayer):
            inner.momentum = momentum
    with torch.no_grad():
        for name in TENSORS:
            src, dst = getattr(old, name, None), getattr(new, name, None)
            if isinstance(src, torch.Tensor) and isinstance(dst, torch.Tensor):
                dst.copy_(src)
                if isinstance(dst, nn.Parameter):
                    dst.requires_grad_(src.requires_grad)


def convert_norms(module: nn.Module, make: Callable[[int, int], nn.Module]) -> nn.Module:
    """``module`` with every normalisation layer replaced by ``make(num_features, dims)``, configured
    as the layer it replaces; a normalisation layer passed in itself comes back converted.

    >>> net = convert_norms(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, eps=1e-3)),
    ...                     lambda c, d: GroupNormLayer(c, d))
    >>> type(net[1]).__name__, net[1].num_groups, net[1].eps
    ('GroupNormLayer', 8, 0.001)
    """
    return _convert(module, make, "")


def _convert(module: nn.Module, make: Callable[[int, int], nn.Module], path: str) -> nn.Module:
    if is_norm_layer(module):
        features = _settings(module)[0]
        new = make(features, dims_of(module))
        ref = next(iter(module.parameters()), None)
        if ref is None:
            ref = next(iter(module.buffers()), None)
        if ref is not None:
            new = new.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)
        _configure(new, module, path or "<root>")
        new.train(module.training)
        return new
    for name, child in list(module.named_children()):
        converted = _convert(child, make, f"{path}.{name}" if path else name)
        if converted is not child:
            setattr(module, name, converted)
    return module


def convert_variant(module: nn.Module, variant: str, process_group=None) -> nn.Module:
    """Every normalisation layer of ``module`` as ``variant`` (bench.bn.make_norm), synchronising
    over ``process_group`` where the variant does. Raises ValueError for what cannot be converted.

    >>> net = convert_variant(nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6)), "scratch")
    >>> type(net[1]).__name__, net[1].dims
    ('ScratchBatchNorm', 2)
    """
    from bench.bn import make_norm
    return convert_norms(module, lambda c, d: make_norm(variant, c, d, process_group=process_group))
