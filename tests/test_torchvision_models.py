"""--model takes torchvision's BN networks by name: five families train one step each with nn, scratch
and gn (and on 2 gloo ranks with scratch-sync); networks without BN and inputs a network cannot take
are refused with one line; BN input shapes agree with forward hooks on torchvision's own network."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torchvision
from torch import nn

from bench.nets import bn_layers, build_model
from bench.nets.shapes import distinct_shapes
from bench.run.config import TrainConfig
from bench.run.runner import main, train
from bench.tools.microbench_shapes import cases
from tests.procs import torchrun

FAMILIES = ("mobilenet_v3_small", "regnet_x_400mf", "efficientnet_b0", "shufflenet_v2_x0_5", "mnasnet0_5")


def _bn_paths(name: str) -> list[str]:
    """BN module paths of torchvision's own network, found independently of bench.nets."""
    net = torchvision.models.get_model(name, num_classes=10)
    return [p for p, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _cfg(tmp_path, name: str, variant: str, **kw) -> TrainConfig:
    return TrainConfig(model=name, variant=variant, data="synthetic", image_size=32, num_classes=10,
                       synthetic_size=4, batch_size=4, epochs=1, profile=False, warmup_steps=0, device="cpu",
                       out=str(tmp_path), **kw)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_trains_with_nn_scratch_and_gn(tmp_path, name, keep_process_state):
    paths = _bn_paths(name)
    for variant in ("nn", "scratch", "gn"):
        summary = train(_cfg(tmp_path, name, variant))
        assert summary["status"] == "complete" and math.isfinite(summary["train_loss"])
        run = tmp_path / summary["run_name"]
        with open(run / "bn_params.csv") as f:
            rows = list(csv.DictReader(f))
        assert list(dict.fromkeys(r["layer"] for r in rows)) == paths  # keyed by torchvision's paths
        assert all((r["running_mean"] == "") == (variant == "gn") for r in rows)
        config = json.loads((run / "config.json").read_text())
        assert config["recipe"] == "torchvision" and config["lr"] == pytest.approx(0.1 * 4 / 256)


def test_two_gloo_ranks_with_scratch_sync(tmp_path):
    r = torchrun(2, "bench.train", "--model", "mobilenet_v3_small", "--variant", "scratch-sync", "--data",
                 "synthetic", "--image-size", "32", "--num-classes", "10", "--synthetic-size", "4", "--batch-size",
                 "4", "--epochs", "1", "--no-profile", "--warmup-steps", "0", "--device", "cpu", "--out", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(next(tmp_path.glob("*/summary.json")).read_text())
    assert summary["status"] == "complete" and summary["world_size"] == 2 and math.isfinite(summary["train_loss"])


@pytest.mark.parametrize("argv, says", [
    (["--model", "convnext_tiny"], "holds no batch-norm layer"),
    (["--model", "vit_b_16"], "holds no batch-norm layer"),
    (["--model", "no_such_net"], "unknown --model no_such_net"),
    (["--model", "inception_v3", "--data", "synthetic", "--image-size", "32"], "cannot take 3×32×32"),
    (["--model", "regnet_y_400mf"], "3-channel images"),
])
def test_refusals_are_one_line_and_exit_2(tmp_path, capsys, argv, says):
    try:
        code = main([*argv, "--out", str(tmp_path), "--device", "cpu", "--data-dir", str(tmp_path)])
    except SystemExit as e:  # argparse refuses a --model it cannot take
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and says in err
    assert not any(tmp_path.glob("*/config.json"))


def test_layers_keep_their_torchvision_paths_and_settings():
    net = build_model("mnasnet0_5", lambda c, d: nn.BatchNorm2d(c), (3, 32, 32), 10)
    assert [p for p, _ in bn_layers(net)] == _bn_paths("mnasnet0_5")
    # torchvision builds MnasNet's BN with momentum 1 - 0.9997; the converted layers keep it
    assert {round(m.momentum, 6) for _, m in bn_layers(net)} == {0.0003}


def test_micro_shapes_are_the_distinct_inputs_forward_hooks_see():
    net = torchvision.models.regnet_y_400mf(num_classes=10).train()
    seen = []
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(lambda _m, args, _out: seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        net(torch.randn(2, 3, 64, 64))
    assert set(distinct_shapes("regnet_y_400mf", 64, 2)) == set(seen)
    todo = cases(["regnet_y_400mf"], [2], ["contiguous"], 64)
    assert sorted(c.shape for c in todo) == sorted(set(seen))
    assert all(c.shape_name.startswith("regnet_y_400mf.trunk_output.") or c.shape_name == "regnet_y_400mf.stem.1"
               for c in todo)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "regnet_x_400mf", "convnext_tiny"])
def test_bn_counts_built_on_the_meta_device_match_the_real_network(name):
    from bench.nets.torchvision_models import bn_count

    assert bn_count(name) == len(_bn_paths(name))
