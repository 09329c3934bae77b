"""ScratchSyncBatchNorm as an nn.Module: its buffers, state_dict and argument checks, and DDP
training of a small network built with it against the same network with nn.BatchNorm in one process.

One layer's numerics against a float64 reference, and its collective counts, are in
test_scratch_sync.py; those compare local gradients summed over ranks. The DDP test here checks the
other side of DDP's averaging: averaged gradients of a mean loss give the single-process training
steps.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from bench.bn.fused import FusedBatchNorm
from bench.bn.scratch_sync import ScratchSyncBatchNorm
from tests.dist_helpers import run_workers


def test_buffers_update_in_place_and_state_dict_has_four_entries():
    module = ScratchSyncBatchNorm(3, 2)
    pointers = (module.running_mean.data_ptr(), module.running_var.data_ptr())
    module(torch.randn(5, 3) + 2)
    assert (module.running_mean.data_ptr(), module.running_var.data_ptr()) == pointers
    assert module.running_mean.abs().min() > 0.05  # moved towards the batch mean of about 2
    assert set(module.state_dict()) == {"weight", "bias", "running_mean", "running_var"}
    assert module.to(torch.float64).running_var.dtype == torch.float64


@pytest.mark.parametrize("layer", [ScratchSyncBatchNorm, FusedBatchNorm])  # the two cross-rank layers of ours
def test_rejects_bad_dims_and_mismatched_input(layer):
    with pytest.raises(ValueError, match="dims"):
        layer(3, 3)
    with pytest.raises(ValueError, match="channels"):
        layer(3, 4)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="channels"):
        layer(3, 2)(torch.randn(2, 4))


def make_net(bn2d, bn1d) -> nn.Sequential:
    """Tiny conv net with one 2-d and one 1-d batch norm; bn2d/bn1d build them from channels."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), bn2d(4), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 8, bias=False), bn1d(8), nn.ReLU(), nn.Linear(8, 3),
    )  # fmt: skip


def initial_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = make_net(nn.BatchNorm2d, nn.BatchNorm1d).double().state_dict()
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def ddp_batch(step: int, global_batch: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(step)
    images = torch.randn(global_batch, 1, 8, 8, generator=gen, dtype=torch.float64)
    return images, torch.randint(0, 3, (global_batch,), generator=gen)


def sgd_step(net: nn.Module, lr: float = 0.5) -> None:
    """Plain SGD by hand: torch.optim's first step imports torch._dynamo (seconds per worker)."""
    with torch.no_grad():
        for param in net.parameters():
            param -= lr * param.grad
            param.grad = None


def ddp_steps(rank: int, world_size: int, steps: int) -> dict[str, torch.Tensor]:
    """Worker: DDP training with scratch-sync; each rank's loss is the mean over its half."""
    net = make_net(lambda c: ScratchSyncBatchNorm(c, 4), lambda c: ScratchSyncBatchNorm(c, 2))
    net = net.double()
    net.load_state_dict(initial_state())
    model = DistributedDataParallel(net)
    for step in range(steps):
        images, labels = (t.chunk(world_size)[rank] for t in ddp_batch(step))
        F.cross_entropy(model(images), labels).backward()
        sgd_step(net)
    return net.state_dict()


def test_ddp_steps_match_single_process_batch_norm():
    steps = 3
    result = run_workers(ddp_steps, 2, steps)
    torch.manual_seed(0)
    reference = make_net(nn.BatchNorm2d, nn.BatchNorm1d).double()
    reference.load_state_dict(initial_state(), strict=False)
    for step in range(steps):
        images, labels = ddp_batch(step)
        F.cross_entropy(reference(images), labels).backward()
        sgd_step(reference)
    expected = {k: v for k, v in reference.state_dict().items() if k in result[0]}
    assert expected.keys() == result[0].keys()
    for key, value in initial_state().items():  # the steps moved every parameter
        if "running" not in key:
            assert not torch.allclose(expected[key], value), key
    for rank_state in result:
        for key, value in expected.items():
            torch.testing.assert_close(rank_state[key], value, rtol=1e-9, atol=1e-10, msg=key)
