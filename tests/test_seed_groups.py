"""group_stats: runs grouped by configuration, each metric's mean and interval in its own space."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis.stats.seed_groups import CONFIG_KEY, ONE_SEED_NOTE, group_stats
from tests.statsdata import T_TABLE, make_runs


def expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_group_mean_std_and_logit_interval_by_hand():
    gs = group_stats(make_runs({"test_acc": [0.80, 0.82, 0.84]}))
    assert len(gs) == 1
    r = gs.iloc[0]
    # Accuracy is a proportion: the t interval is built on the logit of the mean, with the delta
    # method's se(logit m) = (s/√n) / (m(1 − m)), and mapped back.
    centre, half = math.log(0.82 / 0.18), T_TABLE[2] * (0.02 / math.sqrt(3)) / (0.82 * 0.18)
    assert r["n_seeds"] == 3 and r["test_acc_n"] == 3
    assert r["test_acc_mean"] == pytest.approx(0.82)
    assert r["test_acc_std"] == pytest.approx(0.02)
    assert r["test_acc_ci95_low"] == pytest.approx(expit(centre - half), abs=1e-6)
    assert r["test_acc_ci95_high"] == pytest.approx(expit(centre + half), abs=1e-6)
    assert r["note"] == ""
    assert r["runs"] == "nn-w1-b64-s0 nn-w1-b64-s1 nn-w1-b64-s2"


def test_metric_without_a_known_range_keeps_the_raw_t_interval():
    r = group_stats(make_runs({"score": [0.80, 0.82, 0.84]}), metrics=("score",)).iloc[0]
    half = T_TABLE[2] * 0.02 / math.sqrt(3)  # 0.0496828
    assert r["score_ci95_low"] == pytest.approx(0.82 - half, abs=1e-6)
    assert r["score_ci95_high"] == pytest.approx(0.82 + half, abs=1e-6)


def test_configurations_are_never_pooled():
    runs = make_runs({"per_rank_batch": 32, "test_acc": [0.80, 0.82]},
                     {"per_rank_batch": 64, "test_acc": [0.90, 0.94]},
                     {"per_rank_batch": 64, "mode": "compile", "test_acc": [0.70, 0.72]})
    gs = group_stats(runs, metrics=("test_acc",)).set_index(["per_rank_batch", "mode"])
    assert len(gs) == 3
    assert gs.loc[(32, "eager"), "test_acc_mean"] == pytest.approx(0.81)
    assert gs.loc[(64, "eager"), "test_acc_mean"] == pytest.approx(0.92)
    assert gs.loc[(64, "compile"), "test_acc_mean"] == pytest.approx(0.71)
    assert gs.loc[(64, "eager"), "global_batch"] == 64
    assert set(gs.columns) >= {"test_acc_mean", "test_acc_std", "note"}
    assert "examples_per_s_mean" not in gs.columns


def test_one_seed_group_has_no_interval_and_a_note():
    gs = group_stats(make_runs({"test_acc": 0.83}))
    r = gs.iloc[0]
    assert r["n_seeds"] == 1 and r["test_acc_mean"] == pytest.approx(0.83)
    assert math.isnan(r["test_acc_std"]) and math.isnan(r["test_acc_ci95_low"])
    assert math.isnan(r["test_acc_ci95_high"])
    assert r["note"] == ONE_SEED_NOTE == "1 seed: no interval"


def test_two_seed_group_says_its_interval_is_wide():
    r = group_stats(make_runs({"examples_per_s": [1000.0, 3000.0]})).iloc[0]
    assert f"t = {T_TABLE[1]:.1f}" in r["note"] and "very wide" in r["note"]
    # mean 2000, s = 1414.2: the raw t interval reached below zero (2000 − 12.7·1000). Examples/s is
    # positive, so the interval is built on the log scale, exp(log m ± t·(s/m)/√n), and stays above 0.
    half = T_TABLE[1] * (math.sqrt(2) * 1000.0 / 2000.0) / math.sqrt(2)
    assert r["examples_per_s_ci95_low"] == pytest.approx(2000.0 * math.exp(-half))
    assert r["examples_per_s_ci95_high"] == pytest.approx(2000.0 * math.exp(half))
    assert 0 < r["examples_per_s_ci95_low"] < 2000.0 < r["examples_per_s_ci95_high"]


@pytest.mark.parametrize("metric,values", [
    ("examples_per_s", [100.0, 9000.0]), ("step_ms_p50", [0.5, 40.0]), ("peak_mem_bytes", [1e6, 9e8]),
    ("train_loss", [0.01, 2.0]), ("test_acc", [0.05, 0.97]), ("train_acc", [0.90, 1.0]),
])
def test_two_seed_intervals_never_leave_the_metric_range(metric, values):
    r = group_stats(make_runs({metric: values}), metrics=(metric,)).iloc[0]
    raw_half = scipy_stats.t.ppf(0.975, 1) * float(pd.Series(values).std()) / math.sqrt(2)
    mean = sum(values) / 2
    # the raw-scale t interval leaves the range: below zero, or above 1 for an accuracy
    assert mean - raw_half < 0 or (metric.endswith("_acc") and mean + raw_half > 1)
    lo, hi = r[f"{metric}_ci95_low"], r[f"{metric}_ci95_high"]
    assert 0 < lo < mean < hi
    if metric.endswith("_acc"):
        assert hi < 1


def test_every_seed_equal_gives_a_point_interval_even_at_full_accuracy():
    r = group_stats(make_runs({"test_acc": [1.0, 1.0, 1.0], "examples_per_s": [500.0] * 3})).iloc[0]
    assert (r["test_acc_ci95_low"], r["test_acc_ci95_high"]) == (1.0, 1.0)
    assert (r["examples_per_s_ci95_low"], r["examples_per_s_ci95_high"]) == (500.0, 500.0)


def test_accuracy_as_a_percentage_is_rejected_by_group_stats():
    with pytest.raises(ValueError, match="test_acc: must be a fraction"):
        group_stats(make_runs({"test_acc": [80.0, 82.0]}))


def test_incomplete_runs_are_excluded_and_counted():
    runs = make_runs({"test_acc": [0.80, 0.84, 0.10, math.nan],
                      "status": ["complete", "complete", "failed", "diverged"]})
    r = group_stats(runs).iloc[0]
    assert r["n_seeds"] == 2 and r["n_incomplete"] == 2
    assert r["test_acc_mean"] == pytest.approx(0.82)
    assert r["test_acc_std"] == pytest.approx(math.sqrt(0.0008))  # (0.02² + 0.02²) / 1
    assert r["note"] == "2 seeds: t = 12.7, interval very wide; excluded: diverged 1, failed 1"


def test_config_with_only_failed_runs_has_zero_seeds():
    r = group_stats(make_runs({"status": ["failed", "failed"]})).iloc[0]
    assert r["n_seeds"] == 0 and r["n_incomplete"] == 2 and math.isnan(r["test_acc_mean"])
    assert r["note"] == "no complete run; excluded: failed 2"


def test_missing_config_column_raises():
    with pytest.raises(KeyError, match="bn_emulate_ranks"):
        group_stats(make_runs({}).drop(columns="bn_emulate_ranks"))



def test_config_key_has_no_seed_run_status_or_metric():
    assert not {"seed", "run", "status", "test_acc", "examples_per_s"} & set(CONFIG_KEY)
