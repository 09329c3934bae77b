"""The report's Findings: each variant against nn at one configuration, in plain sentences.

Hand-made runs tables; expected ratios, differences and intervals are worked out here from the
runs' numbers (Student-t quantiles from scipy, an independent library), never read back from
analysis.stats.findings.
"""
from __future__ import annotations

import math
import re
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis.render.findings_section import findings_section
from analysis.stats.findings import comparisons, configurations, curves_coincide
from tests.statsdata import make_runs

NO_STEPS = pd.DataFrame(columns=["run", "variant", "world_size", "rank", "step_ms"])


def runs(*specs: dict) -> pd.DataFrame:
    return make_runs(*specs).assign(failure="")


def steps(run: str, per_rank: dict[int, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"run": run, "variant": "nn", "world_size": len(per_rank), "rank": r, "epoch": 1,
                          "step": i, "step_ms": t} for r, ts in per_rank.items() for i, t in enumerate(ts)])


def bullets(md: str) -> list[str]:
    return [line[2:] for line in md.splitlines() if line.startswith("- ")]


def test_one_run_each_gives_ratio_and_points_without_interval():
    md = findings_section(runs({"variant": "nn", "examples_per_s": 1000.0, "test_acc": 0.80},
                               {"variant": "scratch-sync", "bn_group_size": 1, "examples_per_s": 670.0,
                                "test_acc": 0.692}), NO_STEPS)
    assert md.startswith("## Findings\n")
    first = bullets(md)[0]
    assert first.startswith("**scratch-sync** against nn (one run each: no interval): ")
    assert f"{670 / 1000:.2f}× the examples/s;" in first
    assert f"{100 * (0.692 - 0.80):+.1f} points of test accuracy." in first  # -10.8
    assert "[" not in first and "within noise" not in first
    # BASE's step_ms_p50 (10 ms) for both: the tie goes to the first variant; 64 examples / 10 ms
    assert f"Fastest: **nn**, {64 / 0.010:,.0f} examples/s at 10 ms a step (its run's median step, the slowest " \
           "rank's; not mean throughput)." in bullets(md)


def test_one_run_each_with_steps_gives_the_within_run_step_time_ratio():
    table = runs({"variant": "nn", "world_size": 2}, {"variant": "scratch", "world_size": 2, "examples_per_s": 500.0})
    nn_run, scratch_run = table["run"]
    # Every step of a rank takes the same time, so every resampled median is that time: the ratio of
    # the slowest ranks' medians (24 / 12; the faster ranks are not compared) has the interval [2, 2].
    timed = pd.concat([steps(nn_run, {0: [10.0] * 40, 1: [12.0] * 40}),
                       steps(scratch_run, {0: [18.0] * 40, 1: [24.0] * 40})])
    assert bullets(findings_section(table, timed))[0] == (
        "**scratch** against nn (one run each: no interval over seeds): 0.50× the examples/s; "
        "+0.0 points of test accuracy; 2.00× the median step time [2.00, 2.00], slower (within-run timing only).")


def test_the_same_steps_on_both_sides_are_within_noise():
    table = runs({"variant": "nn"}, {"variant": "scratch"})
    noisy = list(10.0 + np.random.default_rng(0).normal(0, 1.0, 200))
    sentence = bullets(findings_section(table, pd.concat([steps(r, {0: noisy}) for r in table["run"]])))[0]
    ratio, low, high = re.search(r"; (\S+)× the median step time \[(\S+), (\S+)\], within noise "
                                 r"\(within-run timing only\)\.$", sentence).groups()
    assert ratio == "1.00" and float(low) < 1 < float(high)  # independent resamples of the same steps


@pytest.mark.parametrize("nn_seeds, n_steps", [(1, 19), (2, 40)])  # too few steps; seeds on one side
def test_no_step_time_ratio_without_a_within_run_interval(nn_seeds, n_steps):
    table = runs({"variant": "nn", "examples_per_s": [1000.0] * nn_seeds}, {"variant": "scratch"})
    timed = pd.concat([steps(r, {0: [10.0 + r.endswith("s0")] * n_steps}) for r in table["run"]])
    sentence = bullets(findings_section(table, timed))[0]
    assert "step time" not in sentence and "within-run" not in sentence
    assert sentence.startswith("**scratch** against nn (one run each: no interval): " if nn_seeds == 1
                               else "**scratch** against nn (nn 2 runs, scratch 1 run: no interval): ")


