"""The recipe: LeNet keeps the textbook's (its reference run is bit for bit what it was), torchvision
networks get torchvision's, flags override, and the per-run extras (fp16 with a scaler, progress
lines, the results file) do what they say."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from bench.bn import make_norm
from bench.nets import build_model
from bench.run.config import TrainConfig, from_argv
from bench.run.recipe import lr_factor, make_optimizer, resolve
from bench.run.runner import train

# metrics.csv's train_loss of `python -m bench.train --variant nn --epochs 1 --limit-train 1024
# --limit-test 500 --no-profile` (and of --variant scratch) run with the code before the recipe existed
RECORDED_LOSS = 2.1146366596221924


def test_lenet_resolves_to_the_textbook_recipe():
    r = resolve(TrainConfig(), 256)
    assert (r.opt, r.lr, r.momentum, r.weight_decay, r.lr_scheduler, r.lr_warmup_epochs, r.label_smoothing) == \
        ("sgd", 1.0, 0.0, 0.0, "none", 0.0, 0.0)


def _reference_loss(data_dir) -> float:
    """The textbook's epoch written out by hand: its own data reading, permutation and SGD update."""
    ds = torchvision.datasets.FashionMNIST(str(data_dir), train=True, download=False)
    x, y = ds.data[:1024].unsqueeze(1).float() / 255.0, ds.targets[:1024].long()
    order = torch.randperm(1024, generator=torch.Generator().manual_seed(0)).view(4, 256)
    torch.manual_seed(0)
    net = build_model("lenet", lambda c, d: make_norm("nn", c, d))
    losses = []
    for idx in order:
        loss = F.cross_entropy(net(x[idx]), y[idx])
        net.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= 1.0 * p.grad
        losses.append(loss.item())
    return sum(losses) / len(losses)


@pytest.mark.parametrize("variant", ["nn", "scratch"])
def test_the_lenet_reference_run_is_unchanged(tmp_path, data_dir, variant, keep_process_state):
    summary = train(TrainConfig(variant=variant, epochs=1, limit_train=1024, limit_test=500, profile=False,
                                data_dir=str(data_dir), out=str(tmp_path), device="cpu"))
    assert summary["train_loss"] == RECORDED_LOSS
    assert summary["train_loss"] == pytest.approx(_reference_loss(data_dir), rel=1e-6)
    config = json.loads((tmp_path / summary["run_name"] / "config.json").read_text())
    assert (config["recipe"], config["opt"], config["lr"], config["momentum"]) == ("textbook", "sgd", 1.0, 0.0)


def test_torchvision_networks_get_torchvision_recipe_without_decay_on_norm_layers():
    r = resolve(TrainConfig(model="resnet18", epochs=10), 512)
    assert (r.lr, r.momentum, r.weight_decay, r.norm_weight_decay, r.lr_scheduler, r.lr_warmup_epochs) == \
        (0.2, 0.9, 1e-4, 0.0, "cosine", 2.0)
    net = torchvision.models.resnet18(num_classes=10)
    norm = {id(p) for m in net.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    opt = make_optimizer(net, r)
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert len(decay) == len(list(net.parameters()))
    assert all(decay[i] == (0.0 if i in norm else 1e-4) for i in decay)
    assert all(g["momentum"] == 0.9 and g["lr"] == 0.2 for g in opt.param_groups)


def test_flags_override_the_models_defaults():
    cfg = from_argv(["--model", "resnet18", "--opt", "adamw", "--weight-decay", "0.05", "--lr-scheduler", "step",
                     "--lr-warmup-epochs", "0", "--label-smoothing", "0.1", "--batch-size", "512"])
    r = resolve(cfg, 512)
    assert (r.opt, r.lr, r.weight_decay, r.lr_scheduler, r.lr_warmup_epochs, r.label_smoothing) == \
        ("adamw", 2e-3, 0.05, "step", 0.0, 0.1)
    assert isinstance(make_optimizer(nn.Linear(2, 2), r), torch.optim.AdamW)


def test_schedule_warms_up_linearly_then_follows_a_cosine():
    r = resolve(TrainConfig(model="resnet18", epochs=5, lr_warmup_epochs=1.0), 256)
    steps, epochs = 10, 5
    for s in range(steps * epochs):
        want = 0.01 + 0.99 * s / 10 if s < 10 else 0.5 * (1 + math.cos(math.pi * (s - 10) / 40))
        assert lr_factor(r, s, steps, epochs) == pytest.approx(want)


def test_resnet50_on_small_synthetic_images_trains_at_its_defaults(tmp_path, keep_process_state, capsys):
    results = tmp_path / "results.jsonl"
    summary = train(TrainConfig(model="resnet50", data="synthetic", image_size=32, batch_size=8, steps=4,
                                epochs=1, device="cpu", profile=False, warmup_steps=0, out=str(tmp_path),
                                print_freq=2, results_file=str(results)))
    assert summary["status"] == "complete"
    assert summary["train_loss"] < 1.5 * math.log(1000)  # random labels over 1000 classes: ~log 1000
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  epoch 1 step ")]
    assert [line.split()[3] for line in progress] == ["2/4", "4/4"]
    (line,) = [json.loads(line) for line in results.read_text().splitlines()]
    assert (line["model"], line["recipe"], line["status"], line["momentum"]) == ("resnet50", "torchvision", "complete", 0.9)


def test_fp16_with_a_gradient_scaler_trains(tmp_path, data_dir, keep_process_state):
    cfg = dict(epochs=1, limit_train=512, limit_test=100, profile=False, data_dir=str(data_dir), out=str(tmp_path),
               device="cpu", warmup_steps=0)
    half = train(TrainConfig(amp="fp16", **cfg))
    full = train(TrainConfig(**cfg))
    assert half["status"] == "complete" and half["amp"] == "fp16"
    assert half["train_loss"] != full["train_loss"]  # float16 arithmetic ran
    assert half["train_loss"] == pytest.approx(full["train_loss"], rel=0.05)


def test_top5_counts_a_hit_among_the_five_largest_logits():
    from bench.run.datasets.feeds import _count_correct, _sum_correct

    logits = torch.tensor([[9.0, 8, 7, 6, 5, 4, 0], [0.0, 1, 2, 3, 4, 5, 6], [6.0, 5, 4, 3, 2, 1, 0]])
    y = torch.tensor([4, 0, 0])  # 5th largest (a top-5 hit), the smallest (a miss), the largest (both)
    counts = torch.zeros(2, dtype=torch.int64)
    _count_correct(counts, logits, y)
    assert _sum_correct(counts, 3, 7) == pytest.approx((1 / 3, 2 / 3))
