"""scaling_table, effective_bn_batch and accuracy_vs_per_rank_batch."""
from __future__ import annotations

import math

import pytest

from analysis.stats.seed_groups import group_stats
from analysis.stats.weak_scaling import accuracy_vs_per_rank_batch, scaling_table
from tests.statsdata import T_TABLE, make_runs, scaling_runs


def test_scaling_speedup_and_efficiency_by_hand():
    sc = scaling_table(group_stats(scaling_runs())).set_index(["variant", "per_rank_batch", "world_size"])
    assert len(sc) == 4
    base = sc.loc[("nn", 64, 1)]
    assert base["speedup"] == 1.0 and base["efficiency"] == 1.0 and base["note"] == "baseline"
    assert math.isnan(base["speedup_ci95_low"])  # no interval of the baseline against itself
    w4 = sc.loc[("nn", 64, 4)]
    se = math.sqrt(2 * 0.01**2 / 3)  # both CVs 0.01, n=3
    assert w4["speedup"] == pytest.approx(3.6)
    assert w4["efficiency"] == pytest.approx(0.9)
    assert w4["speedup_ci95_low"] == pytest.approx(3.6 * math.exp(-T_TABLE[4] * se), abs=1e-6)
    assert w4["efficiency_ci95_high"] == pytest.approx(0.9 * math.exp(T_TABLE[4] * se), abs=1e-6)
    assert w4["global_batch"] == 256 and w4["note"] == ""
    for key in [("nn", 32, 2), ("sync", 64, 2)]:  # another batch's / variant's baseline never used
        assert math.isnan(sc.loc[key, "speedup"]) and math.isnan(sc.loc[key, "efficiency"])
        assert sc.loc[key, "note"] == "no world size 1 baseline"



def test_whole_world_sync_scales_against_its_world_size_1_run():
    # As run directories record it: a synchronising variant's group is the whole world (W of W).
    sc = scaling_table(group_stats(make_runs(
        {"variant": "scratch-sync", "world_size": 1, "bn_group_size": 1, "examples_per_s": [1000.0, 1010.0]},
        {"variant": "scratch-sync", "world_size": 2, "bn_group_size": 2, "examples_per_s": [1500.0, 1515.0]},
        {"variant": "scratch-sync", "world_size": 4, "bn_group_size": 4, "examples_per_s": [2800.0, 2828.0]},
        {"variant": "scratch-sync", "world_size": 4, "bn_group_size": 2, "examples_per_s": [3000.0, 3030.0]},
    ))).set_index(["world_size", "bn_group_size"])
    assert sc.loc[(2, 2), "speedup"] == pytest.approx((1500.0 + 1515.0) / (1000.0 + 1010.0))
    assert sc.loc[(4, 4), "efficiency"] == pytest.approx((2800.0 + 2828.0) / (1000.0 + 1010.0) / 4)
    assert sc.loc[(4, 2), "note"] == "no world size 1 baseline"  # sync over 2 of 4: another configuration
    assert sc["bn_scope"].to_dict() == {(1, 1): "world", (2, 2): "world", (4, 4): "world", (4, 2): "2 ranks"}


def test_effective_bn_batch_per_variant():
    runs = make_runs(
        {"variant": "nn", "world_size": 4, "per_rank_batch": 16, "test_acc": [0.86, 0.88]},
        {"variant": "nn", "per_rank_batch": 16, "bn_emulate_ranks": 4, "test_acc": [0.85, 0.87]},
        {"variant": "sync", "world_size": 4, "per_rank_batch": 16, "test_acc": [0.88, 0.90]},
        {"variant": "sync", "world_size": 4, "per_rank_batch": 16, "bn_group_size": 2,
         "test_acc": [0.87, 0.89]},
        {"variant": "scratch-sync", "world_size": 2, "per_rank_batch": 8, "test_acc": 0.8},
    )
    acc = accuracy_vs_per_rank_batch(group_stats(runs))
    got = {(r["variant"], r["world_size"], r["bn_group_size"], r["bn_emulate_ranks"]):
           r["effective_bn_batch"] for r in acc.to_dict("records")}
    assert got == {("nn", 4, 0, 1): 16, ("nn", 1, 0, 4): 4, ("sync", 4, 0, 1): 64,
                   ("sync", 4, 2, 1): 32, ("scratch-sync", 2, 0, 1): 16}
    nn4 = acc[(acc["variant"] == "nn") & (acc["world_size"] == 4)].iloc[0]
    # s² = 2·0.01² / 1; accuracy's interval is on the logit scale, se(logit m) = (s/√n) / (m(1 − m))
    half = T_TABLE[1] * (math.sqrt(0.0002) / math.sqrt(2)) / (0.87 * 0.13)
    assert nn4["test_acc_mean"] == pytest.approx(0.87)
    assert nn4["test_acc_ci95_low"] == pytest.approx(1 / (1 + math.exp(-(math.log(0.87 / 0.13) - half))), abs=1e-6)
    assert list(acc["variant"]) == ["nn", "nn", "sync", "sync", "scratch-sync"]