def _log_ratio_p(a: list[float], b: list[float]) -> float:
    """Two-sided p of the log delta-method t for mean(b) / mean(a), Welch df (scipy's t)."""
    ta, tb = ((statistics.stdev(x) / statistics.mean(x)) ** 2 / len(x) for x in (a, b))
    df = (ta + tb) ** 2 / (ta**2 / (len(a) - 1) + tb**2 / (len(b) - 1))
    t = math.log(statistics.mean(b) / statistics.mean(a)) / math.sqrt(ta + tb)
    return 2 * scipy_stats.t.sf(abs(t), df)


@pytest.mark.parametrize("sync_eps", [[976.0, 986.0, 966.0], [800.0, 810.0, 790.0]])
def test_verdicts_say_how_many_they_are_and_which_survive_holm(sync_eps):
    nn_eps, scratch_eps = [1000.0, 1010.0, 990.0], [975.0, 985.0, 965.0]
    table = runs({"variant": "nn", "examples_per_s": nn_eps}, {"variant": "scratch", "examples_per_s": scratch_eps},
                 {"variant": "sync", "examples_per_s": sync_eps})
    table["test_acc"] = None  # no accuracy: the family is the two examples/s verdicts
    p = {"scratch": _log_ratio_p(nn_eps, scratch_eps), "sync": _log_ratio_p(nn_eps, sync_eps)}
    assert max(p.values()) < 0.05  # both "slower" taken alone
    first, second = sorted(p, key=p.get)  # Holm over two: 2 · smaller p, then the larger p if that is more
    adjusted = {first: min(1.0, 2 * p[first])}
    adjusted[second] = max(adjusted[first], p[second])
    md = findings_section(table, NO_STEPS)
    kept = sum(q < 0.05 for q in adjusted.values())
    assert f"The 2 verdicts over seeds here are each at 95 % taken alone, uncorrected for multiple " \
           f"comparisons: {kept} of 2 survive" in md
    for variant, sentence in zip(("scratch", "sync"), bullets(md)):
        assert sentence.startswith(f"**{variant}** against nn (3 runs each)")
        assert (", slower (not after Holm);" in sentence) == bool(adjusted[variant] >= 0.05)
        assert ", slower;" in sentence or ", slower (not after Holm);" in sentence


def test_one_run_each_makes_no_holm_line():
    assert "Holm" not in findings_section(runs({"variant": "nn"}, {"variant": "scratch"}), NO_STEPS)


def test_three_seeds_give_the_interval_and_the_verdict():
    table = runs({"variant": "nn", "examples_per_s": [1000.0, 1010.0, 990.0], "test_acc": [0.80, 0.82, 0.84]},
                 {"variant": "sync", "examples_per_s": [800.0, 810.0, 790.0], "test_acc": [0.81, 0.83, 0.85]})
    row = comparisons(table).iloc[0]
    # Throughput: log delta method, s/m = 10/1000 and 10/800 over n = 3, Welch df on those terms.
    ta, tb = (10 / 1000) ** 2 / 3, (10 / 800) ** 2 / 3
    df = (ta + tb) ** 2 / (ta**2 / 2 + tb**2 / 2)
    half = scipy_stats.t.ppf(0.975, df) * math.sqrt(ta + tb)
    assert row["examples_per_s_ratio"] == pytest.approx(0.8)
    assert row["examples_per_s_ratio_ci95_low"] == pytest.approx(0.8 * math.exp(-half))
    assert row["examples_per_s_ratio_ci95_high"] == pytest.approx(0.8 * math.exp(half))
    # Accuracy: +1 point; both sides s = 0.02, Welch df = 4; the interval spans 0.
    acc_half = 100 * scipy_stats.t.ppf(0.975, 4) * math.sqrt(2 * 0.02**2 / 3)
    assert row["test_acc_diff_pts"] == pytest.approx(1.0)
    assert row["test_acc_diff_pts_ci95_high"] == pytest.approx(1.0 + acc_half)
    sentence = bullets(findings_section(table, NO_STEPS))[0]
    assert sentence == (f"**sync** against nn (3 runs each): 0.80× the examples/s "
                        f"[{0.8 * math.exp(-half):.2f}, {0.8 * math.exp(half):.2f}], slower; "
                        f"+1.0 points of test accuracy [{1 - acc_half:+.1f}, {1 + acc_half:+.1f}], within noise.")


def test_accuracy_a_run_did_not_measure_is_na_never_zero():
    table = runs({"variant": "nn", "examples_per_s": 1000.0}, {"variant": "scratch", "examples_per_s": 500.0})
    table["test_acc"] = None  # synthetic-data runs write null
    sentence = bullets(findings_section(table, NO_STEPS))[0]
    assert sentence == "**scratch** against nn (one run each: no interval): 0.50× the examples/s; test accuracy n/a."
    assert "0.0 points" not in sentence


