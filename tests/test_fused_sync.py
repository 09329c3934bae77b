"""FusedBatchNorm with sync=True (``fused-sync``) on gloo ranks against float64 batch norm over the
global batch, its kernels run by Triton's interpreter.

The ranks must import triton with ``TRITON_INTERPRET=1`` already set, and the fork server behind
tests.dist_helpers.run_workers imports it (through torch._dynamo) when it starts: in the pytest
process it may have started earlier, without the variable. So one child Python, started with the
variable (tests/interpreted.py), runs ``run_workers`` for every case here and hands back what each
rank recorded; the tests assert on that.

Expected values: ``assert_matches_reference`` (tests/syncnorm_ref.py) -- per group of ranks, y
and dx stacked over the group's ranks equal float64 batch norm over the group's samples, the local
dweight and dbias add up to its gradients, and every rank, an empty one included, ends each step
with the group's running statistics. Dropping the backward all-reduce would leave each rank's dx
with its local sums and fail the dx comparison; dropping the forward all-gather would normalise
with local statistics and fail y; the collective counts are asserted on their own as well.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from bench.bn.fused import FusedBatchNorm
from tests.dist_helpers import CountCollectives, run_workers
from tests.interpreted import run_interpreted
from tests.syncnorm_ref import EPS, MOMENTUM, Case, assert_matches_reference, reference_batch_norm, run_steps

CASES = {
    "w2-planes": Case(4, (3, 4), channels=3, spatial=5, steps=2, seed=21),
    "w2-2d-offset-1000": Case(2, (24, 13), channels=5, steps=1, offset=1e3, seed=22),
    # groups {0, 1} and {2, 3}; rank 1 holds no samples
    "w4-groups-of-2-empty-rank-channels-last": Case(
        4, (3, 0, 2, 4), channels=5, spatial=3, steps=1, channels_last=True,
        ranks_per_group=2, seed=23),
}  # fmt: skip
GATHERS = ("all_gather_single", "all_gather_into_tensor")  # whichever this torch calls
# bf16 under CPU autocast on 2 ranks, at an offset where bfloat16 statistics would be visibly off
AUTOCAST = Case(4, (3, 2), channels=3, spatial=5, steps=1, offset=8.0, seed=24)


def fused_train_steps(rank: int, world_size: int, case: Case) -> list[dict]:
    """Worker: one fused-sync layer per rank, in its group, trained on this rank's rows."""
    groups = [dist.new_group(members) for members in case.groups()]  # every rank creates all
    my_group = next(g for g, members in zip(groups, case.groups()) if rank in members)
    module = FusedBatchNorm(case.channels, case.dims, EPS, MOMENTUM, my_group, sync=True)
    weight, bias = case.affine()
    with torch.no_grad():
        module.weight.copy_(weight)
        module.bias.copy_(bias)
    with CountCollectives() as counter:
        return run_steps(module, case, case.rows(rank), counter)


def fused_autocast_step(rank: int, world_size: int, case: Case) -> dict:
    """Worker: one bfloat16 step of a fused-sync layer (default init) under CPU autocast."""
    x, grad_y = case.global_batch(0)
    rows = case.rows(rank)
    x_bf16 = x[rows].bfloat16().requires_grad_()
    module = FusedBatchNorm(case.channels, case.dims, EPS, MOMENTUM, sync=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = module(x_bf16)
    (y * grad_y[rows].bfloat16()).sum().backward()
    return {"y": y.detach(), "dx": x_bf16.grad, "dweight": module.weight.grad, "dbias": module.bias.grad,
            "running_mean": module.running_mean}


def interpreted_cases(cases: dict[str, Case]) -> dict[str, list]:
    """Runs in the child: every case on its ranks (per case, per rank, per step records), and the
    autocast case (per rank, one record)."""
    out = {name: run_workers(fused_train_steps, len(case.per_rank_batch), case, timeout_s=180)
           for name, case in cases.items()}
    out["autocast"] = run_workers(fused_autocast_step, len(AUTOCAST.per_rank_batch), AUTOCAST, timeout_s=180)
    return out


@pytest.fixture(scope="module")
def per_rank() -> dict[str, list[list[dict]]]:
    pytest.importorskip("triton", reason="the fused kernels need triton")
    return run_interpreted("tests.test_fused_sync:interpreted_cases", CASES, timeout_s=400)


@pytest.mark.parametrize("name", list(CASES))
def test_group_statistics_match_float64_over_the_group_batch(per_rank, name):
    case = CASES[name]
    assert_matches_reference(case, per_rank[name], atol=1e-3 if case.offset else 1e-5)
    for rank in per_rank[name]:
        assert all(step["channels_last"] == case.channels_last for step in rank)


@pytest.mark.parametrize("name", list(CASES))
def test_one_all_gather_forward_one_all_reduce_backward(per_rank, name):
    for rank in per_rank[name]:  # ranks without samples join both as well
        for step in rank:
            assert len(step["forward_calls"]) == 1, step["forward_calls"]
            ((gather, count),) = step["forward_calls"].items()
            assert gather in GATHERS and count == 1
            assert step["backward_calls"] == {"all_reduce": 1}


def test_empty_rank_gets_empty_output_and_zero_parameter_gradients(per_rank):
    case = CASES["w4-groups-of-2-empty-rank-channels-last"]
    empty = case.per_rank_batch.index(0)
    for step in per_rank["w4-groups-of-2-empty-rank-channels-last"][empty]:
        assert step["y"].shape == (0, case.channels, case.spatial, case.spatial)
        assert torch.equal(step["dweight"], torch.zeros(case.channels))
        assert torch.equal(step["dbias"], torch.zeros(case.channels))


def test_bf16_autocast_on_two_ranks_keeps_statistics_in_float32(per_rank):
    """fused-sync under bfloat16 autocast: outputs and input gradients in bfloat16 as nn.BatchNorm's,
    statistics, parameter gradients and running buffers in float32, over both ranks' samples."""
    ranks = per_rank["autocast"]
    x, grad_y = AUTOCAST.global_batch(0)
    c = AUTOCAST.channels
    ref = reference_batch_norm(x.bfloat16(), torch.ones(c), torch.zeros(c), grad_y.bfloat16())
    for r in ranks:
        assert r["y"].dtype == r["dx"].dtype == torch.bfloat16
        assert r["dweight"].dtype == r["running_mean"].dtype == torch.float32
        # every rank holds the global batch's mean; bfloat16 statistics would be off by ~0.03 at offset 8
        torch.testing.assert_close(r["running_mean"].double(), MOMENTUM * ref["mean"], atol=1e-6, rtol=0)
    torch.testing.assert_close(sum(r["dweight"] for r in ranks).double(), ref["dweight"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(sum(r["dbias"] for r in ranks).double(), ref["dbias"], atol=1e-4, rtol=1e-5)
    # y and dx are rounded to bfloat16 once, and normalised with the global statistics
    torch.testing.assert_close(torch.cat([r["y"] for r in ranks]).double(), ref["y"], atol=0.02, rtol=0.01)
    torch.testing.assert_close(torch.cat([r["dx"] for r in ranks]).double(), ref["dx"], atol=0.02, rtol=0.02)
