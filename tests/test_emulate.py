"""--bn-emulate-ranks: slices normalised apart, rank-0 running statistics, equal to a real K-rank run."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from bench.bn import emulate
from bench.bn.emulate import EmulatedRanksNorm
from bench.errors import UsageError
from bench.nets import build_model
from bench.bn import ScratchBatchNorm, make_norm
from bench.rundir import default_run_name
from bench.run.runner import main as train_main
from tests.procs import REPO, env
from tests.emulate_worker import LR, STEPS, VARIANTS, fixed_data

TIMEOUT_S = 180  # a hung rank fails the test instead of the session


def _torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]


# ------------------------------------------------------------------ the layer against hand arithmetic

@pytest.mark.parametrize("variant", ["nn", "scratch"])
@pytest.mark.parametrize("dims", [2, 4])
def test_each_slice_normalised_with_its_own_statistics(variant, dims):
    torch.manual_seed(0)
    shape = (12, 5) if dims == 2 else (12, 5, 3, 3)
    x = torch.randn(shape) * torch.linspace(0.5, 3, 12).view(-1, *([1] * (dims - 1))) + 2.0
    bn = EmulatedRanksNorm(make_norm(variant, 5, dims), ranks=3)
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 1.5, 5))
        bn.bias.copy_(torch.linspace(-1, 1, 5))
    y = bn(x)

    reduce = (0,) if dims == 2 else (0, 2, 3)
    view = (1, -1) if dims == 2 else (1, -1, 1, 1)
    gamma, beta = torch.linspace(0.5, 1.5, 5).view(view), torch.linspace(-1, 1, 5).view(view)
    for r in range(3):
        s = x[4 * r: 4 * (r + 1)].double()
        mean = s.mean(reduce, keepdim=True)
        var = s.var(reduce, unbiased=False, keepdim=True)
        expected = gamma * (s - mean) / torch.sqrt(var + 1e-5) + beta
        torch.testing.assert_close(y[4 * r: 4 * (r + 1)].double(), expected, atol=1e-5, rtol=1e-5)

    # running statistics: one momentum-0.1 update from slice 0 only (rank 0's, as DDP broadcasts)
    s0 = x[:4].double()
    n0 = s0.numel() // 5
    var0 = s0.var(reduce, unbiased=False)
    if variant == "nn":  # nn.BatchNorm keeps the unbiased variance, the textbook the biased one
        var0 = var0 * n0 / (n0 - 1)
    torch.testing.assert_close(bn.running_mean.double(), 0.1 * s0.mean(reduce), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(bn.running_var.double(), 0.9 + 0.1 * var0, atol=1e-6, rtol=1e-5)
    if variant == "nn":
        assert int(bn.num_batches_tracked) == 1


def test_gradients_match_slicewise_reference():
    torch.manual_seed(1)
    x = torch.randn(8, 4, requires_grad=True)
    bn = EmulatedRanksNorm(nn.BatchNorm1d(4), ranks=2)
    (bn(x) ** 3).sum().backward()
    weight = torch.ones(4, requires_grad=True)
    bias = torch.zeros(4, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    ref = [nn.functional.batch_norm(x2[i:i + 4], None, None, weight, bias, training=True) for i in (0, 4)]
    (torch.cat(ref) ** 3).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(bn.weight.grad, weight.grad)
    torch.testing.assert_close(bn.bias.grad, bias.grad)


def test_eval_uses_running_statistics_on_the_whole_batch():
    bn = EmulatedRanksNorm(ScratchBatchNorm(3, 2), ranks=4)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    bn.eval()
    x = torch.randn(6, 3)  # 6 does not split into 4: eval must not try
    expected = (x - torch.tensor([1.0, 2.0, 3.0])) / torch.sqrt(torch.tensor([4.0, 1.0, 0.25]) + 1e-5)
    torch.testing.assert_close(bn(x), expected)


def test_one_rank_is_the_plain_layer_and_shapes_are_per_channel():
    plain = nn.BatchNorm2d(6)
    assert emulate.wrap(plain, 1) is plain
    wrapped = emulate.wrap(nn.BatchNorm2d(6), 4)
    assert [tuple(t.shape) for t in (wrapped.weight, wrapped.bias, wrapped.running_mean,
                                     wrapped.running_var)] == [(6,)] * 4


@pytest.mark.parametrize("variant,per_rank,ranks,fragment", [
    ("sync", 256, 2, "local BN"),
    ("nn", 256, 2, "--mode eager only"),
    ("scratch-sync", 256, 2, "local BN"),
    ("nn", 256, 3, "does not divide"),
    ("scratch", 8, 8, "slices of 1"),
])
def test_impossible_emulation_is_a_usage_error(variant, per_rank, ranks, fragment):
    with pytest.raises(UsageError, match=fragment):
        emulate.check(variant, per_rank, ranks, "compile" if "mode" in fragment else "eager")
    emulate.check("nn", 256, 1)  # one rank is always fine
    emulate.check("scratch", 256, 32)


def test_run_name_carries_emulated_ranks():
    assert default_run_name("lenet", "nn", 1, 256, 3, bn_emulate_ranks=32) == "lenet-nn-ws1-b256-e32-s3"
    assert default_run_name("lenet", "nn", 1, 256, 3, bn_emulate_ranks=1) == "lenet-nn-ws1-b256-s3"


def test_bad_emulation_exits_2_without_a_run_dir(tmp_path, capsys):
    code = train_main(["--variant", "nn", "--batch-size", "256", "--bn-emulate-ranks", "3",
                       "--out", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not divide the per-rank batch 256" in err[0]
    assert not any((tmp_path / "runs").glob("*/config.json"))


# ------------------------------------------------------------------ against a real 2-rank gloo run

@pytest.fixture(scope="module")
def real_two_rank(tmp_path_factory) -> dict:
    """Both local variants trained two steps on 2 real gloo ranks (one torchrun launch)."""
    out = tmp_path_factory.mktemp("real") / "real.pt"
    proc = subprocess.run(_torchrun(2, "-m", "tests.emulate_worker", str(out)), cwd=REPO, env=env(OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_equals_real_two_rank_local_bn(variant, real_two_rank):
    real = real_two_rank[variant]
    x, y, test_x = fixed_data()
    torch.manual_seed(0)
    net = build_model("lenet", lambda c, d: emulate.wrap(make_norm(variant, c, d), 2))
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    for step in range(STEPS):
        logits = net(x)
        torch.testing.assert_close(logits.detach(), real["logits"][step], atol=1e-5, rtol=1e-5)
        # the loss over the whole batch = DDP's average of the two ranks' mean losses
        loss = nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    mine = net.state_dict()  # the same keys as the plain layers'
    assert mine.keys() == real["state"].keys()
    for k, v in real["state"].items():  # parameters after two steps, and rank 0's running statistics
        torch.testing.assert_close(mine[k], v, atol=1e-5, rtol=1e-4, msg=k)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(test_x), real["eval_logits"], atol=1e-5, rtol=1e-4)

    # The comparison can fail: one process with whole-batch statistics is measurably different.
    torch.manual_seed(0)
    whole = build_model("lenet", lambda c, d: make_norm(variant, c, d))
    assert (whole(x) - real["logits"][0]).abs().max() > 1e-3
