"""scratch-sync against nn.SyncBatchNorm on CUDA tensors: two gloo ranks sharing one GPU.

nn.SyncBatchNorm only synchronises CUDA tensors, so this comparison needs a GPU; on CPU the
scratch-sync numerics are checked against a float64 reference instead (test_scratch_sync.py).
"""
from __future__ import annotations

import pytest
import torch

from bench.bn.scratch_sync import ScratchSyncBatchNorm
from tests.dist_helpers import run_workers

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="nn.SyncBatchNorm needs CUDA tensors")
C, N_PER_RANK, STEPS = 8, 6, 3


def _one_rank(rank: int, world_size: int, variant: str) -> dict:
    torch.manual_seed(0)
    device = torch.device("cuda", 0)
    xs = [torch.randn(world_size * N_PER_RANK, C, 5, 5) * 2 + 3 for _ in range(STEPS)]
    dys = [torch.randn_like(x) for x in xs]
    bn = (torch.nn.SyncBatchNorm(C) if variant == "sync" else ScratchSyncBatchNorm(C, 4)).to(device)
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 1.5, C))
        bn.bias.copy_(torch.linspace(-1, 1, C))
    out = {}
    for step, (x, dy) in enumerate(zip(xs, dys)):
        mine = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
        xi = x[mine].to(device).requires_grad_(True)
        bn.zero_grad()
        y = bn(xi)
        y.backward(dy[mine].to(device))
        out[step] = {"y": y.detach().cpu(), "dx": xi.grad.cpu(), "dw": bn.weight.grad.cpu(),
                     "db": bn.bias.grad.cpu(), "mean": bn.running_mean.cpu().clone(),
                     "var": bn.running_var.cpu().clone()}
    return out


def test_scratch_sync_equals_nn_syncbatchnorm_on_cuda():
    sync = run_workers(_one_rank, 2, "sync", timeout_s=120)
    scratch = run_workers(_one_rank, 2, "scratch-sync", timeout_s=120)
    for rank in range(2):
        for step in range(STEPS):
            for key in ("y", "dx", "dw", "db", "mean", "var"):
                torch.testing.assert_close(scratch[rank][step][key], sync[rank][step][key],
                                           rtol=1e-4, atol=1e-5, msg=f"rank {rank} step {step} {key}")
