"""analysis.load.micro_csv, analysis.transform.micro_rows and analysis.render.micro_section on hand-made micro-benchmark rows."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.load.micro_csv import load_micro
from analysis.render.micro_section import micro_section
from analysis.transform.micro_rows import micro_table

COLS = ["device", "shape_name", "shape", "dtype", "variant", "compiled", "op", "reps", "time_us_median",
        "gb_per_s", "ratio_to_copy", "iqr_over_median"]


def _frame(rows):
    return pd.DataFrame(rows, columns=COLS)


def test_load_keeps_each_measurement_once(tmp_path):
    a = _frame([["cuda:0", "s", "2x3", "float32", "copy", False, "copy", 30, 2.0, 6.0, 1.0, 0.01],
                ["cuda:0", "s", "2x3", "float32", "nn", False, "forward", 30, 6.0, 2.0, 3.0, 0.01]])
    b = _frame([["cuda:0", "s", "2x3", "float32", "copy", False, "copy", 30, 2.2, 5.0, 1.0, 0.01],
                ["cuda:0", "s", "2x3", "float32", "nn", True, "forward", 30, 3.0, 4.0, 1.5, 0.2]])
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    df = load_micro([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert len(df) == 3 and df.loc[df["variant"] == "copy", "time_us_median"].tolist() == [2.0]
    assert df["compiled"].tolist() == [False, False, True]


def test_table_puts_both_passes_on_one_row_and_section_flags_noise(tmp_path):
    df = _frame([["cpu", "s", "2x3", "bfloat16", "copy", False, "copy", 20, 2.0, 6.0, 1.0, 0.0],
                 ["cpu", "s", "2x3", "bfloat16", "scratch", True, "forward", 20, 8.0, 1.5, 4.0, 0.5],
                 ["cpu", "s", "2x3", "bfloat16", "scratch", True, "forward_backward", 20, 30.0, 0.8, 15.0, 0.0]])
    t = micro_table(df).set_index("impl")
    assert t.loc["scratch+compile", "forward_us"] == 8.0
    assert t.loc["scratch+compile", "forward_backward_x_copy"] == 15.0
    assert t.loc["copy", "forward_x_copy"] == 1.0 and math.isnan(t.loc["copy", "forward_backward_us"])
    text = micro_section(df, tmp_path)
    # the only layer measured is the fastest of its shape and dtype in both passes
    assert "| s | 2x3 | bfloat16 | scratch+compile | 8 | 1.5 | 4 | 30 | 0.8 | 15 | forward, forward+backward |" in text
    assert "1 of 3 measurements" in text
    assert (tmp_path / "micro_ratio_to_copy.png").stat().st_size > 1000


def test_no_csv_is_an_error():
    with pytest.raises(ValueError):
        load_micro([])


def test_report_marks_the_fastest_variant_of_each_shape_and_dtype(tmp_path):
    """A CSV as bench.micro writes it: copy, nn, scratch and fused for two shapes and two dtypes,
    with a different winner in each and a tie (b, float32, forward) that marks both."""
    times = {  # (shape, dtype) -> impl -> (forward_us, forward_backward_us); the copy takes 10 us
        ("a", "float32"): {"nn": (40, 160), "scratch": (90, 300), "fused": (20, 70)},
        ("a", "bfloat16"): {"nn": (30, 100), "scratch": (80, 260), "fused": (35, 90)},
        ("b", "float32"): {"nn": (12, 50), "scratch": (60, 200), "fused": (12, 55)},
        ("b", "bfloat16"): {"nn": (25, 100), "scratch": (15, 150), "fused": (30, 140)},
    }
    rows = []
    for (shape, dtype), impls in times.items():
        rows.append(["cpu", shape, "4x3", dtype, "copy", False, "copy", 20, 10.0, 1.0, 1.0, 0.0])
        for impl, (fwd, fwd_bwd) in impls.items():
            for op, t in (("forward", fwd), ("forward_backward", fwd_bwd)):
                rows.append(["cpu", shape, "4x3", dtype, impl, False, op, 20, float(t), 1.0, t / 10, 0.0])
    _frame(rows).to_csv(tmp_path / "micro.csv", index=False)
    text = micro_section(load_micro([tmp_path / "micro.csv"]), tmp_path / "fig")
    lines = {tuple(cell.strip() for cell in line.strip("|").split("|")[:4]): line
             for line in text.splitlines() if line.startswith("| ")}
    for (shape, dtype), impls in times.items():
        for k, words in enumerate(("forward", "forward+backward")):
            best = min(t[k] for t in impls.values())
            for impl, t in impls.items():
                cells = [c.strip() for c in lines[(shape, "4x3", dtype, impl)].strip("|").split("|")]
                assert (cells[4], cells[6]) == (f"{t[0]:g}", f"{t[0] / 10:g}")  # time, ratio to copy
                assert (words in cells[-1].split(", ")) == (t[k] == best), (shape, dtype, impl, cells)
        copy_cells = lines[(shape, "4x3", dtype, "copy")].strip("|").split("|")
        assert copy_cells[-1].strip() == ""  # the copy is the yardstick, never the winner
