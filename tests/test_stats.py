"""Tests for analysis/stats.py, analysis/mdtable.py and analysis/render_sweep.py.

Expected values are computed here by hand from the formulas, with Student-t critical values taken
from printed tables, never from the code under test.
"""
from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.mdtable import to_markdown
from analysis.render_sweep import CSV_NAMES, PNG_NAMES, sweep_section
from analysis.intervals import t_quantile, welch_df
from analysis.stats import (
    CONFIG_KEY, ONE_SEED_NOTE, accuracy_vs_per_rank_batch, compare_variants, group_stats,
    pairwise, scaling_table,
)

# Two-sided 95 % critical values t_{0.975, df} from a printed t table.
T_TABLE = {1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445, 10: 2.228139, 30: 2.042272}

BASE = dict(variant="nn", model="lenet_bn", world_size=1, per_rank_batch=64, epochs=2,
            mode="eager", amp="none", bn_group_size=0, lr=0.1, limit_train=0, device="cpu",
            bn_emulate_ranks=1, status="complete", train_loss=0.5, train_acc=0.85, test_acc=0.8,
            examples_per_s=1000.0, examples_per_s_per_rank=1000.0, step_ms_p50=10.0,
            step_ms_p90=12.0, peak_mem_bytes=1e6)


def make_runs(*specs: dict) -> pd.DataFrame:
    """Each spec overrides BASE; a list value makes one run (seed) per element."""
    rows = []
    for spec in specs:
        lists = {k: v for k, v in spec.items() if isinstance(v, list)}
        n = len(next(iter(lists.values()))) if lists else 1
        for i in range(n):
            row = {**BASE, **{k: v for k, v in spec.items() if k not in lists},
                   **{k: v[i] for k, v in lists.items()}, "seed": i}
            row["global_batch"] = row["per_rank_batch"] * row["world_size"]
            row["run"] = f"{row['variant']}-w{row['world_size']}-b{row['per_rank_batch']}-s{i}"
            rows.append(row)
    return pd.DataFrame(rows)


