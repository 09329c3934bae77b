"""The interleaved timing phase's analysis: the bootstrap over rounds, the A/A control's gate on the
verdicts, Findings built on it, and a timing run directory through analysis.report.

Synthetic rounds: every step is a base time × a load factor its round shares with every arm × its
own noise, so a planted ratio is known exactly; expected medians and ratios are computed here with
numpy from the generated steps, never read back from the code under test.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load.timing_dirs import TIMING_RUN_COLUMNS, Timing
from analysis.stats import interleaved, round_bootstrap as rounds
from analysis.render.findings_section import findings_section
from analysis.report import build
from bench import rundir
from tests.statsdata import make_runs

BATCH = 64


def synthetic_steps(ratios: dict[tuple[str, int], float], n_rounds: int = 30, k: int = 10, seed: int = 0,
                    base_ms: float = 10.0) -> pd.DataFrame:
    """timing.csv rows: arm (variant, copy) takes ratio × base_ms × round load × lognormal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_rounds):
        load = rng.uniform(1.0, 1.5)  # shared by every arm of the round: what interleaving cancels
        for position, (v, c) in enumerate(ratios):
            for i in range(k):
                ms = ratios[(v, c)] * base_ms * load * rng.lognormal(0, 0.03)
                rows.append({"round": r, "position": position, "variant": v, "copy": c, "rank": 0, "step": i,
                             "ms": ms, "host": "h", "timing_run": "t"})
    return pd.DataFrame(rows)


def timing_runs(**config) -> pd.DataFrame:
    row = {"timing_run": "t", "status": "complete", "model": "lenet_bn", "world_size": 1, "per_rank_batch": BATCH,
           "global_batch": BATCH, "mode": "eager", "amp": "none", "data": "fashion-mnist", "image_size": 28,
           "channels_last": False, "bn_emulate_ranks": 1, "device": "cpu", "baseline": "nn",
           "variants": ["nn", "scratch"], "rounds": 30, "steps_per_round": 10, "path": "t", **config}
    return pd.DataFrame([row], columns=list(TIMING_RUN_COLUMNS))


def by_round(steps: pd.DataFrame, v: str, c: int) -> dict[int, np.ndarray]:
    arm = steps[(steps["variant"] == v) & (steps["copy"] == c)]
    return {r: g["ms"].to_numpy() for r, g in arm.groupby("round")}


def test_the_interval_over_rounds_widens_when_one_round_is_slowed():
    steps = synthetic_steps({("nn", 0): 1.0, ("scratch", 0): 1.0}, n_rounds=10)
    base, other = by_round(steps, "nn", 0), by_round(steps, "scratch", 0)
    _, lo, hi = rounds.ratio_over_rounds(base, other)
    fastest = min(other, key=lambda r: np.median(other[r]))
    slowed = {**other, fastest: other[fastest] * 2.0}  # its fastest round now its slowest
    est, lo_s, hi_s = rounds.ratio_over_rounds(base, slowed)
    assert hi_s - lo_s > 1.5 * (hi - lo)  # a resample holds that round 0, 1, 2... times
    pooled = np.concatenate(list(slowed.values()))
    assert est == np.median(pooled) / np.median(np.concatenate(list(base.values())))


def test_a_planted_30_percent_slowdown_reads_slower_and_its_interval_holds_1_30():
    steps = synthetic_steps({("nn", 0): 1.0, ("nn", 1): 1.0, ("scratch", 0): 1.3})
    comps = interleaved.comparisons(timing_runs(), steps).set_index("variant")
    s = comps.loc["scratch"]
    assert s["verdict"] == "slower" and s["ci95_low"] <= 1.3 <= s["ci95_high"]
    nn, scratch = (steps.loc[(steps["variant"] == v) & (steps["copy"] == 0), "ms"] for v in ("nn", "scratch"))
    assert np.isclose(s["step_ms_ratio"], np.median(scratch) / np.median(nn))
    assert np.isclose(s["examples_per_s"], BATCH / (np.median(scratch) / 1e3))


