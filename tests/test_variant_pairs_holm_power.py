"""pairwise's added columns: p values, range of accuracy differences, Holm marks, power, within-run rows."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.stats.power import parse_resolve
from analysis.stats.variant_pairs import compare_variants, pairwise
from tests.statsdata import make_runs


def test_difference_interval_and_p_value_are_welchs_as_scipy_computes_them():
    a, b = [0.80, 0.82, 0.84], [0.86, 0.88, 0.90, 0.92]
    r = compare_variants(make_runs({"variant": "scratch", "test_acc": a}, {"variant": "nn", "test_acc": b}),
                         "test_acc", "scratch", "nn").iloc[0]
    welch = scipy_stats.ttest_ind(b, a, equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert r["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    assert (r["ci95_low"], r["ci95_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert r["interval"] == "seeds" and r["std_b"] == pytest.approx(np.std(b, ddof=1))


def test_ratio_p_value_comes_from_the_log_scale_t_statistic():
    a, b = np.array([980.0, 1000.0, 1030.0, 1010.0]), np.array([1020.0, 1060.0, 1000.0])
    r = compare_variants(make_runs({"variant": "scratch", "examples_per_s": list(a)},
                                   {"variant": "nn", "examples_per_s": list(b)}),
                         "examples_per_s", "scratch", "nn").iloc[0]
    rel_a, rel_b = a.var(ddof=1) / a.mean() ** 2 / 4, b.var(ddof=1) / b.mean() ** 2 / 3
    t = math.log(b.mean() / a.mean()) / math.sqrt(rel_a + rel_b)
    df = (rel_a + rel_b) ** 2 / (rel_a**2 / 3 + rel_b**2 / 2)
    assert r["p_value"] == pytest.approx(2 * scipy_stats.t.sf(abs(t), df), rel=1e-9)
    assert (r["p_value"] < 0.05) == (r["ci95_low"] > 1 or r["ci95_high"] < 1)


def test_two_seed_accuracy_difference_stays_within_minus_one_and_one():
    a, b = [0.05, 0.95], [0.10, 0.99]
    r = compare_variants(make_runs({"variant": "scratch", "test_acc": a}, {"variant": "nn", "test_acc": b}),
                         "test_acc", "scratch", "nn").iloc[0]
    ci = scipy_stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert ci.low < -1 and ci.high > 1  # Welch's raw interval leaves [-1, 1]
    assert (r["ci95_low"], r["ci95_high"]) == (-1.0, 1.0)
    assert r["verdict"] == "within noise"


def holm_by_definition(p: dict, alpha: float = 0.05) -> set:
    """Holm's step-down procedure as stated: reject in ascending order while p_(i) <= alpha / (m - i)."""
    rejected, ordered = set(), sorted(p, key=p.get)
    for i, key in enumerate(ordered):
        if p[key] > alpha / (len(ordered) - i):
            break
        rejected.add(key)
    return rejected


def test_holm_marks_the_verdicts_that_survive_the_family():
    # Three batches, scratch vs nn: a clear gap, a marginal one and none; accuracy and throughput.
    specs = []
    for batch, gap in ((32, 0.10), (64, 0.06), (128, 0.0)):
        specs += [{"variant": "scratch", "per_rank_batch": batch, "test_acc": [0.80, 0.82, 0.84],
                   "examples_per_s": [990.0, 1000.0, 1010.0]},
                  {"variant": "nn", "per_rank_batch": batch, "test_acc": [0.80 + gap, 0.82 + gap, 0.84 + gap],
                   "examples_per_s": [1000.0 + 300 * gap, 1010.0 + 300 * gap, 1020.0 + 300 * gap]}]
    pw = pairwise(make_runs(*specs), metrics=("test_acc", "examples_per_s"))
    p = {(m, b): v for m, b, v in zip(pw["metric"], pw["per_rank_batch"], pw["p_value"])}
    survivors = holm_by_definition(p)
    got = {(m, b) for m, b, s in zip(pw["metric"], pw["per_rank_batch"], pw["holm_significant"]) if s}
    assert got == survivors
    uncorrected = {k for k, v in p.items() if v < 0.05}
    assert survivors < uncorrected  # the marginal gaps are significant alone, not in a family of 6
    only_acc = pairwise(make_runs(*specs), metrics=("test_acc", "examples_per_s"), family=("test_acc",))
    eps = only_acc[only_acc["metric"] == "examples_per_s"]
    assert eps["holm_p"].isna().all() and eps["holm_significant"].isna().all()
    acc_p = {b: v for m, b, v in zip(pw["metric"], pw["per_rank_batch"], pw["p_value"]) if m == "test_acc"}
    assert {b for b, s in zip(only_acc["per_rank_batch"], only_acc["holm_significant"]) if s} == \
        holm_by_definition(acc_p)