def t_cdf(x: float, df: float, steps: int = 20000) -> float:
    """Student-t CDF by Simpson integration of the density: an independent check of t_quantile."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    f = lambda u: c * (1 + u * u / df) ** (-(df + 1) / 2)  # noqa: E731
    h = x / steps
    s = f(0) + f(x) + sum((4 if i % 2 else 2) * f(i * h) for i in range(1, steps))
    return 0.5 + s * h / 3


# ---------------------------------------------------------------- t quantile, Welch df

@pytest.mark.parametrize("df", sorted(T_TABLE))
def test_t_quantile_matches_printed_table(df):
    assert t_quantile(df) == pytest.approx(T_TABLE[df], abs=2e-6)


@pytest.mark.parametrize("df", [2.5, 4.959, 17.3])
def test_t_quantile_non_integer_df_inverts_integrated_cdf(df):
    assert t_cdf(t_quantile(df), df) == pytest.approx(0.975, abs=1e-7)


def test_welch_df_by_hand():
    # a: n=3, s²=0.0004; b: n=4, s²=0.002/3. Terms 0.0004/3 and 0.0005/3.
    ta, tb = 0.0004 / 3, (0.002 / 3) / 4
    expected = (ta + tb) ** 2 / (ta**2 / 2 + tb**2 / 3)
    assert welch_df(0.0004, 3, 0.002 / 3, 4) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(4.959, abs=1e-3)


# ---------------------------------------------------------------- group_stats

def test_group_mean_std_and_t_interval_by_hand():
    gs = group_stats(make_runs({"test_acc": [0.80, 0.82, 0.84]}))
    assert len(gs) == 1
    r = gs.iloc[0]
    half = T_TABLE[2] * 0.02 / math.sqrt(3)  # 0.0496828
    assert r["n_seeds"] == 3 and r["test_acc_n"] == 3
    assert r["test_acc_mean"] == pytest.approx(0.82)
    assert r["test_acc_std"] == pytest.approx(0.02)
    assert r["test_acc_ci95_low"] == pytest.approx(0.82 - half, abs=1e-6)
    assert r["test_acc_ci95_high"] == pytest.approx(0.82 + half, abs=1e-6)
    assert r["note"] == ""


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
    # mean 2000, s = 1414.2: the t interval reaches below zero, which is why the note is there
    assert r["examples_per_s_ci95_low"] == pytest.approx(2000.0 - T_TABLE[1] * 1000.0)


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


# ---------------------------------------------------------------- pairwise comparisons

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


# ---------------------------------------------------------------- scaling and accuracy tables

def scaling_runs() -> pd.DataFrame:
    return make_runs(
        {"world_size": 1, "examples_per_s": [990.0, 1000.0, 1010.0]},
        {"world_size": 4, "examples_per_s": [3564.0, 3600.0, 3636.0]},
        {"world_size": 2, "per_rank_batch": 32, "examples_per_s": [1800.0, 1900.0]},
        {"world_size": 2, "variant": "sync", "examples_per_s": [1500.0, 1520.0]},
    )


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
    half = T_TABLE[1] * math.sqrt(0.0002) / math.sqrt(2)  # s² = 2·0.01² / 1
    assert nn4["test_acc_mean"] == pytest.approx(0.87)
    assert nn4["test_acc_ci95_low"] == pytest.approx(0.87 - half, abs=1e-6)
    assert list(acc["variant"]) == ["nn", "nn", "sync", "sync", "scratch-sync"]


# ---------------------------------------------------------------- markdown and rendering

def test_to_markdown_formats_cells():
    df = pd.DataFrame({"variant": ["nn", "a|b"], "acc": [0.81234, math.nan], "n": [3, 4]})
    assert to_markdown(df, ".2f") == ("| variant | acc | n |\n| --- | ---: | ---: |\n"
                                      "| nn | 0.81 | 3 |\n| a\\|b | – | 4 |")


def test_sweep_section_writes_csvs_and_plots(tmp_path):
    runs = pd.concat([
        scaling_runs(),
        make_runs({"variant": "scratch", "examples_per_s": [590.0, 600.0, 610.0],
                   "test_acc": [0.80, 0.82, 0.84]}),
        make_runs({"variant": "nn", "status": "failed", "test_acc": 0.1}),
    ], ignore_index=True)
    md = sweep_section(runs, tmp_path)
    for name in list(CSV_NAMES.values()) + list(PNG_NAMES.values()):
        assert (tmp_path / name).stat().st_size > 0, name
    groups = pd.read_csv(tmp_path / CSV_NAMES["groups"])
    assert len(groups) == 5
    scratch = groups[groups["variant"] == "scratch"].iloc[0]
    assert scratch["test_acc_mean"] == pytest.approx(0.82)
    assert scratch["test_acc_ci95_high"] == pytest.approx(0.82 + T_TABLE[2] * 0.02 / math.sqrt(3))
    nn1 = groups[(groups["variant"] == "nn") & (groups["world_size"] == 1)].iloc[0]
    assert nn1["n_seeds"] == 3 and nn1["n_incomplete"] == 1
    scaling = pd.read_csv(tmp_path / CSV_NAMES["scaling"])
    w4 = scaling[(scaling["variant"] == "nn") & (scaling["world_size"] == 4)].iloc[0]
    assert w4["speedup"] == pytest.approx(3.6) and w4["efficiency"] == pytest.approx(0.9)
    pw = pd.read_csv(tmp_path / CSV_NAMES["pairwise"])
    eps = pw[(pw["metric"] == "examples_per_s") & (pw["world_size"] == 1)].iloc[0]
    assert (eps["variant_a"], eps["variant_b"]) == ("scratch", "nn")
    assert eps["estimate"] == pytest.approx(1000 / 600)
    assert eps["verdict"].startswith("nn faster: 1.67× [")
    acc = pd.read_csv(tmp_path / CSV_NAMES["accuracy"])
    assert set(acc["effective_bn_batch"]) == {64, 32, 128}
    assert "Student-t" in md and "Welch" in md and "delta-method" in md
    assert "runs excluded (status not complete): 1." in md and "nn faster: 1.67×" in md
    assert f"]({PNG_NAMES['scaling']})" in md
    assert "no world size 1 baseline" in md


def test_sweep_section_empty_when_nothing_to_say(tmp_path):
    runs = make_runs({"variant": "scratch"}, {"variant": "nn"})
    assert sweep_section(runs, tmp_path / "out") == ""
    assert not (tmp_path / "out").exists()


def test_config_key_has_no_seed_run_status_or_metric():
    assert not {"seed", "run", "status", "test_acc", "examples_per_s"} & set(CONFIG_KEY)