def test_a_and_a_prime_read_within_noise():
    steps = synthetic_steps({("nn", 0): 1.0, ("nn", 1): 1.0, ("scratch", 0): 1.0}, seed=3)
    comps = interleaved.comparisons(timing_runs(), steps)
    control = comps[comps["control"]].iloc[0]
    assert control["verdict"] == "within noise" and control["ci95_low"] <= 1 <= control["ci95_high"]
    assert comps.loc[~comps["control"], "verdict"].tolist() == ["within noise"]


def test_a_control_outside_noise_withholds_every_verdict():
    steps = synthetic_steps({("nn", 0): 1.0, ("nn", 1): 1.2, ("scratch", 0): 2.0})
    comps = interleaved.comparisons(timing_runs(), steps)
    assert comps.loc[comps["control"], "verdict"].tolist() == ["outside noise"]
    assert comps.loc[~comps["control"], "verdict"].tolist() == ["too noisy to tell"]


def test_a_steady_copy_effect_sets_the_noise_floor_instead_of_withholding_every_verdict():
    # A′ runs a steady 3 % apart from A (two copies built apart); its tight interval excludes 1
    steps = synthetic_steps({("nn", 0): 1.0, ("nn", 1): 1.03, ("nn", 2): 0.97, ("scratch", 0): 1.10})
    comps = interleaved.comparisons(timing_runs(), steps).set_index(["variant", "copy"])
    control = comps.loc[("nn", 1)]
    assert control["ci95_low"] > 1 and control["verdict"] == "within noise"
    floor = max(control["ci95_high"], 1 / control["ci95_low"]) - 1
    assert 0.03 < floor < 0.10 and np.isclose(control["noise_floor"], floor)
    third, scratch = comps.loc[("nn", 2)], comps.loc[("scratch", 0)]
    assert third["ci95_high"] < 1 and third["verdict"] == "within noise"  # beyond 1, not beyond the floor
    assert scratch["ci95_low"] > 1 + floor and scratch["verdict"] == "slower"


def test_findings_take_speed_and_fastest_from_the_timing_phase_and_quote_the_control():
    # the runs' mean throughput says scratch is fastest; its median step in the timing phase is 1.3×
    table = make_runs({"variant": "nn", "examples_per_s": 900.0}, {"variant": "scratch", "examples_per_s": 1200.0})
    steps = synthetic_steps({("nn", 0): 1.0, ("nn", 1): 1.0, ("scratch", 0): 1.3})
    load = pd.DataFrame([{"when": "round", "round": 0, "host": "h", "cpus": 2, "loadavg_1m": 3.0,
                          "other_cpu_share": 0.6, "timing_run": "t"}])
    md = findings_section(table.assign(failure=""), pd.DataFrame(columns=["run", "variant", "world_size", "rank",
                                                                          "epoch", "step", "step_ms"]),
                          interleaved.Speed.of(Timing(timing_runs(), steps, load)))
    lines = [line[2:] for line in md.splitlines() if line.startswith("- ")]
    assert lines[0].startswith("A/A control (nn vs nn): 1.00× [") and "within noise" in lines[0]
    nn = steps.loc[(steps["variant"] == "nn") & (steps["copy"] == 0), "ms"]
    scratch = steps.loc[(steps["variant"] == "scratch") & (steps["copy"] == 0), "ms"]
    ratio = np.median(scratch) / np.median(nn)
    assert lines[1].startswith(f"**scratch** against nn: {ratio:.2f}× nn's median step [")
    assert "slower (interleaved timing)" in lines[1] and "1,200" not in lines[1]
    assert lines[2] == (f"Fastest (interleaved timing, median step): **nn**, {np.median(nn):.3g} ms a step, "
                        f"{BATCH / (np.median(nn) / 1e3):,.0f} examples/s.")
    assert lines[3].startswith("Busy machine: other processes held a median 60% (up to 60%) of the 2 CPUs")


