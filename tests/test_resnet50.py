"""--model resnet50 on synthetic images, every variant, on CPU: tiny images (32²), a few steps. One run
is profiled, and the report built from its real trace carries the per-layer BN table."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torchvision

from bench import rundir
from bench.nets import bn_layers, build_model
from bench.nets.resnet50 import bn_input_shapes
from bench.run.config import from_argv
from bench.run.profiler import WINDOW_STEPS
from bench.run.runner import train
from tests.procs import torchrun

TINY = ["--model", "resnet50", "--data", "synthetic", "--image-size", "32", "--synthetic-size", "16",
        "--num-classes", "10", "--batch-size", "2", "--epochs", "1", "--lr", "0.01", "--warmup-steps", "0",
        "--device", "cpu", "--diverge-above", "off"]  # 2 random-label images a step blow the loss up by 1e4:
        # these runs test the plumbing, not training (a real run keeps the 100x bound)
pytestmark = pytest.mark.usefixtures("one_intra_op_thread")
PROFILED = "nn"  # the run whose window is recorded: the profiler window's steps, none timed after it


def _torchvision_bn_names() -> list[str]:
    with torch.device("meta"):
        net = torchvision.models.resnet50()
    return [name for name, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_every_bn_layer_comes_from_the_factory_under_its_torchvision_name():
    built = []

    def norm(c: int, dims: int) -> torch.nn.Module:
        built.append((c, dims))
        return torch.nn.BatchNorm2d(c)
    with torch.device("meta"):
        net = build_model("resnet50", norm, (3, 224, 224), 1000)
    names = [name for name, _ in bn_layers(net)]
    assert names == _torchvision_bn_names() and len(names) == 53 == len(built)
    assert {d for _, d in built} == {4}


def test_distinct_bn_shapes_are_the_networks_own():
    seen = {}
    with torch.device("meta"):
        net = torchvision.models.resnet50()
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.register_forward_pre_hook(lambda mod, a, name=name: seen.setdefault(tuple(a[0].shape[1:]), name) and None)
    net(torch.empty(2, 3, 224, 224, device="meta"))
    assert bn_input_shapes(224) == seen and len(seen) == 12
    assert bn_input_shapes(224)[(64, 112, 112)] == "bn1"


@pytest.fixture(scope="module")
def resnet50_runs(tmp_path_factory, one_intra_op_thread):
    """One run per variant, in this process (sync and scratch-sync take their local path at one rank);
    the PROFILED one records the profiler window, the others train 2 unprofiled steps."""
    out = tmp_path_factory.mktemp("resnet50")
    for variant in rundir.VARIANTS:
        if variant.startswith("fused"):
            continue  # Triton kernels: CPU only under the interpreter, tested with them
        steps = ["--steps", str(WINDOW_STEPS)] if variant == PROFILED else ["--steps", "2", "--no-profile"]
        summary = train(from_argv([*TINY, *steps, "--variant", variant, "--out", str(out)]))
        assert summary["status"] == "complete", (variant, summary)
    return out


def test_every_variant_trains_resnet50_without_claiming_an_accuracy(resnet50_runs):
    runs = sorted(p.parent for p in resnet50_runs.glob("*/summary.json"))
    assert len(runs) >= 4
    for run in runs:
        summary = rundir.read_json(run / rundir.SUMMARY)
        config = rundir.read_json(run / rundir.CONFIG)
        assert (config["image_shape"], config["n_classes"], config["steps_per_epoch"]) == (
            [3, 32, 32], 10, WINDOW_STEPS if summary["variant"] == PROFILED else 2)
        # random labels: no accuracy, as JSON null and empty CSV cells, never 0
        assert summary["train_acc"] is None and summary["test_acc"] is None
        metrics = pd.read_csv(run / rundir.METRICS, keep_default_na=False, dtype=str)
        assert metrics[["train_acc", "test_acc"]].values.tolist() == [["", ""]]
        assert float(metrics["train_loss"].iloc[0]) > 0
        bn = pd.read_csv(run / rundir.BN_PARAMS)
        assert list(dict.fromkeys(bn["layer"])) == _torchvision_bn_names()
        if summary["variant"] != PROFILED:
            assert summary["measured_steps"] == 2 and 0 <= summary["data_wait_share"] < 1


def test_report_from_a_real_resnet50_trace_has_the_per_layer_bn_table(resnet50_runs, tmp_path):
    from analysis import report

    micro = tmp_path / "micro.csv"  # a copy measured on "this device" at the first layer's shape
    micro.write_text("device,shape_name,shape,dtype,variant,compiled,op,gb_per_s\n"
                     "cpu,r,2x64x16x16,float32,copy,False,copy,8.0\n")
    assert report.main([str(resnet50_runs), "-o", str(tmp_path / "report"), "--micro", str(micro)]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    section = md[md.index("### BN cost per layer"):]
    rows = [line for line in section.splitlines()
            if line.startswith("| ") and not line.startswith(("| layer |", "| ---"))]
    names = [r.split(" | ")[0].lstrip("| ") for r in rows]
    assert names == _torchvision_bn_names()  # the profiled run's 53 layers, in network order
    first = rows[0].split(" | ")
    assert first[1:3] == ["2x64x16x16", "float32"]  # the stem's BN input at 32²: 64 channels of 16×16
    assert (tmp_path / "report" / "bn_layers.png").stat().st_size > 10_000
    # the stem layer's forward GB/s against the copy's 8 GB/s: x copy = 8 / GB/s
    fwd_gbps, fwd_x = float(first[8].replace(",", "")), float(first[10].replace(",", ""))
    assert fwd_x == pytest.approx(8.0 / fwd_gbps, rel=0.01)
    assert "n/a" in md  # the runs table says accuracy was not measured


def test_scratch_sync_trains_resnet50_on_two_gloo_ranks(tmp_path):
    p = torchrun(2, "bench.train", *TINY, "--batch-size", "4", "--steps", "2", "--no-profile",
                 "--variant", "scratch-sync", "--out", tmp_path, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    summary, config = (json.loads((run / f).read_text()) for f in (rundir.SUMMARY, rundir.CONFIG))
    assert summary["status"] == "complete" and summary["world_size"] == 2
    assert (config["per_rank_batch"], summary["bn_group_size"]) == (2, 2)
    assert "synchronised over 2 of 2 ranks" in summary["bn_description"]
    steps = pd.read_csv(run / rundir.STEP_TIMES)
    assert sorted(steps["rank"].unique()) == [0, 1] and len(steps) == 2 * 2


def test_kernels_cli_writes_the_per_layer_table_and_chart(resnet50_runs, tmp_path):
    """python -m analysis.kernels on the profiled ResNet-50 run: bn_layers.csv holds its 53 layers in
    network order, with bytes and GB/s, and bn_layers.png is the report's bar chart of them."""
    from analysis import kernels

    assert kernels.main([str(resnet50_runs), "-o", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "bn_layers.csv")
    assert table["layer"].tolist() == _torchvision_bn_names()
    assert (table["fwd_bytes"] > 0).all() and (table["bwd_bytes"] == table["fwd_bytes"] * 5 / 3).all()
    assert (table["fwd_gb_per_s"] > 0).all()
    assert (tmp_path / "bn_layers.png").stat().st_size > 10_000
