"""bench.micro --shapes resnet50: every distinct BN input of ResNet-50, at its batches, in both memory
formats; the named shapes keep working (tests/test_perf_tools.py)."""
from __future__ import annotations

import csv
import math

import torch

from bench.nets.resnet50 import bn_input_shapes
from bench.tools import bn_microbench as micro
from bench.tools.microbench_shapes import cases


def test_the_resnet50_group_is_its_12_shapes_at_batch_64_and_256_in_both_formats():
    todo = cases(["resnet50"], None, ["contiguous", "channels_last"])
    shapes = bn_input_shapes(224)  # checked against torchvision's own network in test_resnet50.py
    assert len(todo) == 12 * 2 * 2
    assert {(c.shape_name, c.shape[1:]) for c in todo} == {(f"resnet50.{name}", chw) for chw, name in shapes.items()}
    assert {c.shape[0] for c in todo} == {64, 256}
    assert {c.memory_format for c in todo} == {"contiguous", "channels_last"}
    assert len(cases(["resnet50", "lenet.bn3"], [8], ["contiguous"])) == 13  # --batch replaces the group's


def test_micro_measures_the_group_in_channels_last(tmp_path):
    args = micro.build_parser().parse_args(["--shapes", "resnet50", "--batch", "2", "--memory-formats",
                                            "channels_last", "--dtypes", "float32", "--variants", "nn"])
    todo = cases(args.shapes, args.batch, args.memory_formats)
    assert len(todo) == 12 and {c.shape[0] for c in todo} == {2}
    out = tmp_path / "micro.csv"
    smallest = todo[-2:]  # layer4's (512, 7, 7) and (2048, 7, 7): enough to check the rows, cheap on a CPU
    micro.run(smallest, args.dtypes, tuple(args.variants), torch.device("cpu"), (False,), 20, 1, out)
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3  # copy, forward, forward+backward per shape
    assert {r["memory_format"] for r in rows} == {"channels_last"}
    assert [r["shape"] for r in rows[::3]] == ["2x512x7x7", "2x2048x7x7"]
    for r in rows:  # bytes: 2 (or 4 with backward) passes of the input, as the rest of bench.micro counts
        elems = math.prod(int(d) for d in r["shape"].split("x"))
        assert int(r["bytes_min"]) == (4 if r["op"] == "forward_backward" else 2) * elems * 4