def write_timing_dir(path, steps: pd.DataFrame) -> None:
    path.mkdir(parents=True)
    config = {"kind": rundir.TIMING_KIND, "model": "lenet", "world_size": 1, "per_rank_batch": BATCH,
              "global_batch": BATCH, "mode": "eager", "amp": "none", "data": "fashion-mnist",
              "image_shape": [1, 28, 28], "channels_last": False, "bn_emulate_ranks": 1, "device_type": "cpu",
              "baseline": "nn", "variants": ["nn", "scratch"], "rounds": 30, "steps_per_round": 10}
    rundir.write_json(path / rundir.CONFIG, config)
    rundir.write_json(path / rundir.SUMMARY, {"status": rundir.COMPLETE, "kind": rundir.TIMING_KIND})
    rundir.write_csv(path / rundir.TIMING, rundir.TIMING_COLUMNS, steps.to_dict("records"))
    rundir.write_csv(path / rundir.LOAD, rundir.LOAD_COLUMNS, [])


def test_a_timing_run_directory_round_trips_through_the_report(tmp_path):
    steps = synthetic_steps({("nn", 0): 1.0, ("nn", 1): 1.0, ("scratch", 0): 1.3})
    write_timing_dir(tmp_path / "runs" / "timing-x", steps.drop(columns="timing_run"))
    md = build([str(tmp_path / "runs")], tmp_path / "report").read_text()
    assert "A/A control (nn vs nn):" in md and "## Interleaved timing" in md
    scratch = steps.loc[steps["variant"] == "scratch", "ms"]
    nn = steps.loc[(steps["variant"] == "nn") & (steps["copy"] == 0), "ms"]
    assert f"| scratch | {np.median(scratch):.4g} |" in md
    assert f"{np.median(scratch) / np.median(nn):.2f}× nn's median step" in md
    assert (tmp_path / "report" / "report.html").is_file()


def test_findings_name_the_slow_steps_where_mean_throughput_and_the_median_step_disagree():
    table = make_runs({"variant": "nn"}, {"variant": "scratch"}).assign(failure="")
    nn_run, scratch_run = table["run"]
    quiet = [10.0] * 100
    slow = [10.0] * 90 + [50.0 + i for i in range(10)]  # steps 90-99 of epoch 1: 50-59 ms
    steps = pd.DataFrame([{"run": run, "variant": v, "world_size": 1, "rank": 0, "epoch": 1, "step": i,
                           "step_ms": ms} for run, v, series in ((nn_run, "nn", quiet), (scratch_run, "scratch", slow))
                          for i, ms in enumerate(series)])
    batch = int(table["global_batch"].iloc[0])
    mean_eps = [batch * 100 / (sum(s) / 1e3) for s in (quiet, slow)]  # what the Runs table holds
    table["examples_per_s"] = mean_eps
    md = findings_section(table, steps)
    gap = 1 - mean_eps[1] / (batch / 0.010)
    assert f"**{scratch_run}**: its mean throughput in the Runs table, {mean_eps[1]:,.0f} examples/s, is " \
           f"{gap:.0%} below the {batch / 0.010:,.0f} examples/s of its median step" in md
    assert "10 of 100 steps took over 1.5× its 10 ms median, from epoch 1 step 90 to epoch 1 step 99, " \
           "the slowest 59 ms." in md
    assert f"**{nn_run}**: its mean" not in md


def test_holm_counts_no_examples_per_s_verdict_the_timing_phase_replaced():
    # two seeds a side: examples/s and accuracy each get a verdict with a p value; with a timing phase
    # for the configuration, scratch's examples/s verdict is the phase's, and Holm counts only accuracy
    table = make_runs({"variant": "nn", "examples_per_s": [900.0, 910.0], "test_acc": [0.80, 0.81]},
                      {"variant": "scratch", "examples_per_s": [1200.0, 1190.0], "test_acc": [0.70, 0.72]})
    no_steps = pd.DataFrame(columns=["run", "variant", "world_size", "rank", "epoch", "step", "step_ms"])
    steps = synthetic_steps({("nn", 0): 1.0, ("nn", 1): 1.0, ("scratch", 0): 1.3})
    empty_load = pd.DataFrame(columns=[*rundir.LOAD_COLUMNS, "timing_run"])
    alone = findings_section(table.assign(failure=""), no_steps)
    timed = findings_section(table.assign(failure=""), no_steps,
                             interleaved.Speed.of(Timing(timing_runs(), steps, empty_load)))
    assert "The 2 verdicts over seeds here" in alone
    assert "The 1 verdict over seeds here is at 95 %" in timed
