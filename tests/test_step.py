"""Training-step modes and autocast on CPU: eager equals the textbook loop, compile trains like eager,
bf16 autocast keeps float32 state, and every impossible mode is refused before anything runs."""
from __future__ import annotations

import json
import time

import pytest
import torch
import torch.nn.functional as F

from bench.run.config import TrainConfig
from bench.errors import UsageError
from bench.nets import build_model
from bench.bn import make_norm
from bench.run.step import check_mode, make_step
from bench.run.runner import main, train


def _lenet(variant: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("lenet", lambda c, d: make_norm(variant, c, d))


def _batches(k: int, n: int = 16):
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)) for _ in range(k)]


@pytest.mark.parametrize("variant", ["scratch", "nn"])
def test_eager_step_equals_the_textbook_loop(variant):
    a, b = _lenet(variant), _lenet(variant)
    opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=0.5), torch.optim.SGD(b.parameters(), lr=0.5)
    batches = _batches(3)
    step = make_step(a, opt_a, "eager", "none", batches[0])
    for x, y in batches:
        loss_a, logits_a = step(x, y)
        logits_b = b(x)
        loss_b = F.cross_entropy(logits_b, y)
        opt_b.zero_grad()
        loss_b.backward()
        opt_b.step()
        assert torch.equal(logits_a, logits_b) and torch.equal(loss_a, loss_b)
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(ta, tb), name


@pytest.mark.parametrize("variant", ["scratch", "nn", "scratch-sync"])
def test_bf16_autocast_runs_in_bf16_and_keeps_float32_state(variant):
    net = _lenet(variant)
    ref = _lenet(variant)
    step = make_step(net, torch.optim.SGD(net.parameters(), lr=0.1), "eager", "bf16", _batches(1)[0])
    ref_step = make_step(ref, torch.optim.SGD(ref.parameters(), lr=0.1), "eager", "none", _batches(1)[0])
    x, y = _batches(1)[0]
    loss, logits = step(x, y)
    ref_loss, _ = ref_step(x, y)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert all(t.dtype in (torch.float32, torch.int64) for t in net.state_dict().values())
    # bf16 keeps ~3 significant digits: the loss agrees with float32 to a few parts in a thousand
    assert abs(loss.item() - ref_loss.item()) < 0.02 * ref_loss.item()
    for name in ("bn1", "bn3"):  # running statistics moved as in float32, to bf16 precision
        got, want = getattr(net.layers, name), getattr(ref.layers, name)
        assert got.running_mean.dtype == torch.float32
        assert torch.allclose(got.running_mean, want.running_mean, rtol=2e-2, atol=2e-3)
        assert torch.allclose(got.running_var, want.running_var, rtol=2e-2, atol=2e-3)
        assert not torch.equal(got.running_mean, torch.zeros_like(got.running_mean))


@pytest.mark.parametrize("mode, amp, variant, world_size, device, skip, fragment", [
    ("graph", "none", "nn", 1, "cpu", 12, "needs a CUDA device"),
    ("graph", "none", "sync", 1, "cuda", 12, "nn.SyncBatchNorm"),
    ("graph", "bf16", "nn", 2, "cuda", 12, "one process only"),
    ("compile", "none", "nn", 1, "cpu", 0, "--warmup-steps >= 1"),
    ("fast", "none", "nn", 1, "cpu", 12, "unknown --mode"),
    ("eager", "fp8", "nn", 1, "cpu", 12, "unknown --amp"),
    ("graph", "fp16", "nn", 1, "cuda", 12, "gradient"),
])
def test_impossible_modes_are_usage_errors(mode, amp, variant, world_size, device, skip, fragment):
    with pytest.raises(UsageError, match=fragment.replace("+", r"\+").replace("-", r"\-")):
        check_mode(mode, amp, variant, world_size, torch.device(device), skip)


@pytest.mark.parametrize("mode, amp, variant, world_size", [
    ("eager", "bf16", "sync", 2), ("compile", "bf16", "scratch", 4), ("graph", "bf16", "scratch", 1),
])
def test_possible_modes_pass(mode, amp, variant, world_size):
    check_mode(mode, amp, variant, world_size, torch.device("cuda"), 12)  # returns without raising


def test_graph_on_cpu_exits_2_without_a_run_dir(tmp_path, data_dir, capsys):
    rc = main(["--mode", "graph", "--device", "cpu", "--data-dir", str(data_dir), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "CUDA" in err
    assert list(tmp_path.iterdir()) == []


def _tiny(tmp_path, data_dir, **kw) -> TrainConfig:
    base = dict(variant="scratch", epochs=1, batch_size=32, limit_train=192, limit_test=64,
                data_dir=str(data_dir), device="cpu", out=str(tmp_path), profile=False, warmup_steps=1)
    return TrainConfig(**{**base, **kw})


def test_compile_mode_trains_like_eager_and_reports_compile_time(tmp_path, data_dir):
    # nn: inductor compiles LeNet-BN's step in ~50 s cold on a 2-core CI box (scratch: ~70 s)
    eager = train(_tiny(tmp_path, data_dir, variant="nn"))
    t0 = time.perf_counter()
    compiled = train(_tiny(tmp_path, data_dir, variant="nn", mode="compile"))
    wall_s = time.perf_counter() - t0
    assert compiled["status"] == "complete" and compiled["mode"] == "compile"
    assert 0 < compiled["compile_s"] <= wall_s and eager["compile_s"] is None
    # Same data, same seed, 6 steps: fused kernels round differently, but not by much.
    assert compiled["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-3)
    assert compiled["train_acc"] == pytest.approx(eager["train_acc"], abs=1 / 192 * 2)
    cfg = json.loads((tmp_path / "lenet-nn-ws1-b32-compile-s0" / "config.json").read_text())
    assert cfg["mode"] == "compile" and cfg["amp"] == "none"


def test_bf16_run_is_recorded(tmp_path, data_dir):
    s = train(_tiny(tmp_path, data_dir, variant="nn", amp="bf16", limit_train=64))
    run = tmp_path / "lenet-nn-ws1-b32-bf16-s0"
    assert s["status"] == "complete" and s["amp"] == "bf16" and s["measured_steps"] == 1
    assert json.loads((run / "config.json").read_text())["amp"] == "bf16"
    assert json.loads((run / "summary.json").read_text())["amp"] == "bf16"
