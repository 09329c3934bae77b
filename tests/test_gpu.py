"""CUDA-only checks, run by devtools/gpu_check.sh on a GPU machine: graph capture trains exactly like eager.

Skipped where no CUDA device is visible (the CPU suite covers eager, compile and bf16). Data: the
repository's `.gpu/data` when present (the GPU machine has no Debian package), else Debian's files.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench.run.datasets import fashion_mnist as fmnist
from bench.run.config import TrainConfig
from bench.nets import build_model
from bench.bn import make_norm
from bench.run.step import make_step
from bench.run.runner import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
REPO = Path(__file__).resolve().parents[1]
# Same kernels in both, but cuDNN's weight-gradient kernels may accumulate with atomics, so not bitwise.
# Graph replay and eager run the same kernels, but cuDNN may pick other algorithms at capture and
# sum in another order; after k SGD steps at lr 1.0 logits differ by up to ~3e-5 on an H200.
TOL = {"rtol": 1e-3, "atol": 1e-4}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    local = REPO / ".gpu" / "data"
    if local.is_dir():
        return str(fmnist.prepare(local))
    return str(fmnist.prepare(tmp_path_factory.mktemp("fmnist")))


def _model(variant: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("lenet", lambda c, d: make_norm(variant, c, d)).cuda()


def _batches(k: int, n: int = 64):
    g = torch.Generator().manual_seed(3)
    return [(torch.rand(n, 1, 28, 28, generator=g).cuda(), torch.randint(0, 10, (n,), generator=g).cuda())
            for _ in range(k)]


@pytest.mark.parametrize("amp", ["none", "bf16"])
@pytest.mark.parametrize("variant", ["scratch", "nn", "scratch-sync"])
def test_k_graph_replays_equal_k_eager_steps(variant, amp):
    k = 5
    batches = _batches(k)
    graph_net, eager_net = _model(variant), _model(variant)
    before = {n: t.clone() for n, t in graph_net.state_dict().items()}
    graph_step = make_step(graph_net, torch.optim.SGD(graph_net.parameters(), lr=0.5), "graph", amp, batches[0])
    for n, t in graph_net.state_dict().items():  # warm-up and capture leave the model as it was
        assert torch.equal(t, before[n]), n
    eager_opt = torch.optim.SGD(eager_net.parameters(), lr=0.5)
    means = []
    for x, y in batches:
        loss_g, logits_g = graph_step(x, y)
        loss_g, logits_g = loss_g.clone(), logits_g.clone()  # static outputs: the next replay overwrites
        # the reference: the textbook step written out here, not bench.run.step
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp == "bf16"):
            logits_e = eager_net(x)
            loss_e = F.cross_entropy(logits_e, y)
        eager_opt.zero_grad()
        loss_e.backward()
        eager_opt.step()
        torch.testing.assert_close(loss_g, loss_e.detach(), **TOL)
        torch.testing.assert_close(logits_g, logits_e.detach(), **({} if amp == "bf16" else TOL))
        means.append(graph_net.layers.bn1.running_mean.clone())
    for (n, g), e in zip(graph_net.state_dict().items(), eager_net.state_dict().values()):
        torch.testing.assert_close(g, e, msg=n, **({} if g.dtype == torch.int64 else TOL))
    assert not torch.equal(means[0], means[-1])  # the statistics moved on every replay, not once
    if variant == "nn":
        assert int(graph_net.layers.bn1.num_batches_tracked) == k


def test_graph_mode_trains_like_eager_through_bench_train(tmp_path, data_dir):
    common = dict(variant="nn", epochs=1, batch_size=256, limit_train=4096, limit_test=1000, data_dir=data_dir,
                  device="cuda", out=str(tmp_path))
    eager = train(TrainConfig(**common))
    graph = train(TrainConfig(**common, mode="graph"))
    assert graph["status"] == "complete" and graph["graph_capture_s"] > 0 and graph["mode"] == "graph"
    assert graph["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-4)
    assert graph["test_acc"] == pytest.approx(eager["test_acc"], abs=5e-3)
    run = tmp_path / "lenet-nn-ws1-b256-graph-s0"
    assert json.loads((run / "config.json").read_text())["mode"] == "graph"
    assert list((run / "traces").glob("rank0*.pt.trace.json.gz"))  # the profiler works around replays


def test_graph_mode_refuses_sync(tmp_path, data_dir):
    from bench.run.runner import main
    assert main(["--mode", "graph", "--variant", "sync", "--data-dir", data_dir, "--out", str(tmp_path)]) == 2
    assert list(tmp_path.iterdir()) == []
