"""Viewing: a real 2-rank run served by TensorBoard through launch.view, checked over HTTP.

Expected values come from the run's own files (trace JSON, metrics.csv), read here independently
of the plugin.
"""
from __future__ import annotations

import gzip
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from launch.tensorboard_view import view_folders
from bench import rundir
from tests.procs import REPO, env, torchrun
from tests.viewer import VIEW_MODULE, Viewer, fetch, get_json, port_is_free, profiler, view_command

RUN = "lenet-nn-ws2-b256-s0"


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory) -> Path:
    """Two epochs of 8 steps. The first 12 (profiler window, warm-up) are untimed, so examples/s has
    a point for epoch 2 only; every other scalar has both."""
    out = tmp_path_factory.mktemp("runs")
    p = torchrun(2, "bench.train", "--variant", "nn", "--epochs", "2", "--limit-train", "2048",
                 "--limit-test", "500", "--data-dir", data_dir, "--out", out)
    assert p.returncode == 0, p.stderr[-3000:]
    return out / RUN


@pytest.fixture(scope="module")
def served(run_dir, tmp_path_factory):
    viewer = Viewer([run_dir.parent], tmp_path_factory.mktemp("view"))
    try:
        viewer.wait_for_runs(1)
        yield viewer
    finally:
        viewer.stop()  # always: a leaked TensorBoard would hold its port for the rest of the session


def trace_doc(run_dir: Path, rank: int) -> dict:
    (path,) = (run_dir / rundir.TRACES).glob(f"rank{rank}.*.pt.trace.json.gz")
    return json.loads(gzip.decompress(path.read_bytes()))


def profiler_steps(doc: dict) -> dict[int, float]:
    """ProfilerStep#N → its duration in us, straight from the trace."""
    return {int(m.group(1)): e["dur"] for e in doc["traceEvents"]
            if (m := re.fullmatch(r"ProfilerStep#(\d+)", e.get("name", "")))}


def test_run_and_its_ranks_are_served(served, run_dir):
    port = served.port
    assert profiler(port, "runs")["runs"] == [RUN]  # named after the run, not "<run>/traces"
    views = profiler(port, "views", run=RUN)
    assert {"Overview", "Operator", "Trace"} <= set(views)
    assert "Kernel" not in views  # a CPU run: the plugin's kernel view needs CUDA kernels
    files = sorted(p.name for p in (run_dir / rundir.TRACES).glob("*.pt.trace.json.gz"))
    ranks = [name.split(".")[0] for name in files]
    assert ranks == ["rank0", "rank1"]
    for view in ("Overview", "Operator", "Trace"):
        assert profiler(port, "workers", run=RUN, view=view) == ranks
    for rank in ranks:
        assert profiler(port, "spans", run=RUN, worker=rank) == ["1"]


@pytest.mark.parametrize("rank", [0, 1])
def test_overview_matches_the_trace(served, run_dir, rank):
    doc = trace_doc(run_dir, rank)
    steps = profiler_steps(doc)
    ov = profiler(served.port, "overview", run=RUN, worker=f"rank{rank}", span="1")
    assert [int(row[0]) for row in ov["steps"]["rows"]] == sorted(steps)
    mean_step_us = sum(steps.values()) / len(steps)
    assert ov["performance"][0]["name"] == "Average Step Time"
    assert ov["performance"][0]["value"] == pytest.approx(mean_step_us, abs=1)
    env_ = {e["title"]: e["value"] for e in ov["environments"]}
    assert env_ == {"Number of Worker(s)": "2", "Device Type": "CPU"}


def test_operator_and_trace_views_serve_this_ranks_events(served, run_dir):
    doc = trace_doc(run_dir, 1)
    ops = profiler(served.port, "operation/table", run=RUN, worker="rank1", span="1", group_by="Operation")
    cpu_ops = {e["name"] for e in doc["traceEvents"] if e.get("cat") == "cpu_op"}
    assert {row["name"] for row in ops["data"]} == cpu_ops and "aten::batch_norm" in cpu_ops
    served_trace = json.loads(fetch(served.port, "/data/plugin/pytorch_profiler/trace",
                                    run=RUN, worker="rank1", span="1"))
    assert served_trace["traceEvents"] == doc["traceEvents"]


