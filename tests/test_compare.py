"""The comparison launcher: every variant with the right launcher, then one report."""
from __future__ import annotations

import pandas as pd
import pytest

from bench import rundir
from launch import variant_compare as compare
from launch.variant_compare import plan
from tests.procs import python_m


@pytest.mark.parametrize("variants", [["nn", "sync"], ["nn", "sync", "scratch-sync"]])
def test_plan_skips_sync_on_cpu_ranks_only(variants):
    skipped = [(v, why) for v, why in plan(variants, 2, cuda=False) if why]
    assert [v for v, _ in skipped] == ["sync"]
    assert "SyncBatchNorm" in skipped[0][1] and "CPU" in skipped[0][1]
    # The stand-in is named either way; whether it runs depends on what was asked for.
    assert "scratch-sync" in skipped[0][1]
    assert plan(variants, 1, cuda=False) == [(v, "") for v in variants]
    assert plan(variants, 2, cuda=True) == [(v, "") for v in variants]


def test_plan_reason_says_whether_the_stand_in_runs():
    without = dict(plan(["sync"], 2, cuda=False))["sync"]
    with_it = dict(plan(["sync", "scratch-sync"], 2, cuda=False))["sync"]
    assert without != with_it


def test_compare_records_skips_before_training(tmp_path, monkeypatch):
    """Only `sync` asked for on two CPU ranks: nothing starts, and the skip is on disk with its reason."""
    monkeypatch.setattr(compare.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(compare.subprocess, "call", lambda *a, **k: pytest.fail(f"started {a}"))
    out = tmp_path / "runs"
    compare.main(["--variants", "sync", "--nproc", "2", "--out", str(out), "--report", str(tmp_path / "r")])
    recorded = pd.read_csv(out / rundir.SKIPPED, dtype=str, keep_default_na=False)
    assert list(recorded.columns) == list(rundir.SKIPPED_COLUMNS)
    assert list(recorded.itertuples(index=False, name=None)) == plan(["sync"], 2, cuda=False)


def test_compare_on_cpu_runs_each_variant_and_reports(data_dir, tmp_path):
    """As `make compare` on a CPU machine: fused cannot run here and is reported as not run."""
    from bench.bn import unavailable_reason

    fused_reason = unavailable_reason("fused", "cpu")
    if fused_reason is None:
        pytest.skip("the fused kernels run here (TRITON_INTERPRET=1): this test is about a plain CPU")
    p = python_m("launch.compare", "--variants", "scratch", "nn", "sync", "fused", "--out", tmp_path / "runs",
                 "--report", tmp_path / "report", "--epochs", "1", "--limit-train", "1024",
                 "--limit-test", "500", "--no-profile", "--data-dir", data_dir, "--timing-rounds", "3",
                 timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    runs = [d.name for d in rundir.find_run_dirs([tmp_path / "runs"])]  # skipped.csv sits beside them
    # the three runs, then the timing phase of the variants that ran, the baseline first
    assert runs == ["lenet-nn-ws1-b256-s0", "lenet-scratch-ws1-b256-s0", "lenet-sync-ws1-b256-s0",
                    "timing-lenet-nn-scratch-sync-ws1-b256-s0"]
    sync_config = rundir.read_json(tmp_path / "runs" / "lenet-sync-ws1-b256-s0" / rundir.CONFIG)
    assert "no synchronisation" in sync_config["bn_description"]
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert sorted(summary.loc[summary["source"] == "measured", "variant"]) == ["nn", "scratch", "sync"]
    md = (tmp_path / "report" / "report.md").read_text()
    assert "no synchronisation" in md
    assert "A/A control (nn vs nn):" in md and "## Interleaved timing" in md  # speed from the phase
    # fused is skipped with the reason, in the record and in the report's "Not run" section
    recorded = pd.read_csv(tmp_path / "runs" / rundir.SKIPPED, dtype=str, keep_default_na=False)
    assert list(recorded.itertuples(index=False, name=None)) == [("fused", fused_reason)]
    assert "## Not run" in md and f"| fused | {fused_reason} |" in md


def test_plan_skips_what_cannot_run_here_with_its_reason():
    steps = plan(["nn", "fused", "fused-sync"], 1, cuda=False, unavailable={"fused": "why a", "fused-sync": "why b"})
    assert steps == [("nn", ""), ("fused", "why a"), ("fused-sync", "why b")]


def test_compare_by_default_runs_every_variant_that_can_and_records_the_fused_ones(tmp_path, monkeypatch):
    """On CPU without TRITON_INTERPRET the Triton variants cannot run: by default they are asked
    for and skipped with the reason bench.bn.fused gives; the rest start."""
    pytest.importorskip("triton", reason="the fused kernels need triton")
    from bench.bn.fused import CPU_HINT, unavailable_reason

    if unavailable_reason("cpu") is not None and unavailable_reason("cpu") != CPU_HINT:
        pytest.skip(f"the fused variants are unavailable here for another reason: {unavailable_reason('cpu')}")
    expected = {} if unavailable_reason("cpu") is None else {v: CPU_HINT for v in rundir.TRITON_VARIANTS}
    monkeypatch.setattr(compare.torch.cuda, "is_available", lambda: False)
    started = []  # the training runs are not the point here: record their commands instead
    monkeypatch.setattr(compare.subprocess, "call", lambda cmd: started.append(cmd[cmd.index("--variant") + 1]) or 0)
    out = tmp_path / "runs"
    compare.main(["--out", str(out), "--report", str(tmp_path / "report"), "--no-timing"])  # no runs: no report
    assert started == [v for v in rundir.VARIANTS if v not in expected]
    recorded = pd.read_csv(out / rundir.SKIPPED, dtype=str, keep_default_na=False)
    assert dict(recorded.itertuples(index=False, name=None)) == expected
