"""Batch norm in Triton kernels at the memory system's limit: ``fused`` and ``fused-sync``.

A training step costs three passes over the activations in forward and five in backward, the
fewest the arithmetic allows (docs/fused.md counts the bytes):

forward
    one pass reads x for per-channel (count, mean, M2) -- tile statistics merged with Chan's
    formula, exact in float32 whatever the offset -- then a tiny kernel combines the partials,
    computes invstd and moves the running statistics in place (unbiased variance, momentum, as
    ``nn.BatchNorm``); one pass reads x and writes y = (x - mean) * invstd * weight + bias.
backward
    one pass reads dy and x for sum(dy) and sum(dy * xhat) -- which are also dbias and dweight --
    and one pass reads dy and x again and writes dx.

``sync=True`` (``fused-sync``) makes the statistics those of every rank of ``process_group``
together, exactly as ``scratch-sync`` (bench.bn.scratch_sync) does and with the same two collectives:
each rank's combined (count, mean, M2) goes through ONE all-gather in forward and every rank
merges the W triples with the same ``combine`` kernel that merged its own partials; the two sums go through ONE all-reduce in backward. dweight and
dbias stay local sums, as under ``nn.SyncBatchNorm`` (DDP averages them). A rank with no samples
contributes count 0 and still joins both collectives. With no process group initialised, or a
group of one rank, it runs locally.

Inputs: float32 or bfloat16 (statistics in float32, output in the input's dtype, so autocast sees
what ``nn.BatchNorm`` gives it), (N, C) or (N, C, H, W), contiguous or channels_last (the output
keeps the input's memory format; other strides are copied to contiguous first). Eval mode
normalises with the running statistics and communicates nothing.

Where it runs: CUDA tensors, or CPU tensors under Triton's interpreter. ``TRITON_INTERPRET=1``
must be in the environment before the process first imports triton (torch._dynamo and
torch.compile import it too): Triton reads it when it decorates its own kernels, ``tl.sum``
included. ``unavailable_reason`` says in one line why the kernels cannot run on a device. Under
the interpreter the kernels take their blocks from the input's size instead of autotuning
(bench.bn.fused.tuning explains the configurations). torch.compile does not trace into the layer:
``forward`` is excluded from Dynamo and runs as the kernels it already is.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["FusedBatchNorm", "unavailable_reason"]

CPU_HINT = "set TRITON_INTERPRET=1 to run the Triton kernels on CPU (slow; for tests)"
DTYPES = (torch.float32, torch.bfloat16)


def _interpreting_env() -> bool:
    """TRITON_INTERPRET as Triton itself parses it."""
    import triton

    return bool(triton.knobs.runtime.interpret)


def unavailable_reason(device: torch.device | str) -> str | None:
    """None when the fused kernels can run on tensors of `device`, else one line saying why not."""
    try:
        import triton
        import triton.language as tl
    except ImportError as exc:  # triton is optional: only these variants need it
        return f"triton is not importable ({exc}); the fused variants need it"
    device = torch.device(device)
    stdlib_interpreted = not isinstance(tl.zeros, triton.runtime.JITFunction)
    if _interpreting_env() != stdlib_interpreted:
        state = "set" if _interpreting_env() else "unset"
        return (f"TRITON_INTERPRET is {state} now but was not when triton was first imported; "
                "set it in the environment before Python starts")
    if device.type == "cpu":
        return None if stdlib_interpreted else CPU_HINT
    if device.type != "cuda":
        return (f"the fused kernels run on CUDA devices (or CPU under TRITON_INTERPRET=1), "
                f"not {device.type}")
    if not torch.cuda.is_available():
        return "CUDA is not available to torch"
    return None


def _launch():
    """The kernel launchers (imports triton; call only after unavailable_reason said None)."""
    from bench.bn.fused import host

    return host


def _on_device(t: torch.Tensor) -> contextlib.AbstractContextManager:
    """Triton launches on the current CUDA device: make it t's."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _all_gather_triples(local: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
    """(3, W, C) view of every rank's (count, mean, M2), one all-gather of (3, C) each."""
    world_size = dist.get_world_size(group)
    gathered = local.new_empty((world_size * 3, local.shape[1]))
    # gloo only takes the concatenated form; all_gather_single supersedes the _into_tensor name
    all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    all_gather_single(gathered, local.contiguous(), group=group)
    return gathered.view(world_size, 3, -1).transpose(0, 1)


def batch_stats(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor, eps: float,
                momentum: float, group: dist.ProcessGroup | None, sync: bool) -> torch.Tensor:
    """(4, C) float32 count, mean, M2, invstd of the batch (of the group's batch if sync); moves
    the running statistics in place."""
    ops = _launch()
    part = ops.local_partials(x)
    if sync:
        local = ops.combine(part, None, None, eps, momentum)
        part = _all_gather_triples(local[:3], group)
    return ops.combine(part, running_mean, running_var, eps, momentum)