def test_power_columns_answer_the_textbook_question():
    # Spread 0.7 points per seed for both variants; 1.4 points is d = 2, which a two-sample t test
    # at 5 % finds with 80 % power from 6 runs per group (Cohen 1988, Table 2.4.1; G*Power agrees).
    runs = make_runs({"variant": "scratch", "test_acc": [0.843, 0.850, 0.857]},
                     {"variant": "nn", "test_acc": [0.857, 0.864, 0.871]})
    r = pairwise(runs, metrics=("test_acc",), resolve=(parse_resolve("1.4pt"),)).iloc[0]
    assert r["std_a"] == pytest.approx(0.007) and r["resolve_target"] == "1.4pt"
    assert r["seeds_needed"] == 6
    assert r["min_resolvable"] > 0.014  # 3 seeds are not enough for 1.4 points


def test_relative_target_plans_ratio_metrics_on_the_log_scale():
    # CV = log(1.05) per seed: a 5 % difference is then one standard deviation on the log scale,
    # d = 1, which needs 17 runs per group (Cohen 1988, Table 2.4.1).
    cv = math.log(1.05)
    runs = make_runs({"variant": "scratch", "examples_per_s": [1000 * (1 - cv), 1000.0, 1000 * (1 + cv)]},
                     {"variant": "nn", "examples_per_s": [1000 * (1 - cv), 1000.0, 1000 * (1 + cv)]})
    targets = (parse_resolve("5%"), parse_resolve("0.5pt"))
    pw = pairwise(runs, metrics=("examples_per_s", "test_acc"), resolve=targets).set_index("metric")
    assert pw.loc["examples_per_s", "resolve_target"] == "5%" and pw.loc["examples_per_s", "seeds_needed"] == 17
    assert pw.loc["test_acc", "resolve_target"] == "0.5pt"
    assert pw.loc["test_acc", "seeds_needed"] == 2  # every seed equal: no spread, the minimum resolves it


def test_one_seed_step_times_get_a_within_run_interval():
    rng = np.random.default_rng(3)
    slow, fast = 20.0 + rng.normal(0, 0.5, 200), 10.0 + rng.normal(0, 0.25, 200)
    runs = make_runs({"variant": "scratch", "step_ms_p50": 20.0}, {"variant": "nn", "step_ms_p50": 10.0})
    samples = {"scratch-w1-b64-s0": slow, "nn-w1-b64-s0": fast}
    pw = pairwise(runs, metrics=("step_ms_p50", "test_acc"), step_samples=samples).set_index("metric")
    r = pw.loc["step_ms_p50"]
    assert r["interval"] == "within run" and math.isnan(r["p_value"]) and math.isnan(r["holm_p"])
    assert r["estimate"] == pytest.approx(np.median(fast) / np.median(slow))
    assert 0 < r["ci95_low"] < r["estimate"] < r["ci95_high"] < 1
    assert r["verdict"].startswith("nn faster (p50 step): 2.0") and r["verdict"].endswith("(within-run timing only)")
    assert pw.loc["test_acc", "verdict"] == "too few seeds: no interval"  # only step times have samples
    without = pairwise(runs, metrics=("step_ms_p50",)).iloc[0]
    assert without["verdict"] == "too few seeds: no interval" and without["interval"] == ""
