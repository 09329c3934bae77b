"""Local BN on K ranks, emulated in one process: `--bn-emulate-ranks K`.

With local statistics (variants scratch and nn) a K-rank data-parallel run normalises each rank's
slice of the global batch with that slice's own mean and variance. `EmulatedRanksNorm` does the
same on one device: in training mode it splits the batch along dim 0 into K equal slices, in order,
and runs the wrapped BN layer on each slice separately. Slice r holds exactly the examples rank r
would get from bench.run's sharding (rank r takes examples r·P … (r+1)·P − 1 of each global
batch), so "per-GPU batch 8 on 32 GPUs" can be studied for accuracy on one GPU.

Running statistics follow rank 0. A real run keeps K diverging copies of the running statistics,
one per rank; DDP (broadcast_buffers=True) overwrites every rank's copy with rank 0's at the start
of each forward, and the training loop broadcasts rank 0's before evaluating, so the statistics that
matter are rank 0's: updated from slice 0 only, once per step. The other slices are normalised
with their own statistics and update throw-away copies of the buffers.

Gradients need nothing special: each slice's loss share is already in the one-process mean over
the global batch, which is what DDP's gradient averaging of per-rank means computes.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from bench.errors import UsageError
from bench.rundir import SYNCHRONISING

LOCAL_VARIANTS = ("scratch", "nn")


class EmulatedRanksNorm(nn.Module):
    """Run a local BN layer separately on each of `ranks` equal slices of the batch (training mode).

    It takes over `norm`'s parameters and buffers as its own, under the same names (weight, bias,
    running_mean, running_var, each (C,); nn's num_batches_tracked), so state_dicts, DDP's buffer
    broadcast and the run's bn_params.csv see an ordinary BN layer. `norm` itself is kept only
    for its arithmetic, not as a submodule: each slice runs `norm`'s forward through
    torch.func.functional_call on this module's tensors, so scratch and nn keep their own maths.
    In eval mode the whole batch goes through at once: the running statistics are shared, so
    slicing would change nothing.

    >>> bn = EmulatedRanksNorm(nn.BatchNorm1d(3), ranks=2)
    >>> y = bn(torch.randn(8, 3))   # rows 0-3 and 4-7 normalised separately
    """

    def __init__(self, norm: nn.Module, ranks: int):
        super().__init__()
        if ranks < 1:
            raise ValueError(f"ranks must be at least 1, got {ranks}")
        self.ranks = ranks
        for name, p in norm.named_parameters(recurse=False):
            self.register_parameter(name, p)
        for name, b in norm.named_buffers(recurse=False):
            self.register_buffer(name, b)
        object.__setattr__(self, "_layer", norm)  # not registered: its tensors are ours now

    def _run(self, x: torch.Tensor, buffers: dict[str, torch.Tensor]) -> torch.Tensor:
        self._layer.train(self.training)
        return functional_call(self._layer, {**dict(self.named_parameters(recurse=False)), **buffers}, (x,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept = dict(self.named_buffers(recurse=False))
        if not self.training or self.ranks == 1:
            return self._run(x, kept)
        if x.shape[0] % self.ranks:
            raise ValueError(f"batch of {x.shape[0]} does not split into {self.ranks} equal slices")
        slices = x.chunk(self.ranks, dim=0)
        out = [self._run(slices[0], kept)]  # rank 0 updates the running statistics that are kept
        # The other ranks update throw-away copies, a fresh one each: nn.BatchNorm saves its buffers
        # for backward, so a buffer changed in place after use would break the backward pass.
        for s in slices[1:]:
            out.append(self._run(s, {k: b.detach().clone() for k, b in kept.items()}))
        return torch.cat(out, dim=0)

    def extra_repr(self) -> str:
        return f"{self._layer!r}, ranks={self.ranks}"


def wrap(norm: nn.Module, ranks: int) -> nn.Module:
    """`norm` itself for ranks == 1, else `EmulatedRanksNorm(norm, ranks)`."""
    return norm if ranks == 1 else EmulatedRanksNorm(norm, ranks)


def check(variant: str, per_rank_batch: int, ranks: int, mode: str = "eager") -> None:
    """Raise UsageError unless `ranks` emulated ranks make sense for this variant, batch and mode."""
    if ranks == 1:
        return
    if ranks < 1:
        raise UsageError(f"--bn-emulate-ranks {ranks} must be a positive integer")
    if mode != "eager":  # emulation is for accuracy; compiled and graphed steps are for speed
        raise UsageError(f"--bn-emulate-ranks runs in --mode eager only (got --mode {mode}): it studies "
                         f"accuracy, and its slices run one after another, so its timings mean nothing")
    if variant not in LOCAL_VARIANTS:
        what = "shares statistics across ranks" if variant in SYNCHRONISING else "is not emulated"
        raise UsageError(f"--bn-emulate-ranks emulates local BN ({', '.join(LOCAL_VARIANTS)}); "
                         f"--variant {variant} {what}: drop the flag or pick one of those")
    if per_rank_batch % ranks:
        raise UsageError(f"--bn-emulate-ranks {ranks} does not divide the per-rank batch {per_rank_batch}: "
                         f"pick a divisor of it or another --batch-size")
    if per_rank_batch // ranks < 2:
        raise UsageError(f"--bn-emulate-ranks {ranks} leaves slices of {per_rank_batch // ranks} example(s); "
                         f"BN needs more than one value per channel: use fewer ranks or a larger --batch-size")
