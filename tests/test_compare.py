"""The comparison launcher: every variant with the right launcher, then one report."""
from __future__ import annotations

import pandas as pd

from bench import rundir
from launch.compare import plan
from tests.procs import python_m


def test_plan_replaces_sync_on_cpu_ranks_only():
    assert plan(["nn", "sync"], 2, cuda=False)[1][1].startswith("skipped")
    assert plan(["nn", "sync"], 1, cuda=False) == [("nn", ""), ("sync", "")]
    assert plan(["sync"], 2, cuda=True) == [("sync", "")]


def test_compare_on_cpu_runs_each_variant_and_reports(data_dir, tmp_path):
    p = python_m("launch.compare", "--variants", "scratch", "nn", "sync", "--out", tmp_path / "runs",
                 "--report", tmp_path / "report", "--epochs", "1", "--limit-train", "1024",
                 "--limit-test", "500", "--no-profile", "--data-dir", data_dir, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    runs = sorted(d.name for d in (tmp_path / "runs").iterdir())
    assert runs == ["lenet-nn-ws1-b256-s0", "lenet-scratch-ws1-b256-s0", "lenet-sync-ws1-b256-s0"]
    sync_config = rundir.read_json(tmp_path / "runs" / "lenet-sync-ws1-b256-s0" / rundir.CONFIG)
    assert "no synchronisation" in sync_config["bn_description"]
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert sorted(summary.loc[summary["source"] == "measured", "variant"]) == ["nn", "scratch", "sync"]
    assert "no synchronisation" in (tmp_path / "report" / "report.md").read_text()
