"""Per-rank step times: loading step_times.csv, the statistics, and the report section."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.load.run_dirs import load_runs, load_step_times
from analysis.render import steps_section
from analysis.stats.step_times import NOISY_IQR_OVER_MEDIAN, rank_stats, run_stats
from bench import rundir


def _steps(run: str, per_rank: dict[int, list[float]], world_size: int | None = None) -> pd.DataFrame:
    return pd.DataFrame([{"run": run, "variant": "nn", "world_size": world_size or len(per_rank), "rank": r,
                          "epoch": 1, "step": i, "step_ms": t}
                         for r, ts in per_rank.items() for i, t in enumerate(ts)])


def test_rank_stats_match_numpy_percentiles():
    rng = np.random.default_rng(0)
    a, b = rng.gamma(5.0, 2.0, 200), rng.gamma(5.0, 2.4, 200)
    got = rank_stats(_steps("r", {0: a.tolist(), 1: b.tolist()})).set_index("rank")
    for rank, x in ((0, a), (1, b)):
        q25, q50, q75, q90 = np.percentile(x, [25, 50, 75, 90])
        assert got.loc[rank, "steps"] == 200
        assert got.loc[rank, "step_ms_p50"] == pytest.approx(q50)
        assert got.loc[rank, "step_ms_p90"] == pytest.approx(q90)
        assert got.loc[rank, "iqr_over_median"] == pytest.approx((q75 - q25) / q50)


@pytest.mark.parametrize("spread, noisy", [(0.9 * NOISY_IQR_OVER_MEDIAN, False),
                                           (1.1 * NOISY_IQR_OVER_MEDIAN, True)])
def test_noise_flag_is_iqr_over_median_above_the_threshold(spread, noisy):
    # Uniform on [1 - w, 1 + w] sampled densely: IQR = w, median = 1.
    w = spread
    ts = np.linspace(1 - w, 1 + w, 4001).tolist()
    got = rank_stats(_steps("r", {0: ts}))
    assert got["iqr_over_median"].iloc[0] == pytest.approx(w, rel=1e-3)
    assert bool(got["noisy"].iloc[0]) is noisy


def test_run_stats_name_the_slowest_rank_and_the_skew():
    ranks = rank_stats(pd.concat([
        _steps("fast-and-even", {0: [2.0] * 9, 1: [2.0] * 9}),
        _steps("straggler", {0: [2.0] * 9, 1: [3.0] * 9, 2: [2.5] * 9}),
    ]))
    got = run_stats(ranks).set_index("run")
    assert got.loc["straggler", "slowest_rank"] == 1
    assert got.loc["straggler", "step_ms_p50"] == 3.0
    assert got.loc["straggler", "slowest_over_fastest_p50"] == pytest.approx(3.0 / 2.0)
    assert got.loc["fast-and-even", "slowest_over_fastest_p50"] == 1.0
    assert (got["noisy_ranks"] == 0).all()


def _run_dir(root, name, step_rows, columns=rundir.STEP_TIMES_COLUMNS, world_size=2):
    d = root / name
    d.mkdir(parents=True)
    cfg = {"variant": "nn", "model": "lenet", "world_size": world_size, "per_rank_batch": 128,
           "global_batch": 256, "epochs": 1, "seed": 0, "device_type": "cpu"}
    (d / rundir.CONFIG).write_text(json.dumps(cfg))
    (d / rundir.SUMMARY).write_text(json.dumps({"status": "complete", "examples_per_s": 1.0}))
    rundir.write_csv(d / rundir.STEP_TIMES, columns, step_rows)
    return d


def test_loader_reads_every_rank_and_old_rank0_only_files(tmp_path):
    _run_dir(tmp_path, "new", [{"rank": r, "epoch": 1, "step": s, "step_ms": 1.0 + r}
                               for r in (0, 1) for s in range(3)])
    _run_dir(tmp_path, "old", [{"epoch": 1, "step": s, "step_ms": 5.0} for s in range(4)],
             columns=("epoch", "step", "step_ms"), world_size=1)
    steps = load_step_times(load_runs([tmp_path]))
    assert list(steps.columns[-4:]) == list(rundir.STEP_TIMES_COLUMNS)
    counts = steps.groupby(["run", "rank"]).size().to_dict()
    assert counts == {("new", 0): 3, ("new", 1): 3, ("old", 0): 4}
    assert steps.loc[steps["run"] == "new"].groupby("rank")["step_ms"].first().tolist() == [1.0, 2.0]


def test_section_warns_about_noisy_ranks_only(tmp_path):
    steady = _steps("steady", {0: [4.0] * 20, 1: [4.2] * 20})
    jumpy = _steps("jumpy", {0: [1.0, 2.0, 3.0, 4.0] * 5, 1: [2.5] * 20})
    md = steps_section.steps_section(pd.concat([steady, jumpy]), tmp_path)
    assert "## Step times by rank" in md
    assert "**Noisy:**" in md and "- jumpy rank 0:" in md
    assert "steady rank" not in md.split("**Noisy:**")[1]
    assert (tmp_path / steps_section.STEPS_PNG).stat().st_size > 0
    written = pd.read_csv(tmp_path / steps_section.STEPS_CSV)
    assert sorted(zip(written["run"], written["rank"])) == [("jumpy", 0), ("jumpy", 1),
                                                            ("steady", 0), ("steady", 1)]
    quiet = steps_section.steps_section(steady, tmp_path)
    assert "**Noisy:**" not in quiet


def test_section_is_empty_without_step_times(tmp_path):
    assert steps_section.steps_section(load_step_times(pd.DataFrame(columns=["run", "path"])), tmp_path) == ""


def test_section_names_the_noisiest_pairs_and_counts_the_rest(tmp_path):
    # Two alternating values 1 and 1 + d: IQR d, median 1 + d/2, so every run is noisy (d >= 0.2).
    runs = [_steps(f"run{i:02d}", {0: [1.0, 1.0 + (i + 2) / 10] * 10})
            for i in range(steps_section.MAX_NOISY_LISTED + 3)]
    md = steps_section.steps_section(pd.concat(runs), tmp_path)
    listed = [line for line in md.splitlines() if line.startswith("- run")]
    # IQR/median grows with i, so the listed ones are the last MAX_NOISY_LISTED runs, noisiest first.
    n = steps_section.MAX_NOISY_LISTED
    assert [line.split()[1] for line in listed] == [f"run{i:02d}" for i in range(n + 2, 2, -1)]
    assert f"- … and 3 more of {n + 3} run-rank pairs" in md


def test_within_run_interval_uses_the_slowest_rank_in_time_order(tmp_path):
    from analysis.stats.block_bootstrap import median_ci
    from analysis.stats.step_times import run_median_cis

    rng = np.random.default_rng(1)
    slow = 10.0 + np.cumsum(rng.normal(0, 0.05, 150))  # a drifting, strongly autocorrelated series
    steps = _steps("r", {0: (slow - 2.0).tolist(), 1: slow.tolist()}).iloc[::-1]  # rows out of order
    got = run_median_cis(steps).iloc[0]
    want = median_ci(slow)
    assert got["rank"] == 1 and got["steps"] == 150 and got["block_steps"] == want.block > 1
    assert (got["step_ms_p50_ci95_low"], got["step_ms_p50_ci95_high"]) == pytest.approx((want.low, want.high))
    md = steps_section.steps_section(steps, tmp_path)
    assert f"[{want.low:.4g}, {want.high:.4g}]" in md and "within run" in md
    assert pd.read_csv(tmp_path / steps_section.MEDIAN_CI_CSV)["block_steps"].tolist() == [want.block]
