"""How the report prints: one number format, short run labels, legends beside the data, and the
sections in the order a reader wants them (Findings first)."""
from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from analysis import report
from analysis.render.figures import legend_outside, line_style
from analysis.render.labels import run_labels
from analysis.render.mdtable import fmt_number, to_markdown
from analysis.render.runs_section import curves_section
from tests.test_analysis_inputs import make_run


@pytest.mark.parametrize("value, spec, text", [
    (28009.9, ".4g", "28,010"),        # no 2.801e+04
    (116223.0, ".4g", "116,223"),
    (917.36, ".4g", "917.4"),
    (0.0123456, ".4g", "0.01235"),
    (0.5, ".4g", "0.5"),
    (-0.036, ".3f", "-0.036"),
    (1234.5, ".2f", "1,234.50"),
    (12345, ".4g", "12,345"),          # integers whole, with separators
    (float("nan"), ".4g", "–"),
    (None, ".4g", "–"),
])
def test_numbers_print_one_way(value, spec, text):
    assert fmt_number(value, spec) == text


def test_tables_never_use_e_notation():
    md = to_markdown(pd.DataFrame({"examples/s": [2.801e4, 8616.0, 1.5e-5]}))
    assert "e+" not in md and "e-" not in md
    assert md.splitlines()[2:] == ["| 28,010 |", "| 8,616 |", "| 0.000015 |"]


def _runs(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {"variant": ["nn"] * n, "bn_group_size": [1] * n, "world_size": [2] * n, "seed": [0] * n}
    return pd.DataFrame({**base, **columns, "run": [f"dir{i}" for i in range(n)]})


@pytest.mark.parametrize("columns, labels", [
    ({"variant": ["nn", "scratch-sync"], "bn_group_size": [1, 2]}, ["nn", "scratch-sync"]),
    ({"seed": [0, 1]}, ["nn s0", "nn s1"]),
    ({"variant": ["sync", "nn"], "bn_group_size": [1, 1]}, ["sync (local)", "nn"]),  # group not the variant's own
    ({"world_size": [1, 4], "bn_group_size": [1, 1]}, ["nn ws1", "nn ws4"]),
    ({"seed": [0, 0]}, ["dir0", "dir1"]),  # same configuration twice: the directory names tell them apart
])
def test_run_labels(columns, labels):
    runs = _runs(**columns)
    assert [run_labels(runs)[r] for r in runs["run"]] == labels


def test_legend_sits_outside_every_axes():
    fig, axes = plt.subplots(1, 2, layout="constrained")
    for i in range(4):
        for ax in axes:
            ax.plot([1, 2, 3], [i, i + 1, i], label=f"run {i}", **line_style(i))
    legend = legend_outside(fig)
    fig.canvas.draw()
    box = legend.get_window_extent()
    try:
        assert [t.get_text() for t in legend.get_texts()] == [f"run {i}" for i in range(4)]
        assert not any(box.overlaps(ax.get_window_extent()) for ax in axes)
    finally:
        plt.close(fig)


def test_coinciding_curves_are_said_to_coincide(tmp_path):
    one = {"epoch": [1, 2], "train_loss": [0.7, 0.5], "train_acc": [0.7, 0.8], "test_acc": [0.75, 0.8]}
    metrics = pd.concat([pd.DataFrame(one).assign(run=r) for r in ("a", "b", "c")])
    bn = pd.DataFrame(columns=["run", "layer", "channel", "weight", "bias"])
    md = curves_section(metrics, bn, {"a": "nn", "b": "sync", "c": "scratch"}, tmp_path)
    assert "**The curves of all 3 runs coincide**" in md
    metrics.loc[(metrics["run"] == "c") & (metrics["epoch"] == 2), "test_acc"] = 0.7
    assert "coincide" not in curves_section(metrics, bn, {}, tmp_path)
    assert (tmp_path / "training_curves.png").stat().st_size > 0


def test_report_opens_with_findings_and_numbers_read_one_way(tmp_path):
    make_run(tmp_path / "runs", "lenet-nn-ws1-b256-s0", variant="nn", eps=28009.9, test_acc=0.849)
    make_run(tmp_path / "runs", "lenet-scratch-ws1-b256-s0", variant="scratch", eps=14004.95, test_acc=0.835)
    report.build([str(tmp_path / "runs")], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert re.findall(r"^## (.+)$", md, re.M)[0] == "Findings"
    findings = md.split("## Findings")[1].split("\n## ")[0]
    assert "**scratch** against nn (one run each: no interval): 0.50× the examples/s; " \
           "-1.4 points of test accuracy." in findings
    assert (f"Fastest: **nn**, 28,010 examples/s at {256 / 28009.9 * 1e3:.3g} ms a step (its run's median step, "
            "the slowest rank's; not mean throughput).") in findings
    assert not re.search(r"\d\.\d+e[+-]\d", md)  # the reference table's 2.801e+04 among them


def test_tiny_curve_gaps_print_without_exponents(tmp_path):
    """Four runs a few millionths apart: the sentence under 'Training curves' states the gaps as
    decimals (0.0000044), as the tables print numbers, never 4.4e-06."""
    base = {"epoch": [1, 2], "train_loss": [0.7, 0.5], "train_acc": [0.7, 0.8], "test_acc": [0.75, 0.8]}
    metrics = pd.concat([pd.DataFrame(base).assign(run=f"r{i}", train_loss=[0.7, 0.5 + i * 4.4e-6 / 3])
                         for i in range(4)])
    md = curves_section(metrics, pd.DataFrame(), {f"r{i}": f"r{i}" for i in range(4)}, tmp_path)
    assert "coincide" in md and "0.0000044 in train loss" in md
    assert not re.search(r"\de[+-]\d", md), md