def test_scalars_sit_in_the_same_run(served, run_dir):
    metrics = pd.read_csv(run_dir / rundir.METRICS)
    finite = {c for c in rundir.METRICS_COLUMNS if c != "epoch" and metrics[c].map(math.isfinite).any()}
    assert {"train_loss", "train_acc", "test_acc", "examples_per_s"} <= finite
    tags = get_json(served.port, "/data/plugin/scalars/tags")
    assert set(tags) == {RUN} and set(tags[RUN]) == finite
    for tag in finite:
        points = get_json(served.port, "/data/plugin/scalars/scalars", run=RUN, tag=tag)
        expected = metrics[metrics[tag].map(math.isfinite)]
        assert [step for _, step, _ in points] == expected["epoch"].tolist()
        assert [v for _, _, v in points] == pytest.approx(expected[tag].tolist(), rel=1e-6)


def test_stopping_the_viewer_stops_tensorboard_and_removes_its_links(run_dir, tmp_path):
    viewer = Viewer([run_dir], tmp_path)
    try:
        assert viewer.wait_for_runs(1) == [RUN]
        (tree,) = tmp_path.glob("bnbench-view-*")
        assert (tree / RUN).is_symlink() and (tree / RUN).resolve() == (run_dir / rundir.TRACES).resolve()
    finally:
        rc = viewer.stop()
    assert rc == 128 + 15  # SIGTERM, unwound through launch.view's own clean-up
    assert not list(tmp_path.glob("bnbench-view-*"))
    assert (run_dir / rundir.TRACES).is_dir() and len(list((run_dir / rundir.TRACES).iterdir())) == 3
    assert port_is_free(viewer.port)
    out = viewer.log.read_text()
    assert f"http://127.0.0.1:{viewer.port}/" in out and "https://ui.perfetto.dev" in out


def test_view_names_runs_below_the_folder_passed(tmp_path):
    """Hand-made layout: names are paths below each argument; the traces/ folder is what is served."""
    for run in ("sweep/a", "sweep/b", "other/a"):
        (tmp_path / run / rundir.TRACES).mkdir(parents=True)
        (tmp_path / run / rundir.CONFIG).write_text("{}")
    bare = tmp_path / "copied" / "job1"
    bare.mkdir(parents=True)
    (bare / "w_rank0.1.pt.trace.json.gz").write_bytes(b"")
    (tmp_path / "copied" / "notes.txt").write_text("no traces here")
    folders = view_folders([tmp_path / "sweep", tmp_path / "other" / "a" / rundir.TRACES, tmp_path / "copied"])
    assert folders == {"a": tmp_path / "sweep/a/traces", "b": tmp_path / "sweep/b/traces",
                       "a~2": tmp_path / "other/a/traces", "job1": bare}


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "no such file or folder"),
    (lambda p: p, "no run directories or trace folders"),
])
def test_view_refuses_paths_without_runs(tmp_path, make, message):
    p = subprocess.run(view_command(make(tmp_path)), capture_output=True, text=True, timeout=60, cwd=REPO, env=env())
    assert p.returncode == 2 and p.stderr.startswith(f"{VIEW_MODULE}: error:") and message in p.stderr
    assert "Traceback" not in p.stderr


def test_trace_loader_skips_the_event_file_beside_the_traces(run_dir):
    from analysis.load.trace_files import load_traces

    traces_dir = run_dir / rundir.TRACES
    assert len(list(traces_dir.glob("events.out.tfevents.*"))) == 1
    loaded = load_traces(traces_dir)
    assert loaded.ranks == [0, 1] and not loaded.skipped
    assert all(Path(f).name.endswith(".pt.trace.json.gz") for f in loaded.files["file"])


def test_viewing_imports_no_torch():
    code = "import sys, launch.view, analysis.load.trace_dirs; print('torch' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=REPO, env=env(OMP_NUM_THREADS="1"))
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr
