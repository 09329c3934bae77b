"""Cross-rank batch norm written from scratch: the ``scratch-sync`` variant.

In training mode, with a process group of more than one rank, the per-channel statistics are those
of the global batch (every rank's slice together), exactly as ``nn.SyncBatchNorm`` computes them,
and each training step costs one collective in forward and one in backward per layer:

forward
    Each rank computes its per-channel ``(count, mean, biased variance)`` in float32 (Welford, via
    ``torch.var_mean``) and all-gathers that small ``(3, C)`` tensor. Every rank then combines the
    ``W`` triples itself with the parallel-variance formula of Chan, Golub and LeVeque::

        w_r  = n_r / N
        mean = sum_r w_r * mean_r
        var  = sum_r w_r * (var_r + (mean_r - mean) ** 2)

    Why this and not an all-reduce of ``[n, sum(x), sum(x*x)]``: ``E[x^2] - E[x]^2`` cancels
    catastrophically in float32 (inputs with mean 1e3 and std 1 lose every digit of the variance),
    and the only way to rescue it after a sum is float64 everywhere. The formula above only adds
    non-negative terms and differences of nearby means, so it stays accurate in float32 whatever the
    offset, with no float64 on the device. ``nn.SyncBatchNorm`` makes the same choice (an all-gather
    of per-rank statistics). The payload is ``W * 3 * C`` floats, tiny next to the activations.

backward
    The input gradient of batch norm over the global batch of ``N`` samples is::

        dx = weight * invstd * (dy - sum(dy) / N - xhat * sum(dy * xhat) / N)

    where both sums run over the global batch. Each rank computes its local part of the two
    per-channel sums, packs them into one ``(2, C)`` tensor and all-reduces it (one collective).
    ``dweight = sum(dy * xhat)`` and ``dbias = sum(dy)`` are returned as *local* sums: under DDP
    each rank's loss is a mean over its own slice, DDP averages parameter gradients across ranks,
    and that average is then the gradient of the mean global loss -- the same contract as
    ``nn.SyncBatchNorm``. Without DDP, the per-rank weight/bias gradients add up to the gradient
    of the summed per-rank losses.

A rank holding zero samples contributes count 0 (and no NaN) but still joins both collectives, so
uneven or empty slices never hang. In eval mode the running statistics are used and nothing is
communicated. Without an initialised process group, or with a group of one rank, the same code runs
with the collectives skipped: plain local batch norm.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["ScratchSyncBatchNorm"]


def _reduce_dims(x: torch.Tensor) -> list[int]:
    """Every dimension but the channel one: [0] for (N, C), [0, 2, 3] for (N, C, H, W)."""
    return [0, *range(2, x.dim())]


def _per_channel(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a (C,) tensor so it broadcasts against x along dimension 1."""
    return t.view(1, -1, *([1] * (x.dim() - 2)))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float32 for half-precision inputs (autocast), the input's own dtype otherwise."""
    return torch.promote_types(x.dtype, torch.float32)


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """t in dtype, with no op at all when it already is.

    Under torch.compile with torch 2.11 (not 2.14), no-op ``.to`` calls inside the autograd
    function gave all-zero compiled gradients; without them (and without branching on
    ``ctx.needs_input_grad``) compiled and eager gradients agree on CPU and CUDA.
    """
    return t if t.dtype == dtype else t.to(dtype)


def _local_stats(x: torch.Tensor) -> torch.Tensor:
    """(3, C) tensor of this rank's per-channel sample count, mean and biased variance.

    An empty slice gives count 0, mean 0 and variance 0, so it adds nothing to the combination.
    """
    channels = x.size(1)
    count = x.numel() // channels if channels else 0
    if count == 0:
        mean = x.new_zeros(channels)
        var = x.new_zeros(channels)
    else:
        var, mean = torch.var_mean(x, dim=_reduce_dims(x), correction=0)
    return torch.stack([torch.full_like(mean, float(count)), mean, var])