class _FusedBatchNormFn(torch.autograd.Function):
    """y = (x - mean) * invstd * weight + bias with stats (4, C) = count, mean, M2, invstd given.

    In eval mode the statistics are constants: dx = weight * invstd * dy.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stats, group, sync, training):
        y = _launch().normalize(x, stats[1], stats[3], weight, bias)
        ctx.save_for_backward(x, weight, stats)
        ctx.group, ctx.sync, ctx.training = group, sync, training
        return y

    @staticmethod
    @once_differentiable  # the kernels leave no graph: a second derivative must fail, not be 0
    def backward(ctx, grad_y):
        x, weight, stats = ctx.saved_tensors
        ops = _launch()
        with _on_device(x):
            dy = ops.in_layout(grad_y, like=x)
            sums = ops.grad_sums(x, dy, stats[1], stats[3])
            # computed whatever needs_input_grad says: every rank must run the same collectives
            if ctx.sync:
                dist.all_reduce(sums[2:], group=ctx.group)
            # eval: the statistics do not depend on x, so the two mean terms of dx vanish
            dx_sums = sums[2:] if ctx.training else torch.zeros_like(sums[2:])
            dx = ops.grad_input(x, dy, stats[1], stats[3], weight, dx_sums, stats[0])
        return dx, sums[1].to(weight.dtype), sums[0].to(weight.dtype), None, None, None, None


class FusedBatchNorm(nn.Module):
    """Batch norm for (N, C) input (dims=2) or (N, C, H, W) input (dims=4) in fused Triton kernels.

    Same state as every variant: Parameters ``weight``, ``bias`` and buffers ``running_mean``,
    ``running_var`` of shape (C,). ``sync=True`` spans the ranks of ``process_group`` (default:
    all ranks).
    """

    def __init__(self, num_features: int, dims: int, eps: float = 1e-5, momentum: float = 0.1,
                 process_group: dist.ProcessGroup | None = None, sync: bool = False) -> None:
        super().__init__()
        if dims not in (2, 4):
            raise ValueError(f"dims must be 2 for (N, C) or 4 for (N, C, H, W) input, got {dims}")
        self.num_features, self.dims, self.eps, self.momentum = num_features, dims, eps, momentum
        self.process_group, self.sync = process_group, sync
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self._ready_on: set[torch.device] = set()
        _exclude_forward_from_dynamo()

    def extra_repr(self) -> str:
        return (f"{self.num_features}, dims={self.dims}, eps={self.eps}, "
                f"momentum={self.momentum}, sync={self.sync}")

    def _syncs(self) -> bool:
        """True when training statistics must be gathered from other ranks."""
        return (self.sync and dist.is_available() and dist.is_initialized()
                and dist.get_world_size(self.process_group) > 1)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != self.dims or x.size(1) != self.num_features:
            raise ValueError(f"expected a {self.dims}-d input with {self.num_features} channels in "
                             f"dimension 1, got shape {tuple(x.shape)}")
        if x.dtype not in DTYPES:
            raise ValueError(f"the fused kernels take float32 or bfloat16 input, got {x.dtype}")
        if x.device not in self._ready_on:  # once per device: the check imports triton
            reason = unavailable_reason(x.device)
            if reason is not None:
                raise RuntimeError(reason)
            self._ready_on.add(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        with _on_device(x):
            return self._forward(_launch().in_layout(x))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        sync = self.training and self._syncs()
        if self.training:
            with torch.no_grad():
                stats = batch_stats(x, self.running_mean, self.running_var, self.eps,
                                    self.momentum, self.process_group, sync)
        else:
            invstd = torch.rsqrt(self.running_var.float() + self.eps)
            # count and M2 are unused in eval: dx has no mean terms
            stats = torch.stack([torch.ones_like(invstd), self.running_mean.float(),
                                 torch.zeros_like(invstd), invstd])
        return _FusedBatchNormFn.apply(x, self.weight, self.bias, stats, self.process_group,
                                       sync, self.training)


def _exclude_forward_from_dynamo() -> None:
    """Make torch.compile run FusedBatchNorm.forward as it is (a graph break around the layer).

    The layer is already its kernels; tracing it would meet host-side launch logic and
    autotuning. Done at the first construction, not at import: torch.compiler.disable imports
    torch._dynamo, seconds that listing the variants should not cost.
    """
    if not getattr(FusedBatchNorm.forward, "_eager_only", False):
        FusedBatchNorm.forward = torch.compiler.disable(FusedBatchNorm.forward)
        FusedBatchNorm.forward._eager_only = True