def test_without_nn_nothing_is_compared_and_the_fastest_is_still_named():
    md = findings_section(runs({"variant": "scratch", "examples_per_s": 900.0, "step_ms_p50": 71.0},
                               {"variant": "sync", "examples_per_s": [1200.0, 1300.0], "step_ms_p50": [50.0, 56.0]}),
                          NO_STEPS)
    assert bullets(md) == ["No nn run here, so nothing is compared against nn.",
                           f"Fastest: **sync**, {64 / 0.053:,.0f} examples/s at 53 ms a step (the median over 2 runs "
                           "of each run's median step, the slowest rank's; not mean throughput)."]


def test_fastest_goes_by_the_median_step_where_mean_throughput_says_otherwise():
    # scratch's mean examples/s is higher (a few slow nn steps pulled nn's mean down), its median step slower
    md = findings_section(runs({"variant": "nn", "examples_per_s": 1000.0, "step_ms_p50": 32.0},
                               {"variant": "scratch", "examples_per_s": 1500.0, "step_ms_p50": 40.0}), NO_STEPS)
    fastest = [b for b in bullets(md) if b.startswith("Fastest")]
    assert fastest == [f"Fastest: **nn**, {64 / 0.032:,.0f} examples/s at 32 ms a step (its run's median step, "
                       "the slowest rank's; not mean throughput)."]


def test_runs_that_did_not_complete_are_listed_and_kept_out():
    table = runs({"variant": "nn", "examples_per_s": [1000.0, 5.0]}, {"variant": "scratch", "examples_per_s": 400.0})
    table.loc[1, "status"] = "diverged"
    md = findings_section(table, NO_STEPS)
    assert "(one run each: no interval): 0.40× the examples/s" in md  # the diverged nn run is not in it
    assert f"Left out of every comparison, as they did not complete: {table.loc[1, 'run']} (diverged)." in md
    nothing = findings_section(table.assign(status="failed"), NO_STEPS)
    assert "No run completed, so there is nothing to compare." in nothing and "(failed)" in nothing


def test_noisy_steps_add_a_caveat():
    table = runs({"variant": "nn"}, {"variant": "scratch", "examples_per_s": 500.0})
    nn_run, scratch_run = table["run"]
    steady = steps(nn_run, {0: [4.0] * 20})
    jumpy = steps(scratch_run, {0: [1.0, 2.0, 3.0, 4.0] * 5})  # IQR/median = 1.5 / 2.5 = 60 %
    assert not [b for b in bullets(findings_section(table, steady)) if b.startswith("Caveat")]
    caveat = [b for b in bullets(findings_section(table, pd.concat([steady, jumpy]))) if b.startswith("Caveat")]
    assert len(caveat) == 1 and "1 of 2 runs here were noisy (IQR/median above 10%" in caveat[0]


def test_each_configuration_compares_only_within_itself():
    table = runs({"variant": "nn", "world_size": 1, "examples_per_s": 1000.0},
                 {"variant": "scratch", "world_size": 1, "examples_per_s": 800.0},
                 {"variant": "nn", "world_size": 2, "examples_per_s": 1800.0},
                 {"variant": "scratch", "world_size": 2, "examples_per_s": 900.0})
    md = findings_section(table, NO_STEPS)
    one, two = md.split("**lenet_bn, 1 rank × 64 per rank, eager, no AMP** (2 runs):")[1].split(
        "**lenet_bn, 2 ranks × 64 per rank, eager, no AMP** (2 runs):")
    assert "0.80× the examples/s" in one and "0.50× the examples/s" in two
    assert configurations(table, NO_STEPS)["fastest"].tolist() == ["nn", "nn"]


@pytest.mark.parametrize("change, coincide", [
    ({}, True),
    ({"train_loss": 0.5002}, True),    # 0.1 % of the loss's range 0.2: the lines are one
    ({"train_loss": 0.503}, True),     # 1.5 %: inside one marker
    ({"train_loss": 0.505}, False),    # 2.5 % of it: two lines
    ({"test_acc": 0.79}, False),
    ({"test_acc": float("nan")}, False),  # measured in one run only
    ({"epoch": 3}, False),                # different epochs
])
def test_curves_coincide(change, coincide):
    base = {"epoch": [1, 2], "train_loss": [0.7, 0.5], "train_acc": [0.7, 0.8], "test_acc": [0.75, 0.8]}
    a = pd.DataFrame(base).assign(run="a")
    b = pd.DataFrame(base).assign(run="b")
    for col, value in change.items():
        b.loc[1, col] = value
    assert curves_coincide(pd.concat([a, b])) is coincide


def test_one_run_never_coincides_with_itself():
    one = pd.DataFrame({"run": "a", "epoch": [1], "train_loss": [0.5], "train_acc": [0.8], "test_acc": [0.8]})
    assert curves_coincide(one) is False
