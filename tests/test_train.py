"""Training end to end, as a user runs it: torchrun with 2 gloo ranks, one process, bad input."""
from __future__ import annotations

import gzip
import json
import re

import pandas as pd
import pytest

from bench import rundir
from tests.procs import python_m, torchrun

QUICK = ("--epochs", "1", "--limit-train", "2048", "--limit-test", "1000")


def _one_error_line(stderr: str) -> str:
    ours = [line for line in stderr.splitlines() if line.startswith("bench.train: error:")]
    assert len(ours) == 1, stderr
    return ours[0]


@pytest.fixture(scope="module")
def ws2_run(data_dir, tmp_path_factory):
    """One real 2-rank gloo run with the profiler on, and its report."""
    out = tmp_path_factory.mktemp("runs")
    p = torchrun(2, "bench.train", "--variant", "nn", "--epochs", "2", "--limit-train", "4096",
                 "--limit-test", "1000", "--data-dir", data_dir, "--out", out)
    assert p.returncode == 0, p.stderr[-3000:]
    return out / "lenet-nn-ws2-b256-s0", p


def test_torchrun_run_directory_is_complete(ws2_run):
    run, proc = ws2_run
    for name in (rundir.CONFIG, rundir.ENV, rundir.METRICS, rundir.STEP_TIMES, rundir.SUMMARY, rundir.BN_PARAMS):
        assert (run / name).is_file(), name
    config, summary = rundir.read_json(run / rundir.CONFIG), rundir.read_json(run / rundir.SUMMARY)
    assert (config["world_size"], config["per_rank_batch"], config["global_batch"]) == (2, 128, 256)
    assert config["launcher"] == "torchrun" and config["backend"] == "gloo"
    assert summary["status"] == "complete" and summary["world_size"] == 2
    assert summary["test_acc"] > 0.3  # 10 classes: chance is 0.1
    assert summary["examples_per_s"] > 0 and summary["step_ms_p90"] >= summary["step_ms_p50"] > 0
    metrics = pd.read_csv(run / rundir.METRICS)
    assert list(metrics.columns) == list(rundir.METRICS_COLUMNS) and metrics["epoch"].tolist() == [1, 2]
    assert metrics["test_acc"].iloc[-1] == pytest.approx(summary["test_acc"])
    steps = pd.read_csv(run / rundir.STEP_TIMES)
    assert list(steps.columns) == list(rundir.STEP_TIMES_COLUMNS)
    assert summary["measured_steps"] == 2 * 16 - 7 - 5  # profiler window and warm-up left out
    per_rank = {r: g for r, g in steps.groupby("rank")}
    assert sorted(per_rank) == [0, 1] and all(len(g) == summary["measured_steps"] for g in per_rank.values())
    assert per_rank[0][["epoch", "step"]].values.tolist() == per_rank[1][["epoch", "step"]].values.tolist()
    # The summary's percentiles and throughput are the slowest rank's: it sets the pace.
    slowest = max(per_rank, key=lambda r: per_rank[r]["step_ms"].sum())
    assert summary["step_ms_rank"] == slowest
    assert summary["step_ms_p50"] == pytest.approx(per_rank[slowest]["step_ms"].median())
    assert summary["examples_per_s"] == pytest.approx(256 * len(per_rank[slowest])
                                                      / (per_rank[slowest]["step_ms"].sum() / 1e3))
    bn = pd.read_csv(run / rundir.BN_PARAMS)
    assert sorted(bn["layer"].unique()) == ["bn1", "bn2", "bn3", "bn4"] and len(bn) == 6 + 16 + 120 + 84
    # The textbook's closing lines, exactly in its format.
    assert re.search(r"^loss \d\.\d{3}, train acc \d\.\d{3}, test acc \d\.\d{3}$", proc.stdout, re.M)
    assert re.search(r"^\d+\.\d examples/sec on cpu$", proc.stdout, re.M)


def test_one_trace_per_rank_with_distributed_info(ws2_run):
    run, _ = ws2_run
    traces = sorted((run / rundir.TRACES).glob("*.pt.trace.json.gz"))
    assert len(traces) == 2
    ranks, labels = [], set()
    for t in traces:
        with gzip.open(t, "rt") as f:
            trace = json.load(f)
        ranks.append(trace["distributedInfo"]["rank"])
        assert trace["distributedInfo"]["world_size"] == 2
        assert t.name.startswith(f"rank{trace['distributedInfo']['rank']}.")
        labels |= {e["name"] for e in trace["traceEvents"] if e.get("name", "").startswith("bn/")}
        assert sum(e.get("name", "").startswith("ProfilerStep#") for e in trace["traceEvents"]) == 4
    assert sorted(ranks) == [0, 1]
    assert labels == {"bn/bn1", "bn/bn2", "bn/bn3", "bn/bn4"}


