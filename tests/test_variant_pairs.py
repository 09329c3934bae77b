"""pairwise / compare_variants: Welch differences, log-scale ratios and the verdicts they give."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.stats.intervals import t_quantile
from analysis.stats.variant_pairs import compare_variants, pairwise
from tests.statsdata import T_TABLE, make_runs


def test_welch_difference_clear_case_by_hand():
    runs = make_runs({"variant": "scratch", "test_acc": [0.80, 0.82, 0.84]},
                     {"variant": "nn", "test_acc": [0.90, 0.92, 0.94]})
    r = compare_variants(runs, "test_acc", "scratch", "nn").iloc[0]
    # Equal variances (0.0004) and n: Welch df = 2(n-1) = 4; se = sqrt(2 * 0.0004 / 3).
    se = math.sqrt(0.0004 / 3 + 0.0004 / 3)
    lo, hi = 0.10 - T_TABLE[4] * se, 0.10 + T_TABLE[4] * se
    assert r["df"] == pytest.approx(4.0)
    assert r["estimate"] == pytest.approx(0.10)
    assert r["ci95_low"] == pytest.approx(lo, abs=1e-6)
    assert r["ci95_high"] == pytest.approx(hi, abs=1e-6)
    assert r["verdict"] == f"nn more accurate: +10.0 pts [{100 * lo:.1f}, {100 * hi:.1f}]"
    assert r["verdict"] == "nn more accurate: +10.0 pts [5.5, 14.5]"


def test_welch_difference_unequal_n_and_variance():
    runs = make_runs({"variant": "scratch", "test_acc": [0.80, 0.82, 0.84]},
                     {"variant": "nn", "test_acc": [0.86, 0.88, 0.90, 0.92]})
    r = compare_variants(runs, "test_acc", "scratch", "nn").iloc[0]
    ta, tb = 0.0004 / 3, (0.002 / 3) / 4
    df = (ta + tb) ** 2 / (ta**2 / 2 + tb**2 / 3)
    half = t_quantile(df) * math.sqrt(ta + tb)
    assert r["df"] == pytest.approx(df)
    assert (r["ci95_low"], r["ci95_high"]) == pytest.approx((0.07 - half, 0.07 + half))
    # t at df≈4.96 lies between the table's t_{.975,4} and t_{.975,5}=2.570582.
    assert 2.570582 < t_quantile(df) < T_TABLE[4]


def test_difference_within_noise():
    runs = make_runs({"variant": "scratch", "test_acc": [0.80, 0.82, 0.84]},
                     {"variant": "nn", "test_acc": [0.83, 0.85, 0.87]})
    r = compare_variants(runs, "test_acc", "scratch", "nn").iloc[0]
    se = math.sqrt(2 * 0.0004 / 3)
    assert r["ci95_low"] == pytest.approx(0.03 - T_TABLE[4] * se, abs=1e-6)  # -0.0153 < 0
    assert r["verdict"] == "within noise"


THROUGHPUT = ({"variant": "scratch", "examples_per_s": [990.0, 1000.0, 1010.0]},
              {"variant": "nn", "examples_per_s": [1663.2, 1680.0, 1696.8]})


def test_throughput_ratio_log_delta_interval_by_hand():
    r = compare_variants(make_runs(*THROUGHPUT), "examples_per_s", "scratch", "nn").iloc[0]
    # Both CVs are 0.01 with n=3: se(log ratio) = sqrt(2 * 0.01² / 3), Welch df = 4.
    se = math.sqrt(2 * 0.01**2 / 3)
    lo, hi = 1.68 * math.exp(-T_TABLE[4] * se), 1.68 * math.exp(T_TABLE[4] * se)
    assert r["comparison"] == "ratio" and r["estimate"] == pytest.approx(1.68)
    assert r["df"] == pytest.approx(4.0)
    assert (r["ci95_low"], r["ci95_high"]) == pytest.approx((lo, hi), abs=1e-6)
    assert r["verdict"] == "nn faster: 1.68× [1.64, 1.72]"


def fieller(ma, va, mb, vb, t):
    """Fieller's interval for mb/ma, independent samples (va, vb = variances of the means)."""
    qa, qb, qc = ma**2 - t**2 * va, -2 * ma * mb, mb**2 - t**2 * vb
    root = math.sqrt(qb**2 - 4 * qa * qc)
    return (-qb - root) / (2 * qa), (-qb + root) / (2 * qa)


