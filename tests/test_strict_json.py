"""Strict JSON from real runs (complete, no timed step, interrupted, diverged, failed, a sweep), and a
report over runs that did not complete: listed apart, never in a statistic.

The five runs share one configuration (LeNet, nn, 2 epochs of 4 steps), seeds 0-4, so a report that
averaged a run that did not complete would show it in the group's numbers."""
from __future__ import annotations

import json
import math
import signal

import pytest

import bench.run.job
import bench.run.loop
import bench.run.runner
from analysis import report
from analysis.load.run_dirs import load_runs
from analysis.stats.seed_groups import group_stats
from bench import rundir
from bench.errors import EXIT_DIVERGED, EXIT_FAILED, EXIT_INTERRUPTED
from launch import sweep_runner as sweep
from tests.preempt_worker import signal_at
from tests.reliab_util import TINY

FLAGS = [*TINY, "--limit-train", "256", "--epochs", "2", "--variant", "nn"]  # 4 steps per epoch
COMPLETE = rundir.default_run_name("lenet", "nn", 1, 64, 0)  # the name the sweep looks for


def strict_loads(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity, as JSON.parse and strict parsers do."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def _fail_second_evaluation(real):
    calls = []

    def evaluate(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom: injected")
        return real(*a, **k)
    return evaluate


@pytest.fixture(scope="module")
def run_set(tmp_path_factory, data_dir):
    base = tmp_path_factory.mktemp("strict")
    runs = base / "runs"
    flags = [*FLAGS, "--data-dir", str(data_dir), "--out", str(runs)]
    main = bench.run.runner.main
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    mp = pytest.MonkeyPatch()
    try:
        assert main([*flags, "--seed", "0", "--run-name", COMPLETE]) == 0
        # a real sweep over that run's cell: it finds it complete, skips it and writes sweep.json
        assert sweep.main(["--variants", "nn", "--world-sizes", "1", "--batch-sizes", "64", "--seeds", "0",
                           "--epochs", "2", "--out", str(runs), "--no-report", "--data-dir", str(data_dir),
                           "--limit-train", "256", "--limit-test", "200", "--no-profile"]) == 0
        assert main([*flags, "--seed", "1", "--run-name", "untimed", "--warmup-steps", "100"]) == 0
        mp.setattr(bench.run.job, "make_step", signal_at(5, signal.SIGTERM))  # epoch 2, after step 1
        assert main([*flags, "--seed", "2", "--run-name", "interrupted"]) == EXIT_INTERRUPTED
        assert main([*flags, "--seed", "3", "--run-name", "diverged"]) == EXIT_INTERRUPTED
        mp.undo()
        # resumed with a bound every loss exceeds: diverged in epoch 2, with epoch 1's metrics
        assert main([*flags, "--seed", "3", "--resume", str(runs / "diverged"), "--diverge-above", "0.001"]) \
            == EXIT_DIVERGED
        mp.setattr(bench.run.loop, "evaluate", _fail_second_evaluation(bench.run.loop.evaluate))
        assert main([*flags, "--seed", "4", "--run-name", "failed"]) == EXIT_FAILED
        mp.undo()
    finally:
        mp.undo()
        for s, h in saved.items():
            signal.signal(s, h)
    return base


def test_every_json_written_parses_strictly(run_set):
    files = sorted(run_set.rglob("*.json"))
    names = {(p.parent.name, p.name) for p in files}
    for run in (COMPLETE, "untimed", "interrupted", "diverged", "failed"):
        assert {(run, rundir.CONFIG), (run, rundir.ENV), (run, rundir.SUMMARY)} <= names
    assert ("runs", "sweep.json") in names
    parsed = {p: strict_loads(p.read_text()) for p in files}  # raises on NaN / Infinity
    summaries = {p.parent.name: v for p, v in parsed.items() if p.name == rundir.SUMMARY}
    assert {k: summaries[k]["status"] for k in (COMPLETE, "untimed", "interrupted", "diverged", "failed")} == {
        COMPLETE: "complete", "untimed": "complete", "interrupted": "interrupted", "diverged": "diverged",
        "failed": "failed"}
    assert [c["outcome"] for c in parsed[run_set / "runs" / "sweep.json"]["cells"]] == ["skipped (complete)"]
    untimed = summaries["untimed"]
    assert untimed["measured_steps"] == 0
    assert [untimed[k] for k in ("examples_per_s", "examples_per_s_per_rank", "step_ms_p50", "step_ms_p90")] == \
        [None] * 4  # undefined numbers are null
    d = summaries["diverged"]
    assert (d["diverged_epoch"], d["diverged_step"], d["diverged_bound"]) == (2, 1, pytest.approx(0.001))
    assert float(d["diverged_loss"]) > 0.001 and d["epochs_done"] == 1
    assert d["failure"] == f"loss {d['diverged_loss']} above 0.001 (--diverge-above 0.001) at epoch 2, step 1"


def test_readers_take_null_as_missing(run_set):
    runs = load_runs([run_set / "runs"]).set_index("run")
    assert runs["examples_per_s"].dtype == float
    assert math.isnan(runs.loc["untimed", "examples_per_s"]) and runs.loc[COMPLETE, "examples_per_s"] > 0


def test_report_keeps_runs_that_did_not_complete_out_and_lists_them(run_set, tmp_path):
    runs = load_runs([run_set / "runs"])
    groups = group_stats(runs)
    assert len(groups) == 1  # one configuration: the seeds differ, nothing else the report groups by
    g = groups.iloc[0]
    complete = [json.loads((run_set / "runs" / r / rundir.SUMMARY).read_text()) for r in (COMPLETE, "untimed")]
    assert (g["n_seeds"], g["n_incomplete"]) == (2, 3)
    # interrupted and diverged have epoch-1 metrics (a failed run records none); neither is in the mean
    stopped = runs[runs["status"].isin(["interrupted", "diverged"])]
    assert len(stopped) == 2 and stopped["test_acc"].notna().all()
    assert g["test_acc_mean"] == pytest.approx(sum(s["test_acc"] for s in complete) / 2, abs=1e-12)
    assert g["examples_per_s_n"] == 1  # the run without a timed step has no throughput to average

    assert report.main([str(run_set / "runs"), "-o", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    done, _, apart = md.partition("### Runs that did not complete")
    table = apart.split("###")[0]
    for status in ("interrupted", "diverged", "failed"):
        assert f"| {status} " in table
    assert "| complete " not in table
    assert "above 0.001 (--diverge-above 0.001) at epoch 2, step 1" in table
    assert "stopped by SIGTERM in epoch 2 after 1 of 4 steps" in table
    left_out = next(l for l in md.splitlines() if l.startswith("Left out of every comparison"))
    assert all(f"({s})" in left_out for s in ("interrupted", "diverged", "failed"))
