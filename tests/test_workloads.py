"""The image workloads' plan: every bad input is one line and exit 2 before any process group, and the
derived facts (image shape, classes, set sizes, steps per epoch) are resolved once into the RunPlan.
Also the presets that start these workloads, and the data order that --steps cycles through."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.run.config import TrainConfig, from_argv
from bench.run.loop import epoch_order
from bench.run.plan import resolve
from tests.test_errors import assert_usage_error, run_main

CPU = torch.device("cpu")


def image_folder(root: Path, classes=("cat", "dog", "fox"), train=12, val=4, size=(40, 48)) -> Path:
    """A tiny ImageFolder: random RGB PNGs, `train` and `val` per class."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for c in classes if n else ():
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size[0] + i, size[1], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return image_folder(tmp_path_factory.mktemp("images"))


def _bad_folder(tmp_path: Path, kind: str) -> Path:
    root = tmp_path / kind
    if kind == "no class folders":
        (root / "train").mkdir(parents=True)
        (root / "train" / "stray.png").write_bytes(b"")
    elif kind == "unreadable image":
        image_folder(root, train=2, val=0)
        (root / "train" / "dog" / "broken.png").write_bytes(b"this is not a png")
    elif kind == "classes differ":
        image_folder(root, train=2, val=1)
        image_folder(root / "extra", classes=("owl",), train=0, val=1)
        (root / "extra" / "val" / "owl").rename(root / "val" / "owl")
    return root


FOLDER_CASES = {  # kind -> words of the one line (the folder's path is added where it is named)
    "no train folder": ["train folder", "does not exist", "train/<class>/<image>"],
    "no class folders": ["Couldn't find any class folder", "train/<class>/<image>"],
    "unreadable image": ["cannot read image", "broken.png", "replace or remove"],
    "classes differ": ["different class folders", "owl"],
}


@pytest.mark.parametrize("kind", FOLDER_CASES)
def test_bad_image_folder_is_one_line_and_exit_2(kind, tmp_path, capsys):
    root = _bad_folder(tmp_path, kind)
    out = tmp_path / "runs"
    rc, lines = run_main(["--model", "resnet18", "--data", "imagefolder", "--data-dir", str(root), "--image-size",
                          "32", "--batch-size", "4", "--out", str(out), "--device", "cpu"], capsys)
    assert_usage_error(rc, lines, out, *FOLDER_CASES[kind])
    assert not out.exists() or not any(out.iterdir())  # nothing left behind


FLAG_CASES = {  # flags -> words of the one line
    "image size under 32": (["--model", "resnet50", "--data", "synthetic", "--image-size", "16"],
                            ["--image-size 16", "under 32"]),
    "synthetic with --download": (["--model", "resnet50", "--data", "synthetic", "--download"],
                                  ["--download", "does not apply to --data synthetic"]),
    "limit-train on synthetic": (["--model", "resnet50", "--data", "synthetic", "--limit-train", "64"],
                                 ["--limit-train", "does not apply", "--steps"]),
    "num-classes on fashion-mnist": (["--num-classes", "5"], ["--num-classes", "does not apply"]),
    "lenet on synthetic images": (["--data", "synthetic", "--image-size", "32"],
                                  ["--model lenet with --data synthetic", "1×28×28", "resnet18 or resnet50"]),
    "resnet50 on fashion-mnist": (["--model", "resnet50"], ["--model resnet50 with --data fashion-mnist",
                                                            "--image-size 32", "--data synthetic or imagefolder"]),
    "lenet on padded fashion-mnist": (["--image-size", "32"], ["--model lenet with --data fashion-mnist",
                                                               "not 3×32×32", "drop --image-size"]),
    "fashion-mnist padded below 32": (["--model", "resnet18", "--image-size", "30"], ["--image-size 30",
                                                                                      "at least 32"]),
    "synthetic set under a batch": (["--model", "resnet50", "--data", "synthetic", "--synthetic-size", "8",
                                     "--batch-size", "16"], ["--synthetic-size 8", "one global batch"]),
}


@pytest.mark.parametrize("case", FLAG_CASES)
def test_bad_workload_flags_are_one_line_and_exit_2(case, tmp_path, capsys):
    flags, words = FLAG_CASES[case]
    out = tmp_path / "runs"
    rc, lines = run_main([*flags, "--out", str(out), "--device", "cpu"], capsys)
    assert_usage_error(rc, lines, out, *words)


def test_plan_holds_the_image_folder_facts(folder, tmp_path):
    cfg = from_argv(["--model", "resnet18", "--data", "imagefolder", "--data-dir", str(folder), "--image-size", "32",
                     "--batch-size", "8", "--out", str(tmp_path)])
    plan = resolve(cfg, 2, CPU)
    spec = plan.data
    assert (spec.input_shape, spec.num_classes, spec.n_train, spec.n_test) == ((3, 32, 32), 3, 36, 12)
    assert plan.steps_per_epoch == 36 // 8 and plan.per_rank_batch == 4
    # ImageFolder's order: classes sorted, class index from that order, every file once
    train = [(Path(p).parent.name, c) for p, c in spec.train_files]
    assert train == [(name, i) for i, name in enumerate(("cat", "dog", "fox")) for _ in range(12)]
    assert len({p for p, _ in spec.train_files + spec.test_files}) == 48
    record = plan.record()
    assert (record["image_shape"], record["n_classes"], record["n_train"], record["n_test"]) == ([3, 32, 32], 3, 36, 12)
    json.dumps(record)  # config.json takes it as it is: no file list in it
    assert plan.run_name == "resnet18-nn-ws2-b8-img32-s0"


def test_plan_of_synthetic_images_and_a_step_budget(tmp_path):
    base = ["--model", "resnet50", "--data", "synthetic", "--batch-size", "64", "--out", str(tmp_path)]
    plan = resolve(from_argv(base), 1, CPU)
    assert (plan.data.input_shape, plan.data.num_classes, plan.data.n_train, plan.data.n_test) == ((3, 224, 224), 1000,
                                                                                                   2048, 0)
    assert plan.steps_per_epoch == 2048 // 64 and plan.data.accuracy is False
    plan = resolve(from_argv([*base, "--steps", "100", "--channels-last", "--amp", "bf16"]), 1, CPU)
    assert plan.steps_per_epoch == 100
    assert plan.run_name == "resnet50-nn-ws1-b64-syn224-cl-st100-bf16-s0"


def test_fashion_mnist_plan_is_unchanged(tmp_path):
    plan = resolve(TrainConfig(out=str(tmp_path), limit_train=4096), 1, CPU)
    assert (plan.data.input_shape, plan.data.n_train, plan.data.n_test) == ((1, 28, 28), 4096, 10_000)
    assert plan.steps_per_epoch == 4096 // 256 and plan.run_name == "lenet-nn-ws1-b256-s0"


def test_fashion_mnist_padded_for_a_torchvision_network(tmp_path, data_dir):
    from bench.run.datasets import fashion_mnist, feeds
    cfg = from_argv(["--model", "resnet18", "--image-size", "32", "--limit-train", "64", "--batch-size", "16",
                     "--data-dir", str(data_dir), "--out", str(tmp_path)])
    plan = resolve(cfg, 1, CPU)
    assert plan.data.input_shape == (3, 32, 32) and plan.run_name == "resnet18-nn-ws1-b16-pad32-s0"
    x, _ = feeds.load(cfg, plan.data, CPU).example(4)
    raw = fashion_mnist.load(data_dir, CPU, limit_train=4).train_x  # 4×1×28×28 in [0, 1]
    assert x.shape == (4, 3, 32, 32)
    assert torch.equal(x[:, :, 2:30, 2:30], raw.expand(-1, 3, -1, -1))  # centred, grey in every channel
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert x[:, :, border].abs().sum() == 0


def test_steps_beyond_one_pass_cycle_through_fresh_permutations():
    n, steps, batch = 10, 7, 4  # 28 indices: two whole permutations and 8 of a third
    order = epoch_order(3, 1, n, steps, batch).flatten().tolist()
    assert order[:8] == epoch_order(3, 1, n, 2, batch).flatten().tolist()  # one pass: unchanged
    for k in range(2):
        assert sorted(order[k * n:(k + 1) * n]) == list(range(n))
    assert len(set(order[2 * n:])) == 8


def test_presets_start_the_resnet50_workloads():
    from launch.matrix import build, merge, preset_args

    matrix, train_args = merge({}, {"preset": "resnet50-synthetic"}, [])
    cells = build(matrix, train_args).cells
    assert [c.variant for c in cells] == ["scratch", "nn", "sync", "scratch-sync"]
    cfg = from_argv(list(cells[0].train_args))
    assert (cfg.model, cfg.data, cfg.amp, cfg.channels_last, cfg.batch_size, cfg.epochs) == (
        "resnet50", "synthetic", "bf16", True, 64, 1)
    assert cfg.steps and cfg.steps > 12  # more steps than the profiler window and warm-up leave untimed
    variants, flags = preset_args("resnet50-imagefolder", 4)
    cfg = from_argv(["--variant", variants[0], *flags, "--data-dir", "/data/imagenet", "--steps", "7"])
    assert (cfg.data, cfg.batch_size, cfg.workers, cfg.steps, cfg.data_dir) == (
        "imagefolder", 4 * 64, 8, 7, "/data/imagenet")  # flags after the preset's win
