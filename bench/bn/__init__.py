"""The batch-norm layers and their factory. Rule: imports torch, bench.rundir and bench.errors only;
nothing here knows of networks, the training loop or run directories.

All batch-norm variants expose Parameters ``weight``, ``bias`` and buffers ``running_mean``,
``running_var``, each of shape (C,), so state_dicts, DDP's buffer broadcast and the reports treat them
alike; ``gn`` has the Parameters only. ``bench.bn.convert`` turns every norm layer of a network into any
variant.

    scratch       the textbook's from-scratch BN (bench.bn.scratch): batch mean and biased variance,
                  running stats 0.9·running + 0.1·batch (biased variance kept)
    nn            torch.nn.BatchNorm1d / BatchNorm2d (unbiased running variance)
    sync          torch.nn.SyncBatchNorm: statistics over all ranks (CUDA only)
    scratch-sync  from-scratch cross-rank BN (bench.bn.scratch_sync), runs on gloo and NCCL
    fused         Triton kernels at the memory system's limit (bench.bn.fused; docs/fused.md): CUDA,
                  or CPU under TRITON_INTERPRET=1 (bench.bn.fused.unavailable_reason says why not)
    fused-sync    the same with statistics over the ranks of a process group (gloo and NCCL)
    gn            nn.GroupNorm (bench.bn.groupnorm): per-example statistics over groups of channels, the
                  batch-independent alternative; weight and bias only, no running statistics

``bench.bn.emulate`` wraps a local variant to behave as on K ranks in one process.
"""
from __future__ import annotations

from torch import nn

from bench.bn.scratch import ScratchBatchNorm
from bench.rundir import SYNCHRONISING, TRITON_VARIANTS, VARIANTS  # the one list, shared with analysis/

__all__ = ["SYNCHRONISING", "VARIANTS", "ScratchBatchNorm", "make_norm", "unavailable_reason"]


def unavailable_reason(variant: str, device) -> str | None:
    """None when ``variant``'s layer can run on tensors of ``device``, else one line saying why not.

    Only the Triton variants depend on the machine here (triton importable, CUDA, or CPU under
    TRITON_INTERPRET=1); checking them imports triton, the others cost nothing.

    >>> unavailable_reason("nn", "cpu") is None
    True
    """
    if variant not in TRITON_VARIANTS:
        return None
    from bench.bn.fused import unavailable_reason as fused_reason
    return fused_reason(device)


def make_norm(variant: str, num_features: int, dims: int, process_group=None) -> nn.Module:
    """A BN layer of ``variant`` for (N,C) input (dims=2) or (N,C,H,W) input (dims=4).

    ``process_group`` limits synchronisation to a group of ranks (sync variants only; None = all).

    >>> [type(make_norm(v, 3, 4)).__name__ for v in ("scratch", "nn")]
    ['ScratchBatchNorm', 'BatchNorm2d']
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
        from bench.bn.scratch_sync import ScratchSyncBatchNorm
        return ScratchSyncBatchNorm(num_features, dims, process_group=process_group)
    if variant == "gn":
        from bench.bn.groupnorm import GroupNormLayer
        return GroupNormLayer(num_features, dims)
    if variant in TRITON_VARIANTS:
        from bench.bn.fused import FusedBatchNorm
        return FusedBatchNorm(num_features, dims, process_group=process_group, sync=variant == "fused-sync")
    raise ValueError(f"unknown BN variant {variant!r}; choose from {', '.join(VARIANTS)}")
