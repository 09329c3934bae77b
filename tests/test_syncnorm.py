"""ScratchSyncBatchNorm (scratch-sync) against batch norm over the global batch.

Expected values come from ``reference_batch_norm`` below: batch norm written out in float64 on the
whole global batch and differentiated by autograd; nothing from bench.syncnorm computes them.

Which side of DDP's averaging: without DDP each rank's loss is sum_i g_i * y_i over its own
samples, and its weight/bias gradients are *local* (not yet averaged). Their sum over ranks is the
gradient of the global loss sum_i g_i * y_i, and that sum is what these tests compare. The DDP test
(test_syncnorm_module.py) checks the other side: averaged gradients of a mean loss give the
single-process training steps.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.distributed as dist
from torch import nn

from bench.syncnorm import ScratchSyncBatchNorm, _combine_stats
from tests.dist_helpers import CountCollectives, run_workers

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


def make_module(case: Case, process_group=None) -> ScratchSyncBatchNorm:
    module = ScratchSyncBatchNorm(case.channels, case.dims, EPS, MOMENTUM, process_group)
    weight, bias = case.affine()
    with torch.no_grad():
        module.weight.copy_(weight)
        module.bias.copy_(bias)
    return module


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


def train_steps(rank: int, world_size: int, case: Case) -> list[dict]:
    """Worker: one ScratchSyncBatchNorm per rank, trained on this rank's slices."""
    groups = [dist.new_group(members) for members in case.groups()]  # every rank creates all
    my_group = next(g for g, members in zip(groups, case.groups()) if rank in members)
    with CountCollectives() as counter:
        return run_steps(make_module(case, my_group), case, case.rows(rank), counter)


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


@pytest.mark.parametrize(
    ("world_size", "dims", "channels_last"),
    [(2, 2, False), (2, 4, False), (3, 2, False), (3, 4, False), (2, 4, True), (3, 4, True)],
)
def test_even_slices_match_global_batch_norm(world_size, dims, channels_last):
    case = Case(dims, (5,) * world_size, channels_last=channels_last, seed=world_size * 10 + dims)
    results = run_workers(train_steps, world_size, case)
    assert_matches_reference(case, results)
    if channels_last:
        assert all(step["channels_last"] for rank in results for step in rank)


@pytest.mark.parametrize("dims", [2, 4])
@pytest.mark.parametrize(
    "per_rank_batch",
    [(2, 3, 4), (1, 1), (1, 1, 1), (3, 0, 4), (0, 2)],
    ids=["rank-r-has-r+2", "one-each-w2", "one-each-w3", "middle-rank-empty", "rank0-empty"],
)
def test_uneven_and_tiny_slices_match_global_batch_norm(per_rank_batch, dims):
    case = Case(dims, per_rank_batch, steps=2, seed=sum(per_rank_batch) + dims)
    results = run_workers(train_steps, len(per_rank_batch), case)
    assert_matches_reference(case, results)
    for rank, count in enumerate(per_rank_batch):
        if count == 0:
            assert results[rank][0]["y"].shape[0] == 0
            assert torch.equal(results[rank][0]["dweight"], torch.zeros(case.channels))


@pytest.mark.parametrize("dims", [2, 4])
def test_large_offset_matches_float64(dims):
    case = Case(dims, (6, 6), offset=1e3, seed=7)
    x, _ = case.global_batch(0)
    reduce_dims = [0, *range(2, dims)]
    naive_var = (x * x).mean(reduce_dims) - x.mean(reduce_dims) ** 2  # float32, for contrast
    exact_var = x.double().var(reduce_dims, correction=0)
    assert (naive_var.double() - exact_var).abs().max() > 1e-3, "inputs too easy to tell"
    assert_matches_reference(case, run_workers(train_steps, 2, case), atol=1e-3)


@pytest.mark.parametrize("world_size", [2, 3])
def test_one_collective_forward_one_backward(world_size):
    case = Case(4, (3,) * world_size, steps=2)
    for rank in run_workers(train_steps, world_size, case):
        for step in rank:
            assert sum(step["forward_calls"].values()) == 1, step["forward_calls"]
            assert sum(step["backward_calls"].values()) == 1, step["backward_calls"]
            assert step["backward_calls"] == {"all_reduce": 1}