def test_report_over_the_run(ws2_run, tmp_path):
    run, _ = ws2_run
    p = python_m("analysis.report", run.parent, "-o", tmp_path / "report")
    assert p.returncode == 0, p.stderr
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    mine = summary[summary["source"] == "measured"]
    assert len(mine) == 1 and mine["world_size"].iloc[0] == 2 and mine["variant"].iloc[0] == "nn"
    assert mine["test_acc"].iloc[0] == pytest.approx(rundir.read_json(run / rundir.SUMMARY)["test_acc"])
    assert set(summary["source"]) > {"measured"}  # the published reference rows sit beside it
    by_rank = pd.read_csv(tmp_path / "report" / "step_times_by_rank.csv")
    steps = pd.read_csv(run / rundir.STEP_TIMES)
    assert by_rank["rank"].tolist() == [0, 1]
    assert by_rank["step_ms_p50"].tolist() == pytest.approx(steps.groupby("rank")["step_ms"].median().tolist())
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Step times by rank" in md and "(step_times_by_rank.png)" in md
    html = (tmp_path / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html and "lenet-nn-ws2-b256-s0" in html
    assert (tmp_path / "report" / "training_curves.png").stat().st_size > 10_000


def test_single_process_scratch_run(data_dir, tmp_path):
    p = python_m("bench.train", "--variant", "scratch", "--epochs", "2", "--limit-train", "4096",
                 "--limit-test", "1000", "--no-profile", "--data-dir", data_dir,
                 "--out", tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "lenet-scratch-ws1-b256-s0"
    summary, config = rundir.read_json(run / rundir.SUMMARY), rundir.read_json(run / rundir.CONFIG)
    assert config["launcher"] == "single-process" and config["world_size"] == 1
    assert summary["status"] == "complete" and summary["test_acc"] > 0.3
    files = [f.name for f in (run / rundir.TRACES).iterdir()]
    assert len(files) == 1 and files[0].startswith("events.out.tfevents.")  # --no-profile: scalars, no trace
    assert summary["measured_steps"] == 2 * 16 - 5  # only the warm-up is left out without a profiler


@pytest.mark.parametrize("args, needle", [
    (("--variant", "batchnorm"), "invalid choice"),
    (("--epochs", "0"), "positive"),
    (("--lr", "-1"), "positive"),
    (("--batch-size", "300", "--limit-train", "256"), "smaller than one global batch"),
])
def test_bad_flags_exit_2_with_one_line(args, needle, data_dir, tmp_path):
    p = python_m("bench.train", *args, "--data-dir", data_dir, "--out", tmp_path, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert needle in _one_error_line(p.stderr)
    assert not list(tmp_path.iterdir())  # nothing that looks like a run


def test_missing_data_exits_2(tmp_path, monkeypatch, capsys):
    from bench.run.datasets import fashion_mnist as data
    from bench.run import runner as train
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    rc = train.main(["--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and "dataset-fashion-mnist" in _one_error_line(err) and "--download" in err
    assert not (tmp_path / "runs" / "lenet-nn-ws1-b256-s0").exists()


# Every bad input that depends on the world size, as torchrun's two ranks see it.
WORLD_SIZE_CASES = {
    "indivisible batch": (("--batch-size", "255"), "not divisible by world size 2"),
    "per-rank batch 1, local BN": (("--batch-size", "2", "--variant", "scratch"), "per-rank batch 1"),
    "sync on CPU ranks": (("--variant", "sync"), "scratch-sync"),
}
OUR_FRAME = re.compile(r'File "[^"]*/(bench|launch|analysis)/')  # a traceback line through this project


@pytest.mark.parametrize("case", list(WORLD_SIZE_CASES))
def test_bad_input_under_two_ranks_is_one_line_from_rank_0(case, data_dir, tmp_path):
    """--tee 3 prefixes each rank's lines ([default0]:, [default1]:): rank 0 prints the one line, rank 1
    nothing, although torchrun stops rank 1 with SIGTERM while it waits; no traceback through our code."""
    flags, needle = WORLD_SIZE_CASES[case]
    p = python_m("torch.distributed.run", "--standalone", "--nproc_per_node=2", "--tee", "3", "-m", "bench.train",
                 *flags, "--data-dir", data_dir, "--out", tmp_path / "runs", timeout=120)
    lines = (p.stdout + p.stderr).splitlines()
    rank0 = [l.removeprefix("[default0]:") for l in lines if l.startswith("[default0]:")]
    assert p.returncode != 0
    assert [l for l in lines if l.startswith("[default1]:")] == []
    assert len(rank0) == 1 and rank0[0].startswith("bench.train: error: ") and needle in rank0[0], rank0
    assert [l for l in lines if OUR_FRAME.search(l)] == []
    assert "exitcode  : 2" in p.stderr  # torchrun's report of rank 0
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
