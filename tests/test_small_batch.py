"""The small-batch preset lists its cells; the report draws accuracy against examples per BN statistic
and states the drop at 2 against 32 with Welch's interval, computed here by hand."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats as sps

from analysis.render.small_batch_section import PNG, small_batch_section
from analysis.stats.small_batch import X, curve, drops
from launch.sweep import main as sweep_main


def test_the_small_batch_preset_lists_its_cells(tmp_path, capsys):
    assert sweep_main(["--preset", "small-batch", "--out", str(tmp_path), "--dry-run"]) == 0
    listed = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    splits = {1: "", 8: "-e8", 16: "-e16", 32: "-e32", 64: "-e64", 128: "-e128"}  # 256 / K examples each
    want = [f"lenet-{v}-ws1-b256{e}-s{seed}" for seed in range(5)
            for v, e in [*(("nn", e) for e in splits.values()), ("sync", ""), ("gn", "")]]
    assert listed == want


def _groups() -> pd.DataFrame:
    """group_stats-like rows: nn at 256 / K examples per statistic, sync and gn once each."""
    rows = []
    for variant, k, accs in [("nn", 1, [0.88, 0.87, 0.89]), ("nn", 8, [0.87, 0.88, 0.86]),
                             ("nn", 128, [0.50, 0.46, 0.53]), ("sync", 1, [0.88, 0.88, 0.87]),
                             ("gn", 1, [0.85, 0.86, 0.84])]:
        s = pd.Series(accs)
        half = sps.t.ppf(0.975, 2) * s.std() / math.sqrt(3)
        rows.append({"variant": variant, "model": "lenet", "world_size": 1, "per_rank_batch": 256,
                     "global_batch": 256, "epochs": 10, "lr": 1.0, "limit_train": None, "data": "fashion-mnist",
                     "image_size": None, "mode": "eager", "amp": "none", "steps": None, "bn_emulate_ranks": k,
                     "n_seeds": 3, "test_acc_mean": s.mean(), "test_acc_std": s.std(),
                     "test_acc_ci95_low": s.mean() - half, "test_acc_ci95_high": s.mean() + half, "_accs": accs})
    return pd.DataFrame(rows)


def test_curve_puts_each_split_at_its_examples_per_statistic_and_draws_the_others_flat():
    c = curve(_groups())
    nn = c[c["variant"] == "nn"]
    assert sorted(nn[X]) == [2.0, 32.0, 256.0] and not nn["flat"].any()
    for v in ("sync", "gn"):
        flat = c[c["variant"] == v]
        assert sorted(flat[X]) == [2.0, 32.0, 256.0] and flat["flat"].all() and flat["test_acc_mean"].nunique() == 1


def test_the_drop_at_2_against_32_is_welchs_interval_in_points():
    g = _groups()
    a, b = (pd.Series(g.loc[(g["variant"] == "nn") & (g["bn_emulate_ranks"] == k), "_accs"].iloc[0])
            for k in (8, 128))
    va, vb = a.var() / 3, b.var() / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    half = 100 * sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    d = drops(curve(g)).set_index(["a", "b"])
    row = d.loc[("nn at 32", "nn at 2")]
    assert row["diff_pts"] == pytest.approx(100 * (b.mean() - a.mean()))
    assert (row["diff_ci95_low"], row["diff_ci95_high"]) == pytest.approx((row["diff_pts"] - half,
                                                                           row["diff_pts"] + half))
    assert ("nn at 2", "gn at 2") in d.index and ("nn at 2", "sync at 2") in d.index


def test_section_draws_the_figure_and_states_the_drop(tmp_path):
    md = small_batch_section(_groups(), tmp_path)
    assert (tmp_path / PNG).stat().st_size > 0
    drop = 100 * (sum([0.50, 0.46, 0.53]) - sum([0.87, 0.88, 0.86])) / 3
    assert f"nn at 2 − nn at 32 examples per statistic: {drop:.1f} points [" in md
    assert "34.7" in md  # the Group Normalization anchor, BN at 2 images per GPU
    rows = {tuple(c.strip() for c in line.split("|")[2:4]) for line in md.splitlines() if line.startswith("| ")}
    assert {("nn", "2"), ("nn", "32"), ("sync", "all 256"), ("gn", "none (per example)")} <= rows  # flat: no x
    assert small_batch_section(_groups().query("bn_emulate_ranks == 1"), tmp_path / "none") == ""