def test_ratio_interval_agrees_with_fieller_at_small_cv():
    runs = make_runs({"variant": "scratch", "examples_per_s": [980.0, 1000.0, 1030.0, 1010.0]},
                     {"variant": "nn", "examples_per_s": [1500.0, 1540.0, 1480.0]})
    r = compare_variants(runs, "examples_per_s", "scratch", "nn").iloc[0]
    a, b = pd.Series([980.0, 1000.0, 1030.0, 1010.0]), pd.Series([1500.0, 1540.0, 1480.0])
    lo, hi = fieller(a.mean(), a.var() / 4, b.mean(), b.var() / 3, t_quantile(r["df"]))
    assert r["estimate"] == pytest.approx(b.mean() / a.mean())
    assert r["ci95_low"] == pytest.approx(lo, rel=2e-3)
    assert r["ci95_high"] == pytest.approx(hi, rel=2e-3)


def test_ratio_verdict_reversed_pair_and_within_noise():
    runs = make_runs(*THROUGHPUT)
    r = compare_variants(runs, "examples_per_s", "nn", "scratch").iloc[0]
    assert r["estimate"] == pytest.approx(1 / 1.68)
    assert r["verdict"] == "nn faster: 1.68× [1.64, 1.72]"
    close = make_runs(THROUGHPUT[0], {"variant": "nn", "examples_per_s": [995.0, 1005.0, 1015.0]})
    assert compare_variants(close, "examples_per_s", "scratch", "nn").iloc[0]["verdict"] == "within noise"


def test_step_time_lower_is_better():
    runs = make_runs({"variant": "scratch", "step_ms_p50": [9.9, 10.0, 10.1]},
                     {"variant": "nn", "step_ms_p50": [4.95, 5.0, 5.05]})
    r = compare_variants(runs, "step_ms_p50", "scratch", "nn").iloc[0]
    se = math.sqrt(2 * 0.01**2 / 3)
    lo, hi = 2 * math.exp(-T_TABLE[4] * se), 2 * math.exp(T_TABLE[4] * se)
    assert r["estimate"] == pytest.approx(0.5)
    assert r["verdict"] == f"nn faster (p50 step): 2.00× [{lo:.2f}, {hi:.2f}]"


def test_pairwise_one_row_per_config_pair_metric_and_no_cross_config_pairs():
    runs = make_runs(
        {"variant": "scratch", "test_acc": [0.80, 0.82, 0.84]},
        {"variant": "nn", "test_acc": [0.83, 0.85, 0.87]},
        {"variant": "sync", "test_acc": [0.81, 0.82, 0.83]},
        {"variant": "nn", "per_rank_batch": 32, "test_acc": [0.7, 0.72]},  # no partner
    )
    pw = pairwise(runs, metrics=("test_acc", "examples_per_s"))
    assert len(pw) == 3 * 2  # pairs (scratch,nn) (scratch,sync) (nn,sync) × 2 metrics
    assert set(pw["per_rank_batch"]) == {64}
    pairs = set(zip(pw["variant_a"], pw["variant_b"]))
    assert pairs == {("scratch", "nn"), ("scratch", "sync"), ("nn", "sync")}
    assert set(pw["comparison"]) == {"difference", "ratio"}


def test_accuracy_given_as_percentage_is_rejected():
    runs = make_runs({"variant": "scratch", "test_acc": [80.0, 82.0]},
                     {"variant": "nn", "test_acc": [90.0, 92.0]})
    with pytest.raises(ValueError, match="fraction"):
        compare_variants(runs, "test_acc", "scratch", "nn")


def test_pairwise_one_seed_side_has_no_interval():
    runs = make_runs({"variant": "scratch", "test_acc": [0.80, 0.82, 0.84]},
                     {"variant": "nn", "test_acc": 0.9})
    r = compare_variants(runs, "test_acc", "scratch", "nn").iloc[0]
    assert r["estimate"] == pytest.approx(0.08) and math.isnan(r["ci95_low"])
    assert r["verdict"] == "too few seeds: no interval"



def test_local_and_whole_world_variants_pair_at_the_same_world_size():
    # As run directories record group sizes: nn 1, scratch-sync over the world 4, sync over 2 of 4.
    runs = make_runs(
        {"variant": "nn", "world_size": 4, "bn_group_size": 1, "examples_per_s": [4000.0, 4040.0]},
        {"variant": "scratch-sync", "world_size": 4, "bn_group_size": 4, "examples_per_s": [3000.0, 3030.0]},
        {"variant": "sync", "world_size": 4, "bn_group_size": 2, "examples_per_s": [2000.0, 2020.0]},
        {"variant": "sync", "world_size": 4, "bn_group_size": 4, "examples_per_s": [1000.0, 1010.0]},
    )
    got = pairwise(runs, metrics=("examples_per_s",))
    est = {(a, b): e for a, b, e in zip(got["variant_a"], got["variant_b"], got["estimate"])}
    assert est[("nn", "scratch-sync")] == pytest.approx(3015.0 / 4020.0)
    assert est[("nn", "sync")] == pytest.approx(1005.0 / 4020.0)
    assert est[("sync", "sync (2 ranks)")] == pytest.approx(2010.0 / 1005.0)
    assert len(est) == 6  # every pair of the four configurations, none lost to a shared name
