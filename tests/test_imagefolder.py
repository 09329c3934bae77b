"""--data imagefolder end to end on a folder of a few dozen generated PNGs: it trains, evaluates every
test image exactly once across ranks, serves each step the examples the shared order names, and
reports how long steps waited for their batches."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from bench import rundir
from bench.run.config import from_argv
from bench.run.plan import resolve
from bench.run.datasets.feeds import load
from bench.run.runner import train
from tests.test_workloads import image_folder

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # 13 test images per class, 39 in all: no rank count divides them evenly
    return image_folder(tmp_path_factory.mktemp("images"), train=12, val=13)


def _flags(folder, out) -> list[str]:
    return ["--model", "resnet18", "--data", "imagefolder", "--data-dir", str(folder), "--image-size", "32",
            "--batch-size", "8", "--out", str(out), "--device", "cpu"]


def test_an_image_folder_trains_end_to_end(folder, tmp_path):
    summary = train(from_argv([*_flags(folder, tmp_path), "--epochs", "2", "--workers", "1", "--no-profile",
                               "--warmup-steps", "1", "--lr", "0.05", "--eval-batch", "16"]))
    assert summary["status"] == "complete"
    run = tmp_path / summary["run_name"]
    config = rundir.read_json(run / rundir.CONFIG)
    assert (config["n_train"], config["n_test"], config["n_classes"], config["steps_per_epoch"]) == (36, 39, 3, 4)
    metrics = pd.read_csv(run / rundir.METRICS)
    assert metrics["epoch"].tolist() == [1, 2]
    # accuracies are measured here, as counts over 39 test images and 32 trained examples an epoch
    assert (metrics["test_acc"] * 39).round(9).apply(float.is_integer).all()
    assert (metrics["train_acc"] * 32).round(9).apply(float.is_integer).all()
    assert (metrics["data_wait_s"] > 0).all()  # waiting for DataLoader batches takes time
    steps = pd.read_csv(run / rundir.STEP_TIMES)
    assert summary["data_wait_share"] == pytest.approx(metrics["data_wait_s"].sum() / (steps["step_ms"].sum() / 1e3))
    assert 0 < summary["data_wait_share"] < 1


def test_each_step_gets_the_examples_the_order_names(folder, tmp_path):
    plan = resolve(from_argv([*_flags(folder, tmp_path), "--workers", "0"]), 1, CPU)
    source = load(plan.cfg, plan.data, CPU)
    order = torch.tensor([[0, 35, 12], [24, 1, 13]])
    targets = [c for _, c in plan.data.train_files]
    for row, (x, y) in zip(order, source.batches(order)):
        assert y.tolist() == [targets[i] for i in row.tolist()]
        assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32
        # ImageNet-normalised pixels of [0, 255] uint8 images stay within these bounds
        assert -2.2 < x.min() and x.max() < 2.7


def test_evaluation_scores_every_test_image_once_without_padding(folder, tmp_path):
    plan = resolve(from_argv([*_flags(folder, tmp_path), "--workers", "0"]), 1, CPU)
    source = load(plan.cfg, plan.data, CPU)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 3))
    whole, top5 = source.evaluate(net, 0, 1, batch=5)
    assert top5 is None  # 3 classes: no top-5
    # without a process group each rank returns its own count over all 39: the shares must add up
    for world in (2, 4):
        shares = [source.evaluate(net, r, world, batch=5)[0] for r in range(world)]
        assert sum(shares) == pytest.approx(whole)
    assert (whole * 39) == pytest.approx(round(whole * 39))
