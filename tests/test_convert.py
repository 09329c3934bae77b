"""bench.bn.convert: every norm layer of a network becomes any variant at its module path, settings
and tensors kept, exactly; and the gn variant is nn.GroupNorm's arithmetic."""
from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from bench.bn import make_norm, unavailable_reason
from bench.bn.convert import convert_variant, is_norm_layer
from bench.bn.groupnorm import GroupNormLayer, gn_groups
from bench.rundir import BATCH_FREE, VARIANTS

STATS = ("running_mean", "running_var")


def _trained_like(net: nn.Module) -> nn.Module:
    """``net`` with every BN layer's tensors and settings away from their defaults."""
    gen = torch.Generator().manual_seed(3)
    for i, m in enumerate(m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
        with torch.no_grad():
            for t in (m.weight, m.bias, m.running_mean):
                t.copy_(torch.randn(t.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
        m.eps, m.momentum = 1e-3 + i * 1e-6, 0.01 + i * 1e-4
    return net


def _bn_paths(net: nn.Module) -> list[str]:
    return [p for p, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "nn"])
def test_round_trip_through_every_variant_is_exact(variant):
    if unavailable_reason(variant, "cpu"):
        pytest.skip(unavailable_reason(variant, "cpu"))
    original = _trained_like(torchvision.models.mobilenet_v3_small(num_classes=10))
    there = convert_variant(copy.deepcopy(original), variant)
    kinds = {type(m) for m in there.modules() if is_norm_layer(m)}
    assert kinds == {type(make_norm(variant, 4, 4))}  # every layer converted, none left behind
    assert [p for p, m in there.named_modules() if is_norm_layer(m)] == _bn_paths(original)
    back = convert_variant(there, "nn")
    assert _bn_paths(back) == _bn_paths(original)
    before, after = dict(original.named_modules()), dict(back.named_modules())
    for path in _bn_paths(original):
        a, b = before[path], after[path]
        assert type(a) is type(b) and a.num_features == b.num_features and a.eps == b.eps
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
        if variant not in BATCH_FREE:  # GroupNorm has no running statistics and no momentum to keep
            assert a.momentum == b.momentum
            for name in STATS:
                assert torch.equal(getattr(a, name), getattr(b, name))
    others = {k: v for k, v in original.state_dict().items() if not any(k.startswith(p + ".") for p in _bn_paths(original))}
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in others.items())


def test_a_layer_the_target_cannot_represent_is_refused():
    with pytest.raises(ValueError, match="affine=False"):
        convert_variant(nn.Sequential(nn.BatchNorm2d(4, affine=False)), "scratch")


def test_groups_are_32_or_the_largest_divisor_below():
    for c in range(1, 300):
        want = max(g for g in range(1, 33) if c % g == 0)
        assert gn_groups(c) == want


@pytest.mark.parametrize("shape", [(6, 64, 5, 5), (6, 120), (4, 84)])
def test_gn_matches_group_norm_by_hand_in_float64(shape):
    torch.manual_seed(0)
    layer = GroupNormLayer(shape[1], len(shape)).double()
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    x = 3 + 2 * torch.randn(shape, dtype=torch.float64)
    g = gn_groups(shape[1])
    grouped = x.reshape(shape[0], g, -1)
    mean = grouped.mean(-1, keepdim=True)
    var = grouped.var(-1, unbiased=False, keepdim=True)
    want = ((grouped - mean) / torch.sqrt(var + layer.eps)).reshape(shape)
    extra = (1,) * (len(shape) - 2)
    want = want * layer.weight.view(1, -1, *extra) + layer.bias.view(1, -1, *extra)
    torch.testing.assert_close(layer(x), want, rtol=1e-12, atol=1e-12)
    layer.eval()
    torch.testing.assert_close(layer(x), want, rtol=1e-12, atol=1e-12)  # train and eval alike
    ref = nn.GroupNorm(g, shape[1]).double()
    ref.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x), ref(x), rtol=0, atol=0)
