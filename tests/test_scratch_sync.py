"""ScratchSyncBatchNorm (scratch-sync) against batch norm over the global batch.

Expected values come from ``reference_batch_norm`` below: batch norm written out in float64 on the
whole global batch and differentiated by autograd; nothing from bench.bn.scratch_sync computes them.

Which side of DDP's averaging: without DDP each rank's loss is sum_i g_i * y_i over its own
samples, and its weight/bias gradients are *local* (not yet averaged). Their sum over ranks is the
gradient of the global loss sum_i g_i * y_i, and that sum is what these tests compare. The DDP test
(test_scratch_sync_module.py) checks the other side: averaged gradients of a mean loss give the
single-process training steps.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.distributed as dist

from bench.bn.scratch_sync import ScratchSyncBatchNorm, _combine_stats
from tests.dist_helpers import CountCollectives, run_workers
from tests.syncnorm_ref import EPS, MOMENTUM, Case, assert_matches_reference, reference_batch_norm, run_steps


def make_module(case: Case, process_group=None) -> ScratchSyncBatchNorm:
    module = ScratchSyncBatchNorm(case.channels, case.dims, EPS, MOMENTUM, process_group)
    weight, bias = case.affine()
    with torch.no_grad():
        module.weight.copy_(weight)
        module.bias.copy_(bias)
    return module


def train_steps(rank: int, world_size: int, case: Case) -> list[dict]:
    """Worker: one ScratchSyncBatchNorm per rank, trained on this rank's slices."""
    groups = [dist.new_group(members) for members in case.groups()]  # every rank creates all
    my_group = next(g for g, members in zip(groups, case.groups()) if rank in members)
    with CountCollectives() as counter:
        return run_steps(make_module(case, my_group), case, case.rows(rank), counter)


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
