"""Bad analysis input: skipped with a warning naming the file, the rest analysed, configurations
never pooled. Run directories here are written by hand (the format is plain JSON/CSV)."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from analysis import report
from analysis.load.run_dirs import load_runs
from analysis.stats.seed_groups import group_stats
from tests.procs import python_m


def make_run(parent, name, *, variant="nn", global_batch=256, seed=0, test_acc=0.8, eps=1000.0,
             status="complete"):
    d = parent / name
    d.mkdir(parents=True)
    config = {"variant": variant, "model": "lenet", "world_size": 1, "per_rank_batch": global_batch,
              "global_batch": global_batch, "epochs": 1, "seed": seed, "lr": 1.0, "mode": "eager",
              "amp": "none", "bn_group_size": 1, "bn_emulate_ranks": 1, "limit_train": None,
              "device_type": "cpu", "launcher": "single-process", "backend": None,
              "bn_description": "test"}
    summary = {"status": status, "train_loss": 0.5, "train_acc": test_acc, "test_acc": test_acc,
               "examples_per_s": eps, "examples_per_s_per_rank": eps,
               "step_ms_p50": global_batch / eps * 1e3,  # steps as even as the mean: median = mean
               "step_ms_p90": 2.0, "peak_mem_bytes": None, "epochs_done": 1}
    (d / "config.json").write_text(json.dumps(config))
    (d / "summary.json").write_text(json.dumps(summary))
    (d / "env.json").write_text(json.dumps({"device_name": "cpu"}))
    (d / "metrics.csv").write_text("epoch,train_loss,train_acc,test_acc,examples_per_s,epoch_s\n"
                                   f"1,0.5,{test_acc},{test_acc},{eps},1.0\n")
    return d


def test_empty_directory_is_one_line_exit_2(tmp_path):
    for module in ("analysis.report", "analysis.kernels"):
        p = python_m(module, tmp_path, "-o", tmp_path / "out", timeout=120)
        assert p.returncode == 2, (module, p.stderr)
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_unreadable_run_is_skipped_with_its_file_named(tmp_path):
    make_run(tmp_path, "good")
    bad = make_run(tmp_path, "bad")
    (bad / "summary.json").write_text('{"status": "compl')  # cut mid-write by something else
    with pytest.warns(UserWarning, match=r"bad/summary\.json"):
        runs = load_runs([tmp_path])
    assert runs["run"].tolist() == ["good"]


def test_different_configurations_are_never_averaged(tmp_path):
    make_run(tmp_path, "a0", global_batch=256, seed=0, test_acc=0.80)
    make_run(tmp_path, "a1", global_batch=256, seed=1, test_acc=0.84)
    make_run(tmp_path, "b0", global_batch=512, seed=0, test_acc=0.50)
    make_run(tmp_path, "c0", global_batch=256, seed=2, test_acc=0.10, status="failed")
    groups = group_stats(load_runs([tmp_path]))
    assert sorted(groups["global_batch"]) == [256, 512]
    g256 = groups[groups["global_batch"] == 256].iloc[0]
    assert g256["n_seeds"] == 2 and g256["test_acc_mean"] == pytest.approx(0.82)  # failed run left out
    assert groups[groups["global_batch"] == 512].iloc[0]["test_acc_mean"] == pytest.approx(0.50)


def test_report_skips_damaged_traces_and_lists_failed_runs(tmp_path, traces_dir):
    run = make_run(tmp_path / "runs", "with-traces")
    make_run(tmp_path / "runs", "broken", status="failed")
    traces = run / "traces"
    traces.mkdir()
    shutil.copy(next((traces_dir / "h200" / "ws1_nn").glob("*.gz")), traces / "rank0.1.pt.trace.json.gz")
    whole = (traces_dir / "h200" / "ws2_nn").glob("*rank1*.gz").__next__().read_bytes()
    (traces / "rank1.2.pt.trace.json.gz").write_bytes(whole[: len(whole) // 2])  # truncated gzip
    (traces / "rank2.3.pt.trace.json").write_text(json.dumps({"not": "a trace"}))
    with pytest.warns(UserWarning) as record:
        report.build([str(tmp_path / "runs")], tmp_path / "report")
    warned = " ".join(str(w.message) for w in record)
    assert "rank1.2.pt.trace.json.gz" in warned and "rank2.3.pt.trace.json" in warned
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Kernels and GPU time" in md and "Runs that did not complete" in md
    not_complete = md.split("Runs that did not complete")[1].split("###")[0]
    assert "broken" in not_complete and "with-traces" not in not_complete
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert set(summary.loc[summary["source"] == "measured", "run"]) == {"with-traces", "broken"}