def test_groups_of_two_each_match_their_own_batch():
    case = Case(4, (3, 4, 2, 5), ranks_per_group=2, steps=2, seed=3)
    assert_matches_reference(case, run_workers(train_steps, 4, case))


def eval_on_rank_zero(rank: int, world_size: int, case: Case) -> dict | None:
    """Worker: one synced training step, then rank 0 alone evaluates; rank 1 leaves."""
    records = train_steps(rank, world_size, dataclasses.replace(case, steps=1))
    if rank != 0:
        return None
    module = make_module(case)
    with torch.no_grad():
        module.running_mean.copy_(records[0]["running_mean"])
        module.running_var.copy_(records[0]["running_var"])
    module.eval()
    x, _ = case.global_batch(1)
    with CountCollectives() as counter:
        y = module(x)
    return {"y": y, "calls": counter.take(), "running_mean": module.running_mean.clone()}


def test_eval_uses_running_stats_without_communicating():
    case = Case(4, (4, 4), seed=11)
    result = run_workers(eval_on_rank_zero, 2, case, timeout_s=30)[0]
    assert result["calls"] == {}
    x0, _ = case.global_batch(0)
    ref = reference_batch_norm(x0, *case.affine(), torch.zeros_like(x0))
    running_mean = MOMENTUM * ref["mean"]
    running_var = (1 - MOMENTUM) + MOMENTUM * ref["var_unbiased"]
    torch.testing.assert_close(result["running_mean"].double(), running_mean)  # unchanged by eval
    x1, _ = case.global_batch(1)
    weight, bias = (t.double().view(1, -1, 1, 1) for t in case.affine())
    expected = (x1.double() - running_mean.view(1, -1, 1, 1)) / torch.sqrt(
        running_var.view(1, -1, 1, 1) + EPS
    ) * weight + bias
    torch.testing.assert_close(result["y"].double(), expected, atol=1e-5, rtol=1e-5)


def test_world_size_one_is_local_batch_norm_without_collectives():
    case = Case(4, (6,), steps=2, seed=5)
    records = run_workers(train_steps, 1, case)
    assert_matches_reference(case, records)
    assert all(step["forward_calls"] == step["backward_calls"] == {} for step in records[0])


@pytest.mark.parametrize("dims", [2, 4])
def test_without_process_group_is_local_batch_norm(dims):
    assert not dist.is_initialized()
    case = Case(dims, (7,), steps=2, seed=13)
    with CountCollectives() as counter:
        records = run_steps(make_module(case), case, slice(None), counter)
    assert_matches_reference(case, [records])
    assert all(step["forward_calls"] == step["backward_calls"] == {} for step in records)


def test_autocast_bf16_keeps_statistics_in_float32():
    case = Case(4, (8,), offset=8.0, seed=17)
    x, grad_y = case.global_batch(0)
    x_bf16 = x.bfloat16().requires_grad_()
    module = ScratchSyncBatchNorm(case.channels, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = module(x_bf16)
    (y * grad_y.bfloat16()).sum().backward()
    assert y.dtype == x_bf16.grad.dtype == torch.bfloat16
    assert module.running_mean.dtype == module.weight.grad.dtype == torch.float32
    ref = reference_batch_norm(x_bf16.detach(), torch.ones(3), torch.zeros(3), grad_y.bfloat16())
    # bf16 statistics would be off by ~0.03 at an offset of 8; float32 ones by ~1e-6
    expected_mean = MOMENTUM * ref["mean"]
    torch.testing.assert_close(module.running_mean.double(), expected_mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(y.double(), ref["y"], atol=0.05, rtol=0.01)
    torch.testing.assert_close(x_bf16.grad.double(), ref["dx"], atol=0.05, rtol=0.01)


def test_chan_combination_equals_variance_of_concatenation():
    values = [torch.tensor([1.0, 3.0]), torch.tensor([5.0]), torch.tensor([])]
    per_rank = torch.tensor(
        [[[len(v)], [v.mean() if len(v) else 0.0], [v.var(correction=0) if len(v) else 0.0]]
         for v in values]
    )  # fmt: skip
    total, mean, var = _combine_stats(per_rank)
    everything = torch.cat(values)
    assert total.item() == 3
    torch.testing.assert_close(mean, everything.mean().view(1))
    torch.testing.assert_close(var, everything.var(correction=0).view(1))
