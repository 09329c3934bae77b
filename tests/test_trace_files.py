"""The trace loader: ranks, alignment, steps, bad files — on hand-made and real traces."""

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.load.trace_dirs import load_runs
from analysis.load.trace_files import load_traces, rank_from_file_name


def x(name, ts, dur, cat="cpu_op", pid=100, tid=100, **args):
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "pid": pid, "tid": tid,
            "args": args}


def write_trace(path: Path, events, rank=None, world_size=None, base_ns=None) -> Path:
    doc = {"schemaVersion": 1, "traceEvents": events}
    if rank is not None:
        doc["distributedInfo"] = {"backend": "nccl", "rank": rank, "world_size": world_size}
    if base_ns is not None:
        doc["baseTimeNanoseconds"] = base_ns
    data = json.dumps(doc).encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def one_step(offset=0.0):
    return [x("ProfilerStep#1", offset + 0.0, 100.0, cat="user_annotation"),
            x("aten::add", offset + 10.0, 5.0)]


@pytest.mark.parametrize("name, rank", [
    ("job_rank3.123.pt.trace.json.gz", 3), ("rank-12.json", 12), ("x_rank_7.json.gz", 7),
    ("worker0.json", None),
])
def test_rank_from_file_name(name, rank):
    assert rank_from_file_name(Path(name)) == rank


def test_rank_from_distributed_info_beats_file_name(tmp_path):
    write_trace(tmp_path / "rank0.json", one_step(), rank=5, world_size=8)
    ts = load_traces(tmp_path)
    assert ts.ranks == [5]
    assert ts.missing_ranks == [0, 1, 2, 3, 4, 6, 7]
    assert "5 of 8" in ts.describe_ranks()


def test_rank_from_file_name_when_no_distributed_info(tmp_path):
    write_trace(tmp_path / "a_rank1.pt.trace.json", one_step())
    write_trace(tmp_path / "a_rank0.pt.trace.json.gz", one_step())
    assert load_traces(tmp_path).ranks == [0, 1]


def test_two_files_claiming_one_rank_is_an_error_naming_both(tmp_path):
    write_trace(tmp_path / "a.json", one_step(), rank=0, world_size=2)
    write_trace(tmp_path / "b.json", one_step(), rank=0, world_size=2)
    with pytest.raises(ValueError, match=r"a\.json.*b\.json"):
        load_traces(tmp_path)


def test_truncated_gz_and_non_trace_json_are_skipped_with_warning(tmp_path):
    write_trace(tmp_path / "good_rank0.json", one_step(), rank=0, world_size=3)
    full = gzip.compress(json.dumps({"traceEvents": one_step()}).encode())
    (tmp_path / "cut_rank1.json.gz").write_bytes(full[: len(full) // 2])
    (tmp_path / "config.json").write_text(json.dumps({"variant": "nn", "world_size": 3}))
    with pytest.warns(UserWarning) as record:
        ts = load_traces(tmp_path)
    messages = " ".join(str(w.message) for w in record)
    assert "cut_rank1.json.gz" in messages and "config.json" in messages
    assert ts.ranks == [0] and ts.missing_ranks == [1, 2]
    assert len(ts.events) == 2


def test_empty_directory_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no trace files"):
        load_traces(tmp_path)


def test_ranks_aligned_by_base_time(tmp_path):
    # rank 1's clock base is 1 ms later: its ts 0 is rank 0's ts 1000 us.
    write_trace(tmp_path / "r0.json", one_step(500.0), rank=0, world_size=2, base_ns=10**18)
    write_trace(tmp_path / "r1.json", one_step(0.0), rank=1, world_size=2,
                base_ns=10**18 + 1_000_000)
    ev = load_traces(tmp_path).events
    starts = ev[ev["name"] == "ProfilerStep#1"].set_index("rank")["ts_us"]
    assert starts[0] == 0.0 and starts[1] == pytest.approx(500.0)


def test_events_get_the_step_of_their_window_and_kernels_of_their_launch(tmp_path):
    events = [
        x("ProfilerStep#4", 0.0, 100.0, cat="user_annotation"),
        x("ProfilerStep#5", 100.0, 100.0, cat="user_annotation"),
        x("aten::mm", 150.0, 10.0),
        x("cudaLaunchKernel", 90.0, 5.0, cat="cuda_runtime", correlation=7),
        # launched in step 4, runs in step 5's window
        x("gemm_kernel", 120.0, 30.0, cat="kernel", pid=0, tid=7, correlation=7),
        x("orphan_kernel", 50.0, 1.0, cat="kernel", pid=0, tid=7, correlation=99),
        x("aten::before", -50.0, 1.0),
    ]
    write_trace(tmp_path / "rank0.json", events)
    ev = load_traces(tmp_path).events.set_index("name")
    assert ev.loc["aten::mm", "step"] == 5
    assert ev.loc["gemm_kernel", "step"] == 4
    assert ev.loc["gemm_kernel", "stream"] == 7 and ev.loc["aten::mm", "stream"] == -1
    assert pd.isna(ev.loc["orphan_kernel", "step"]) and pd.isna(ev.loc["aten::before", "step"])


def test_real_traces_ranks_from_distributed_info(traces_dir):
    # The file names say nn_ws2_rank0/1, but the ranks come from distributedInfo either way;
    # the sampled job's file names (sampled_rank-0) agree with it too.
    for job, ranks, world in [("h200/ws2_nn", [0, 1], 2), ("external/sampled_ws128", [0, 1], 128),
                              ("external/a100_ddp_ws2", [0], 2),
                              ("external/cpu_only_gloo", [34], 300)]:
        ts = load_traces(traces_dir / job)
        assert ts.ranks == ranks and ts.world_size == world
        assert ts.missing_ranks == sorted(set(range(world)) - set(ranks))


def test_load_runs_finds_every_fixture_job(traces_dir):
    names = sorted(r.name for r in load_runs([traces_dir]))
    assert names == ["a100_ddp_ws2", "cpu_only_gloo", "sampled_ws128", "ws1_nn", "ws1_scratch",
                     "ws1_sync", "ws2_nn", "ws2_sync"]


def test_run_dir_with_traces_subdir_and_config(tmp_path):
    run = tmp_path / "nn_ws2_seed0"
    (run / "traces").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"variant": "nn", "world_size": 2, "lr": 0.1}))
    write_trace(run / "traces" / "rank0.pt.trace.json", one_step(), rank=0, world_size=2)
    (r,) = load_runs([tmp_path])
    assert r.name == "nn_ws2_seed0" and r.meta == {"variant": "nn", "world_size": 2}


def test_run_dir_without_traces_has_no_trace_dirs(tmp_path):
    from analysis.load.trace_dirs import find_trace_dirs

    run = tmp_path / "run_without_profiler"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"variant": "nn", "world_size": 1}))
    (run / "metrics.json").write_text("{}")
    assert find_trace_dirs(tmp_path) == []
