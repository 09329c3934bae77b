"""bench.micro, bench.overhead and --model resnet18 on CPU, with small sizes."""
from __future__ import annotations

import csv
import statistics

import pytest
import torch
from torch import nn
from torch.profiler import profile

from bench.tools import bn_microbench as micro, mode_compare as modes, overhead_measure as overhead
from bench.nets import build_model, set_bn_labels
from bench.bn import ScratchBatchNorm, make_norm
from bench.run.runner import train
from bench.run.config import TrainConfig


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_micro_rows_agree_with_their_raw_samples(tmp_path, capsys):
    out = tmp_path / "micro.csv"
    rc = micro.main(["--device", "cpu", "--batch", "4", "--shapes", "lenet.bn3,lenet.bn1",
                     "--dtypes", "float32,bfloat16", "--no-compile", "--reps", "20", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "median_us" in printed and "x_copy" in printed
    rows, samples = _read(out), _read(tmp_path / "micro_samples.csv")
    # 2 shapes x 2 dtypes x (copy + 3 variants (scratch, nn, gn) x 2 ops)
    assert len(rows) == 28 and len(samples) == 28 * 20
    elems = {"lenet.bn3": 4 * 120, "lenet.bn1": 4 * 6 * 24 * 24}
    size = {"float32": 4, "bfloat16": 2}
    copy_us = {}
    for r in rows:
        key = (r["shape_name"], r["dtype"], r["variant"], r["compiled"], r["op"])
        times = [float(s["time_us"]) for s in samples
                 if (s["shape_name"], s["dtype"], s["variant"], s["compiled"], s["op"]) == key]
        med = statistics.median(times)
        assert len(times) == 20 and float(r["time_us_median"]) == pytest.approx(med)
        nbytes = (4 if r["op"] == "forward_backward" else 2) * elems[r["shape_name"]] * size[r["dtype"]]
        assert int(r["bytes_min"]) == nbytes
        assert float(r["gb_per_s"]) == pytest.approx(nbytes / med / 1e3)
        if r["op"] == "copy":
            copy_us[r["shape_name"], r["dtype"]] = med
    for r in rows:
        assert float(r["ratio_to_copy"]) == pytest.approx(
            float(r["time_us_median"]) / copy_us[r["shape_name"], r["dtype"]])
    assert {r["shape"] for r in rows} == {"4x120", "4x6x24x24"}


def test_micro_compiled_rows(tmp_path):
    out = tmp_path / "m.csv"
    assert micro.main(["--device", "cpu", "--batch", "8", "--shapes", "lenet.bn4", "--dtypes", "float32",
                       "--variants", "scratch", "--reps", "20", "--out", str(out)]) == 0
    rows = _read(out)
    assert [(r["variant"], r["compiled"], r["op"]) for r in rows] == [
        ("copy", "False", "copy"), ("scratch", "False", "forward"), ("scratch", "False", "forward_backward"),
        ("scratch", "True", "forward"), ("scratch", "True", "forward_backward")]
    assert all(float(r["time_us_median"]) > 0 for r in rows)


def test_micro_rejects_too_few_reps(capsys):
    assert micro.main(["--device", "cpu", "--reps", "5", "--out", ""]) == 2
    assert "--reps" in capsys.readouterr().err


def test_overhead_prints_the_ratios_of_its_runs(tmp_path, data_dir, capsys):
    out = tmp_path / "overhead.csv"
    rc = overhead.main(["--device", "cpu", "--data-dir", str(data_dir), "--limit-train", "1024",
                        "--limit-test", "64", "--batch-size", "64", "--epochs", "1", "--repeats", "1",
                        "--csv", str(out)])
    assert rc == 0
    rows = _read(out)
    eps = {r["arm"]: float(r["examples_per_s"]) for r in rows}
    assert set(eps) == {"bare", "bare+marks", "harness", "profiled"} and all(v > 0 for v in eps.values())
    printed = capsys.readouterr().out
    assert f"harness_over_bare      {eps['harness'] / eps['bare']:.3f}" in printed
    assert f"profiled_over_harness  {eps['profiled'] / eps['harness']:.3f}" in printed
    assert f"marks_over_bare        {eps['bare+marks'] / eps['bare']:.3f}" in printed
    assert "one round: no spread to judge it by" in printed


def test_overhead_rounds_rotate_which_arm_goes_first(monkeypatch):
    calls = []
    monkeypatch.setattr(overhead, "bare_loop", lambda cfg, dev, skip, marks=False:
                        calls.append("bare+marks" if marks else "bare") or 1.0)
    monkeypatch.setattr(overhead, "harness", lambda cfg: calls.append(
                        "profiled" if cfg.profile else "harness") or 1.0)
    rows = overhead.measure(overhead.TrainConfig(), torch.device("cpu"), repeats=4)
    n = len(overhead.ARMS)
    firsts = [calls[r * n] for r in range(4)]
    assert sorted(firsts) == sorted(overhead.ARMS)  # each arm leads one round
    assert [r["arm"] for r in rows] == calls
    assert all(sorted(calls[r * n:(r + 1) * n]) == sorted(overhead.ARMS) for r in range(4))


@pytest.mark.parametrize("values, harness_over_bare, profiled_over_harness", [
    ({"bare": [100.0], "harness": [97.0], "profiled": [97.0]}, 0.97, 1.0),
    ({"bare": [90.0, 100.0, 110.0], "harness": [50.0, 100.0, 99.0], "profiled": [49.5, 60.0, 1.0]}, 0.99,
     49.5 / 99.0),
])
def test_overhead_ratios_use_medians(values, harness_over_bare, profiled_over_harness):
    rows = [{"arm": a, "repeat": i, "examples_per_s": v} for a, vs in values.items() for i, v in enumerate(vs)]
    res = overhead.ratios(rows)
    assert res["harness_over_bare"] == pytest.approx(harness_over_bare)
    assert res["profiled_over_harness"] == pytest.approx(profiled_over_harness)


@pytest.mark.parametrize("bare, harness, expected", [
    ([100.0, 100.5, 99.5, 100.0, 100.2], [98.0, 98.1, 97.9, 98.0, 98.2], "within"),
    ([100.0, 100.5, 99.5, 100.0, 100.2], [95.0, 95.1, 94.9, 95.0, 95.2], "OVER"),
    # IQR of the harness rounds: 97.5 - 90 = 7.5 over a median of 96: wider than the 3 % margin
    ([100.0, 100.5, 99.5, 100.0, 100.2], [80.0, 90.0, 96.0, 97.5, 99.0], "OVER, but unresolved: an arm "
                                                                        "spreads 7.8%"),
])
def test_overhead_verdict_says_when_rounds_cannot_resolve_the_budget(bare, harness, expected):
    rows = [{"arm": a, "repeat": i, "examples_per_s": v}
            for a, vs in (("bare", bare), ("bare+marks", bare), ("harness", harness), ("profiled", harness))
            for i, v in enumerate(vs)]
    assert overhead.verdict(overhead.ratios(rows), "harness_over_bare").startswith(expected)


def test_overhead_refuses_runs_without_measured_profiled_steps(data_dir, capsys):
    # 640 / 64 = 10 steps, but the profiled run leaves 7 window + 5 warm-up steps untimed
    assert overhead.main(["--device", "cpu", "--data-dir", str(data_dir), "--limit-train", "640",
                          "--batch-size", "64", "--epochs", "1"]) == 2
    assert "untimed" in capsys.readouterr().err


def test_modes_speedup_is_over_the_matching_eager_row():
    def row(variant, batch, mode, eps):
        return {"model": "lenet", "variant": variant, "global_batch": batch, "amp": "none", "mode": mode,
                "examples_per_s": eps}

    rows = modes.speedups([row("nn", 256, "eager", 100.0), row("nn", 256, "graph", 430.0),
                           row("nn", 1024, "graph", 600.0), row("scratch", 256, "eager", 50.0),
                           row("scratch", 256, "compile", 75.0)])
    assert [r["speedup_over_eager"] for r in rows] == [1.0, 4.3, None, 1.0, 1.5]


def test_resnet18_is_adapted_and_every_bn_comes_from_the_factory():
    built = []

    def factory(c, dims):
        built.append((c, dims))
        return make_norm("scratch", c, dims)

    model = build_model("resnet18", factory)
    norms = [m for m in model.modules() if isinstance(m, (ScratchBatchNorm, nn.modules.batchnorm._NormBase))]
    # stem 1 + 8 basic blocks x 2 + 3 downsample projections
    assert len(built) == 20 and len(norms) == 20 and all(isinstance(m, ScratchBatchNorm) for m in norms)
    assert all(d == 4 for _, d in built)
    assert sorted(c for c, _ in built) == sorted([64] * 5 + [128] * 5 + [256] * 5 + [512] * 5)
    stem = model.net.conv1
    assert (stem.in_channels, stem.kernel_size, stem.stride) == (1, (3, 3), (1, 1))
    assert isinstance(model.net.maxpool, nn.Identity)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_resnet18_bn_labels_only_while_on():
    model = build_model("resnet18", lambda c, d: make_norm("nn", c, d)).eval()
    x = torch.rand(1, 1, 28, 28)
    set_bn_labels(model, True)
    with profile() as on:
        model(x)
    set_bn_labels(model, False)
    with profile() as off:
        model(x)
    labels = {e.name for e in on.events() if e.name.startswith("bn/")}
    expected = {f"bn/{n}" for n, m in model.net.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert labels == expected and len(expected) == 20
    assert not any(e.name.startswith("bn/") for e in off.events())


def test_resnet18_trains_through_bench_train(tmp_path, data_dir):
    s = train(TrainConfig(model="resnet18", variant="nn", epochs=1, batch_size=8, limit_train=16, limit_test=8,
                          data_dir=str(data_dir), device="cpu", out=str(tmp_path), profile=False,
                          warmup_steps=1))
    assert s["status"] == "complete" and s["model"] == "resnet18" and s["measured_steps"] == 1
    assert (tmp_path / "resnet18-nn-ws1-b8-s0" / "summary.json").is_file()
