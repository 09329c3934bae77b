"""The BN variants: one interface, the textbook's arithmetic, and each running-variance convention."""
from __future__ import annotations

import pytest
import torch

from bench.bn import VARIANTS, ScratchBatchNorm, make_norm
from bench.rundir import BATCH_FREE

SHAPES = {2: (32, 5), 4: (16, 5, 6, 7)}


def reference_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance in float64, written independently of bench.bn."""
    x64 = x.double().transpose(0, 1).reshape(x.shape[1], -1)  # (C, everything else)
    mean = x64.sum(1) / x64.shape[1]
    var = ((x64 - mean[:, None]) ** 2).sum(1) / x64.shape[1]
    return mean, var


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dims", [2, 4])
def test_every_variant_exposes_the_same_state(variant, dims):
    m = make_norm(variant, 5, dims)
    params, buffers = dict(m.named_parameters()), dict(m.named_buffers())
    for name in ("weight", "bias"):
        assert isinstance(params[name], torch.nn.Parameter) and params[name].shape == (5,)
    if variant in BATCH_FREE:  # group norm keeps no batch statistics, so nothing to run or to save
        assert "running_mean" not in buffers and "running_var" not in buffers
        assert {"weight", "bias"} <= set(m.state_dict())
        return
    for name in ("running_mean", "running_var"):
        assert buffers[name].shape == (5,)
    assert {"weight", "bias", "running_mean", "running_var"} <= set(m.state_dict())


@pytest.mark.parametrize("dims", [2, 4])
def test_scratch_matches_nn_in_training_mode(dims):
    torch.manual_seed(dims)
    x = torch.randn(SHAPES[dims]) * 3 + 2
    outs, grads = [], []
    for variant in ("scratch", "nn"):
        m = make_norm(variant, 5, dims)
        with torch.no_grad():
            m.weight.copy_(torch.linspace(0.5, 1.5, 5))
            m.bias.copy_(torch.linspace(-1, 1, 5))
        xi = x.clone().requires_grad_(True)
        y = m(xi)
        (y * torch.arange(y.numel()).reshape(y.shape).sin()).sum().backward()
        outs.append(y.detach())
        grads.append((xi.grad, m.weight.grad, m.bias.grad))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dims", [2, 4])
def test_output_is_normalised_with_batch_statistics(dims):
    torch.manual_seed(0)
    x = torch.randn(SHAPES[dims]) * 2 - 1
    mean, var = reference_stats(x)
    shape = (1, -1) + (1,) * (dims - 2)
    expected = (x.double() - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + 1e-5)
    torch.testing.assert_close(make_norm("scratch", 5, dims)(x).double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dims", [2, 4])
def test_running_stats_follow_each_convention(dims):
    torch.manual_seed(1)
    batches = [torch.randn(SHAPES[dims]) * (i + 1) + i for i in range(3)]
    scratch, nn_bn = make_norm("scratch", 5, dims), make_norm("nn", 5, dims)
    mean_s, var_s = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    mean_n, var_n = mean_s.clone(), var_s.clone()
    for x in batches:
        scratch(x), nn_bn(x)
        mean, var = reference_stats(x)
        n = x.numel() // x.shape[1]
        mean_s, var_s = 0.9 * mean_s + 0.1 * mean, 0.9 * var_s + 0.1 * var  # textbook: biased
        mean_n, var_n = 0.9 * mean_n + 0.1 * mean, 0.9 * var_n + 0.1 * var * n / (n - 1)  # PyTorch: unbiased
    torch.testing.assert_close(scratch.running_mean.double(), mean_s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scratch.running_var.double(), var_s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(nn_bn.running_mean.double(), mean_n, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(nn_bn.running_var.double(), var_n, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(scratch.running_var, nn_bn.running_var)  # the conventions do differ


def test_scratch_updates_buffers_in_place_and_evaluates_with_them():
    m = ScratchBatchNorm(5, 4)
    ptr_mean, ptr_var = m.running_mean.data_ptr(), m.running_var.data_ptr()
    m(torch.randn(8, 5, 3, 3) + 4)
    assert m.running_mean.data_ptr() == ptr_mean and m.running_var.data_ptr() == ptr_var
    assert torch.all(m.running_mean > 0.3)  # 0.1 of a mean near 4
    m.eval()
    x = torch.randn(4, 5, 3, 3)
    expected = (x - m.running_mean.reshape(1, -1, 1, 1)) / torch.sqrt(m.running_var.reshape(1, -1, 1, 1) + 1e-5)
    before = m.running_mean.clone()
    torch.testing.assert_close(m(x), expected)
    assert torch.equal(m.running_mean, before)  # eval does not touch the statistics
    restored = ScratchBatchNorm(5, 4)
    restored.load_state_dict(m.state_dict())
    assert torch.equal(restored.running_var, m.running_var)


def test_unknown_variant_and_dims_are_refused():
    with pytest.raises(ValueError, match="unknown BN variant"):
        make_norm("batchnorm", 5, 2)
    with pytest.raises(ValueError, match="dims"):
        make_norm("nn", 5, 3)
