"""analysis.micro / render_micro on hand-made micro-benchmark rows."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.micro import load_micro, micro_table
from analysis.render_micro import micro_section

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
    assert "| s | 2x3 | bfloat16 | scratch+compile | 8 | 1.5 | 4 | 30 | 0.8 | 15 |" in text
    assert "1 of 3 measurements" in text
    assert (tmp_path / "micro_ratio_to_copy.png").stat().st_size > 1000


def test_no_csv_is_an_error():
    with pytest.raises(ValueError):
        load_micro([])
