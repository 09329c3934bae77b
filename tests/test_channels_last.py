"""--channels-last: every variant that runs in one CPU process gives the numbers it gives on contiguous
inputs, to float32 rounding, and keeps the channels_last memory format through forward and backward;
a training step of a network made channels_last agrees with the contiguous one."""
from __future__ import annotations

import pytest
import torch

from bench.bn import emulate, make_norm
from bench.rundir import BATCH_FREE, VARIANTS
from bench.run.config import TrainConfig
from bench.run.datasets.spec import resolve_data
from bench.run.job import build_net
from bench.run.datasets.feeds import load

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")
CL = torch.channels_last
# float32 sums in another order: the two layouts reduce over (N, H, W) in different orders
TOL = dict(rtol=1e-5, atol=1e-6)


def _fused_unavailable(variant: str) -> str | None:
    if not variant.startswith("fused"):
        return None
    from bench.bn.fused import unavailable_reason
    return unavailable_reason("cpu")


def _forward_backward(layer: torch.nn.Module, x: torch.Tensor, dy: torch.Tensor):
    x = x.detach().requires_grad_()
    y = layer(x)
    y.backward(dy)
    return y, x.grad, layer.weight.grad, layer.bias.grad


@pytest.mark.parametrize("emulated", [1, 2])
@pytest.mark.parametrize("variant", VARIANTS)
def test_channels_last_equals_contiguous_for_every_local_variant(variant, emulated):
    if (why := _fused_unavailable(variant)) is not None:
        pytest.skip(why)
    if emulated > 1 and variant not in emulate.LOCAL_VARIANTS:
        pytest.skip("emulated ranks wrap the local variants only")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 6, 5, 7, generator=gen) * 3 + 1
    dy = torch.randn(8, 6, 5, 7, generator=gen)
    layers = []
    for fmt in (torch.contiguous_format, CL):
        torch.manual_seed(0)
        layer = emulate.wrap(make_norm(variant, 6, 4), emulated).train()
        layers.append(layer)
        out = _forward_backward(layer, x.contiguous(memory_format=fmt), dy.contiguous(memory_format=fmt))
        if fmt == CL:
            y_cl, dx_cl, *params_cl = out
        else:
            y, dx, *params = out
    assert y_cl.is_contiguous(memory_format=CL) and dx_cl.is_contiguous(memory_format=CL)
    torch.testing.assert_close(y_cl, y, **TOL)
    torch.testing.assert_close(dx_cl, dx, **TOL)
    for a, b in zip(params_cl, params):
        torch.testing.assert_close(a, b, **TOL)
    for name in ("running_mean", "running_var") if variant not in BATCH_FREE else ():
        torch.testing.assert_close(getattr(layers[1], name), getattr(layers[0], name), **TOL)


@pytest.mark.parametrize("variant", ["nn", "scratch"])
def test_a_channels_last_network_trains_as_the_contiguous_one(variant, tmp_path):
    grads, losses = [], []
    for channels_last in (False, True):
        cfg = TrainConfig(variant=variant, model="resnet18", data="synthetic", image_size=32, synthetic_size=8,
                          batch_size=4, channels_last=channels_last, out=str(tmp_path))
        spec = resolve_data(cfg)
        net = build_net(cfg, torch.device("cpu"), data=spec)
        x, y = load(cfg, spec, torch.device("cpu")).example(4)
        assert x.is_contiguous(memory_format=CL) == channels_last  # the source hands channels_last batches
        assert net.net.conv1.weight.is_contiguous(memory_format=CL) == channels_last
        # float64: twenty BN layers over 4 samples (1×1 maps at the last stage) amplify float32 rounding
        # past any useful tolerance; in float64 the two layouts must agree to the last digits
        net, x = net.double(), x.double()
        assert x.is_contiguous(memory_format=CL) == channels_last
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad for p in net.parameters()])
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_bench_train_compiles_a_channels_last_network(data_dir, tmp_path):
    """`--channels-last --mode compile` from the command line: the run completes, says it ran
    channels_last, and its losses are the eager channels_last run's (same seed, same batches)."""
    import pandas as pd

    from bench import rundir
    from tests.procs import python_m

    flags = ("--variant", "scratch", "--channels-last", "--epochs", "1", "--limit-train", "512", "--batch-size",
             "64", "--limit-test", "200", "--no-profile", "--data-dir", data_dir, "--out", tmp_path)
    losses = {}
    for mode in ("eager", "compile"):
        p = python_m("bench.train", *flags, "--mode", mode, "--run-name", mode)
        assert p.returncode == 0, p.stderr[-3000:]
        config = rundir.read_json(tmp_path / mode / rundir.CONFIG)
        assert (config["channels_last"], config["mode"]) == (True, mode)
        losses[mode] = pd.read_csv(tmp_path / mode / rundir.METRICS)["train_loss"]
    pd.testing.assert_series_equal(losses["compile"], losses["eager"], rtol=1e-4)