def _all_gather_stats(local: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
    """(W, 3, C): every rank's local statistics, in rank order (one all-gather)."""
    world_size = dist.get_world_size(group)
    # gloo only accepts the concatenated (W * 3, C) output form, not the stacked one
    gathered = local.new_empty((world_size * local.size(0), local.size(1)))
    # all_gather_into_tensor is deprecated in favour of all_gather_single in recent releases
    all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    all_gather_single(gathered, local, group=group)
    return gathered.view(world_size, *local.shape)


def _combine_stats(per_rank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chan's parallel combination of (W, 3, C) per-rank statistics.

    Returns the global count, mean and biased variance, each (C,). Example with one channel:
    ranks holding [1, 3] and [5] give counts 2 and 1, means 2 and 5, variances 1 and 0, so
    w = [2/3, 1/3], mean = 3 and var = 2/3 * (1 + 1) + 1/3 * (0 + 4) = 8/3, the variance of
    [1, 3, 5].
    """
    counts, means, variances = per_rank.unbind(1)
    total = counts.sum(0)
    # clamp: a global batch of zero samples gives zero statistics instead of 0/0
    weights = counts / total.clamp(min=1)
    mean = (weights * means).sum(0)
    var = (weights * (variances + (means - mean) ** 2)).sum(0)
    return total, mean, var


def _batch_stats(
    x: torch.Tensor, eps: float, group: dist.ProcessGroup | None, sync: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Global count, mean, invstd and unbiased variance per channel (one all-gather if sync).

    Not differentiated: the autograd function's backward accounts for how mean and variance
    depend on every sample.
    """
    local = _local_stats(_cast(x, _compute_dtype(x)))
    per_rank = _all_gather_stats(local, group) if sync else local.unsqueeze(0)
    total, mean, var = _combine_stats(per_rank)
    invstd = torch.rsqrt(var + eps)
    # the unbiased N/(N-1) correction is undefined for N = 1; keep it finite there
    var_unbiased = var * total / (total - 1).clamp(min=1)
    return total, mean, invstd, var_unbiased


class _ScratchSyncBatchNormFn(torch.autograd.Function):
    """y = (x - mean) * invstd * weight + bias with the global batch's statistics given."""

    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd, total, group, sync):
        dtype = mean.dtype
        x_c = _cast(x, dtype)
        # centre first: x - mean is exact for nearby values, x * scale + shift would cancel
        y = (x_c - _per_channel(mean, x)) * _per_channel(invstd * _cast(weight, dtype), x)
        y = y + _per_channel(_cast(bias, dtype), x)
        ctx.save_for_backward(x, weight, mean, invstd, total)
        ctx.group = group
        ctx.sync = sync
        return _cast(y, x.dtype)

    @staticmethod
    def backward(ctx, grad_y):
        x, weight, mean, invstd, total = ctx.saved_tensors
        dtype = mean.dtype
        dims = _reduce_dims(x)
        dy = _cast(grad_y, dtype)
        xhat = (_cast(x, dtype) - _per_channel(mean, x)) * _per_channel(invstd, x)
        sum_dy = dy.sum(dims)
        sum_dy_xhat = (dy * xhat).sum(dims)
        # The input gradient and its all-reduce are computed even when x needs no gradient: every
        # rank runs the same collectives whatever requires grad, and no branch on
        # ctx.needs_input_grad is left for torch.compile to get wrong (see _cast).
        global_sums = torch.stack([sum_dy, sum_dy_xhat])
        if ctx.sync:
            dist.all_reduce(global_sums, group=ctx.group)
        count = total.clamp(min=1)
        mean_dy = global_sums[0] / count
        mean_dy_xhat = global_sums[1] / count
        grad_x = _per_channel(_cast(weight, dtype) * invstd, x) * (
            dy - _per_channel(mean_dy, x) - xhat * _per_channel(mean_dy_xhat, x)
        )
        grad_weight = _cast(sum_dy_xhat, weight.dtype)
        grad_bias = _cast(sum_dy, weight.dtype)
        return _cast(grad_x, x.dtype), grad_weight, grad_bias, None, None, None, None, None


class ScratchSyncBatchNorm(nn.Module):
    """Batch norm whose training statistics span every rank of a process group.

    ``dims`` is 2 for (N, C) input and 4 for (N, C, H, W). ``process_group`` defaults to the
    default group; each group of ranks normalises over its own members' samples. Running statistics
    follow ``nn.SyncBatchNorm``: ``running = (1 - momentum) * running + momentum * batch`` with the
    biased global mean and the unbiased (N / (N - 1)) global variance, updated in place.
    """

    def __init__(
        self,
        num_features: int,
        dims: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        process_group: dist.ProcessGroup | None = None,
    ) -> None:
        super().__init__()
        if dims not in (2, 4):
            raise ValueError(f"dims must be 2 for (N, C) or 4 for (N, C, H, W) input, got {dims}")
        self.num_features = num_features
        self.dims = dims
        self.eps = eps
        self.momentum = momentum
        self.process_group = process_group
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def extra_repr(self) -> str:
        return f"{self.num_features}, dims={self.dims}, eps={self.eps}, momentum={self.momentum}"

    def _syncs(self) -> bool:
        """True when training statistics must be gathered from other ranks."""
        return (
            dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size(self.process_group) > 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.dims or x.size(1) != self.num_features:
            raise ValueError(
                f"expected a {self.dims}-d input with {self.num_features} channels in dimension 1, "
                f"got shape {tuple(x.shape)}"
            )
        if not self.training:
            return self._normalise_with_running_stats(x)

        sync = self._syncs()
        with torch.no_grad():
            total, mean, invstd, var_unbiased = _batch_stats(x, self.eps, self.process_group, sync)
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(_cast(mean, self.running_mean.dtype), alpha=m)
            self.running_var.mul_(1 - m).add_(_cast(var_unbiased, self.running_var.dtype), alpha=m)
        return _ScratchSyncBatchNormFn.apply(
            x, self.weight, self.bias, mean, invstd, total, self.process_group, sync
        )

    def _normalise_with_running_stats(self, x: torch.Tensor) -> torch.Tensor:
        """Eval mode: a per-channel affine map from the running statistics; no communication."""
        dtype = _compute_dtype(x)
        scale = _cast(self.weight, dtype) * torch.rsqrt(_cast(self.running_var, dtype) + self.eps)
        centred = _cast(x, dtype) - _per_channel(_cast(self.running_mean, dtype), x)
        y = centred * _per_channel(scale, x) + _per_channel(_cast(self.bias, dtype), x)
        return _cast(y, x.dtype)
