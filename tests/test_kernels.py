"""Per-step tables: hand-made traces for each rule, then the real fixtures against facts computed
independently (the fixtures' README, and a plain-Python clipped union written here)."""

import gzip
import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis.categories import category_of_cpu_name, category_of_kernel_name
from analysis.kernels import main, step_table, step_timeline, summarize_steps
from analysis.traces import load_traces



def x(name, ts, dur, cat="cpu_op", pid=100, tid=100, **args):
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "pid": pid, "tid": tid,
            "args": args}


def write_trace(path, events, **_):
    path.write_text(json.dumps({"schemaVersion": 1, "traceEvents": events}))


def launch(name, ts, corr, tid=100):
    return x(name, ts, 2.0, cat="cuda_runtime", tid=tid, correlation=corr)


def kernel(name, ts, dur, corr, stream=7):
    return x(name, ts, dur, cat="kernel", pid=0, tid=stream, correlation=corr)


def steps_of(tmp_path, events, **kw):
    write_trace(tmp_path / "rank0.json", events, **kw)
    return step_table(load_traces(tmp_path).events)


def test_overlapping_kernels_on_two_streams_are_not_double_counted(tmp_path):
    steps, _ = steps_of(tmp_path, [
        x("ProfilerStep#1", 0.0, 100.0, cat="user_annotation"),
        launch("cudaLaunchKernel", 1.0, 1), launch("cudaLaunchKernel", 2.0, 2),
        kernel("gemm_a", 10.0, 30.0, 1, stream=7),   # [10, 40)
        kernel("gemm_b", 20.0, 30.0, 2, stream=13),  # [20, 50) -> union [10, 50) = 40
    ])
    (row,) = steps.to_dict("records")
    assert row["gpu_busy_us"] == pytest.approx(40.0)
    assert row["idle_us"] == pytest.approx(60.0)
    assert row["gpu_busy_frac"] == pytest.approx(0.4)
    assert row["kernels"] == 2
    assert row["gemm_time_us"] == pytest.approx(40.0)


def test_kernel_running_past_its_step_counts_there_but_is_clipped(tmp_path):
    steps, _ = steps_of(tmp_path, [
        x("ProfilerStep#1", 0.0, 100.0, cat="user_annotation"),
        x("ProfilerStep#2", 100.0, 100.0, cat="user_annotation"),
        launch("cudaLaunchKernel", 90.0, 1),
        kernel("long_elementwise_kernel", 95.0, 25.0, 1),  # [95, 120): 5 in step 1, 20 in step 2
    ])
    s = steps.set_index("step")
    assert s.loc[1, "kernels"] == 1 and s.loc[2, "kernels"] == 0
    assert s.loc[1, "gpu_busy_us"] == pytest.approx(5.0)
    assert s.loc[2, "gpu_busy_us"] == pytest.approx(20.0)
    assert (s["gpu_busy_us"] <= s["wall_us"]).all()


def test_cpu_only_trace_has_nan_gpu_columns_and_cpu_times(tmp_path):
    steps, cats = steps_of(tmp_path, [
        x("ProfilerStep#1", 0.0, 100.0, cat="user_annotation"),
        x("aten::conv2d", 10.0, 20.0),
        x("gloo:all_reduce", 40.0, 30.0, cat="user_annotation"),
        x("aten::add", 80.0, 5.0),
    ])
    (row,) = steps.to_dict("records")
    for col in ("gpu_busy_us", "gpu_busy_frac", "idle_us", "overlap_us"):
        assert math.isnan(row[col])
    assert row["time_source"] == "cpu" and row["kernels"] == 0
    assert row["cpu_us"] == pytest.approx(55.0)
    assert row["comm_us"] == pytest.approx(30.0)
    assert row["conv_time_us"] == pytest.approx(20.0)
    assert row["elementwise_time_us"] == pytest.approx(5.0)
    assert set(cats["source"]) == {"cpu"}


def test_bn_range_and_sequence_number_give_bn_forward_and_backward(tmp_path):
    steps, _ = steps_of(tmp_path, [
        x("ProfilerStep#1", 0.0, 1000.0, cat="user_annotation"),
        x("bn/bn1", 10.0, 50.0, cat="user_annotation"),
        x("aten::mean", 12.0, 10.0, **{"Sequence number": 41}),
        launch("cudaLaunchKernel", 14.0, 1),
        kernel("void at::native::reduce_kernel<...>", 100.0, 10.0, 1),
        x("aten::relu", 70.0, 10.0, **{"Sequence number": 42}),
        launch("cudaLaunchKernel", 72.0, 2),
        kernel("void at::native::vectorized_elementwise_kernel<relu>", 200.0, 10.0, 2),
        # backward on the autograd thread: node 41 belongs to bn1, node 42 does not
        x("autograd::engine::evaluate_function: MeanBackward0", 300.0, 20.0, tid=200,
          **{"Sequence number": 41}),
        launch("cudaLaunchKernel", 305.0, 3, tid=200),
        kernel("void at::native::vectorized_elementwise_kernel<div>", 400.0, 10.0, 3),
        x("autograd::engine::evaluate_function: ReluBackward0", 330.0, 20.0, tid=200,
          **{"Sequence number": 42}),
        launch("cudaLaunchKernel", 335.0, 4, tid=200),
        kernel("void at::native::vectorized_elementwise_kernel<thr>", 500.0, 10.0, 4),
    ])
    (row,) = steps.to_dict("records")
    assert row["bn_fwd_time_us"] == pytest.approx(10.0)
    assert row["bn_bwd_time_us"] == pytest.approx(10.0)
    assert row["elementwise_time_us"] == pytest.approx(20.0)


def test_cpu_trace_attributes_a_decomposed_bn_backward_by_sequence_number(tmp_path):
    # A from-scratch BN on CPU: its backward is plain autograd nodes (DivBackward0, ...), each
    # recorded as the engine's wrapper range and the node's own range, both with the number.
    steps, _ = steps_of(tmp_path, [
        x("ProfilerStep#1", 0.0, 1000.0, cat="user_annotation"),
        x("bn/bn1", 10.0, 50.0, cat="user_annotation"),
        x("aten::div", 12.0, 30.0, **{"Sequence number": 7}),
        x("aten::sigmoid", 70.0, 10.0, **{"Sequence number": 8}),
        x("autograd::engine::evaluate_function: SigmoidBackward0", 200.0, 40.0, tid=200,
          **{"Sequence number": 8}),
        x("SigmoidBackward0", 201.0, 38.0, tid=200, **{"Sequence number": 8}),
        x("autograd::engine::evaluate_function: DivBackward0", 300.0, 60.0, tid=200,
          **{"Sequence number": 7}),
        x("DivBackward0", 301.0, 58.0, tid=200, **{"Sequence number": 7}),
    ])
    (row,) = steps.to_dict("records")
    assert row["bn_bwd_time_us"] == pytest.approx(60.0)
    assert row["bn_fwd_time_us"] == pytest.approx(50.0)
    assert row["other_time_us"] == pytest.approx(40.0)  # the sigmoid's backward is not BN's
    # The timeline picture colours the node's own range too, not only the engine's wrapper.
    timeline = step_timeline(load_traces(tmp_path).events, rank=0).set_index("name")
    assert timeline.loc["DivBackward0", "category"] == "bn_bwd"
    assert timeline.loc["SigmoidBackward0", "category"] == "other"


@pytest.mark.parametrize("name, category", [
    ("void cudnn::bn_fw_tr_1C11_kernel_NCHW<float>", "bn_fwd"),
    ("void at::native::batch_norm_collect_statistics_kernel<>", "bn_fwd"),
    ("void at::native::batch_norm_backward_reduce_kernel<>", "bn_bwd"),
    ("void cudnn::bn_bw_1C11_kernel_new<float>", "bn_bwd"),
    ("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)", "comm"),
    ("ncclKernel_AllReduce_RING_LL_Sum_float(ncclDevComm*, unsigned long, ncclWork*)", "comm"),
    ("sm80_xmma_fprop_implicit_gemm_f32f32_f32f32_f32_nchwkcrs_nchw", "conv"),
    ("ampere_sgemm_32x128_nt", "gemm"),
    ("void at::native::vectorized_elementwise_kernel<4, sigmoid>", "elementwise"),
    ("void at::native::reduce_kernel<512, 1>", "reduction"),
    ("void at::native::multi_tensor_apply_kernel<sgd>", "optimizer"),
    ("Memcpy DtoH (Device -> Pinned)", "memcpy"),
    ("some_custom_kernel", "other"),
])
def test_kernel_name_rules(name, category):
    assert category_of_kernel_name(name) == category


@pytest.mark.parametrize("name, category", [
    ("gloo:all_gather", "comm"), ("c10d::allgather_", "comm"), ("record_param_comms", "comm"),
    ("c10d::allreduce_", "comm"), ("bn/features.1", "bn_fwd"),
    ("autograd::engine::evaluate_function: NativeBatchNormBackward0", "bn_bwd"),
    ("Optimizer.step#SGD.step", "optimizer"), ("train_step", None),
])
def test_cpu_name_rules(name, category):
    assert category_of_cpu_name(name) == category


# ---- real traces -------------------------------------------------------------------------------

def raw_busy_fractions(path):
    """Independent of analysis/: per step, the clipped union of GPU intervals over wall time."""
    events = json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]
    steps = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                   if e.get("ph") == "X" and e.get("name", "").startswith("ProfilerStep#"))
    gpu = [(e["ts"], e["ts"] + e["dur"]) for e in events
           if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    fractions = []
    for lo, hi in steps:
        clipped = sorted((max(a, lo), min(b, hi)) for a, b in gpu if b > lo and a < hi)
        total, cur_a, cur_b = 0.0, None, None
        for a, b in clipped:
            if cur_b is None or a > cur_b:
                total += 0.0 if cur_b is None else cur_b - cur_a
                cur_a, cur_b = a, b
            else:
                cur_b = max(cur_b, b)
        total += 0.0 if cur_b is None else cur_b - cur_a
        fractions.append(total / (hi - lo))
    return fractions


# job, {rank: kernels per step}, NCCL kernels per step — from the fixtures' README
FIXTURE_FACTS = [
    ("h200/ws1_nn", {0: 86}, 0), ("h200/ws1_scratch", {0: 222}, 0), ("h200/ws1_sync", {0: 86}, 0),
    ("h200/ws2_nn", {0: 88, 1: 88}, 0), ("h200/ws2_sync", {0: 166, 1: 166}, 0),
    ("external/a100_ddp_ws2", {0: 900}, 7), ("external/sampled_ws128", {0: 577, 1: 552}, 5),
]


@pytest.fixture(scope="module")
def fixture_tables(traces_dir):
    root = traces_dir
    out = {}
    for job, _, _ in FIXTURE_FACTS + [("external/cpu_only_gloo", None, None)]:
        traces = load_traces(root / job)
        out[job] = (traces, *step_table(traces.events))
    return out


@pytest.mark.parametrize("job, kernels, nccl", FIXTURE_FACTS)
def test_fixture_kernels_and_nccl_per_step(fixture_tables, job, kernels, nccl):
    _, steps, cats = fixture_tables[job]
    for rank, expected in kernels.items():
        s = steps[steps["rank"] == rank]
        assert s["kernels"].tolist() == [expected] * len(s)
        assert s["nccl_kernels"].tolist() == [nccl] * len(s)
    if nccl:
        gpu_comm = cats[(cats["source"] == "gpu") & (cats["category"] == "comm")]
        assert (gpu_comm["events"] == nccl).all() and (gpu_comm["time_us"] > 0).all()
        assert (steps["comm_us"] > 0).all()


@pytest.mark.parametrize("job", [job for job, _, _ in FIXTURE_FACTS])
def test_fixture_gpu_busy_matches_independent_union(traces_dir, fixture_tables, job):
    traces, steps, _ = fixture_tables[job]
    for file, rank in zip(traces.files["file"], traces.files["rank"]):
        expected = raw_busy_fractions(traces_dir / job / file.split("/")[-1])
        got = steps[steps["rank"] == rank].sort_values("start_us")["gpu_busy_frac"].tolist()
        assert len(got) == len(expected)
        assert np.abs(np.array(got) - np.array(expected)).max() < 0.005
        categories = [c for c in steps.columns if c.endswith("_time_us")]
        s = steps[steps["rank"] == rank]
        assert np.allclose(s[categories].sum(axis=1), s["gpu_busy_us"], atol=1e-3)


def test_gloo_sync_run_finds_cpu_side_communication(fixture_tables):
    _, steps, cats = fixture_tables["h200/ws2_sync"]
    assert (steps["nccl_kernels"] == 0).all()
    assert (steps["comm_us"] > 0.05 * steps["wall_us"]).all()
    cpu_comm = cats[(cats["source"] == "cpu") & (cats["category"] == "comm")]
    assert (cpu_comm["time_us"] > 0).all()
    assert (steps["bn_fwd_time_us"] > 0).all() and (steps["bn_bwd_time_us"] > 0).all()


def test_sampled_and_lone_rank_jobs_report_missing_ranks(fixture_tables):
    traces, steps, _ = fixture_tables["external/sampled_ws128"]
    assert traces.ranks == [0, 1] and len(traces.missing_ranks) == 126
    assert sorted(steps["rank"].unique()) == [0, 1]
    traces, steps, _ = fixture_tables["external/a100_ddp_ws2"]
    assert traces.missing_ranks == [1] and len(steps) == 3


def test_cpu_only_gloo_fixture(fixture_tables):
    traces, steps, _ = fixture_tables["external/cpu_only_gloo"]
    (row,) = steps.to_dict("records")
    assert row["rank"] == 34 and row["kernels"] == 0
    assert math.isnan(row["gpu_busy_us"]) and math.isnan(row["gpu_busy_frac"])
    assert row["wall_us"] == pytest.approx(210109.162)
    assert 0 < row["comm_us"] <= row["wall_us"]


def test_summary_and_timeline(fixture_tables):
    _, steps, _ = fixture_tables["h200/ws2_nn"]
    summary = summarize_steps(steps)
    assert summary["kernels_per_step"].tolist() == [88, 88]
    assert summary["gpu_busy_pct"].between(5.0, 7.0).all()
    traces, _, _ = fixture_tables["h200/ws1_nn"]
    tl = step_timeline(traces.events, rank=0)
    assert tl["lane"].str.startswith("GPU stream").any() and tl["lane"].str.startswith("CPU").any()
    assert (tl["name"].str.contains("bn_fw|batch_norm")).any()


def test_cli_writes_tables_with_run_and_config_columns(tmp_path, traces_dir, capsys):
    import shutil
    run = tmp_path / "runs" / "nn_ws2"
    shutil.copytree(traces_dir / "h200" / "ws2_nn", run / "traces")
    (run / "config.json").write_text(json.dumps({"variant": "nn", "world_size": 2}))
    assert main([str(tmp_path / "runs"), "-o", str(tmp_path / "out")]) == 0
    steps = pd.read_csv(tmp_path / "out" / "steps.csv")
    cats = pd.read_csv(tmp_path / "out" / "categories.csv")
    assert set(steps["run"]) == {"nn_ws2"} and set(steps["variant"]) == {"nn"}
    assert len(steps) == 8 and (steps["skew_us"] >= 0).all()
    assert set(cats["source"]) == {"gpu", "cpu"}
    assert "nn_ws2" in capsys.readouterr().out


def test_kernel_section_saves_figures_and_is_empty_without_traces(tmp_path):
    from analysis.render_kernels import kernel_section

    run = tmp_path / "runs" / "tiny"
    (run / "traces").mkdir(parents=True)
    write_trace(run / "traces" / "rank0.pt.trace.json", [
        x("ProfilerStep#1", 0.0, 100.0, cat="user_annotation"),
        x("bn/bn1", 5.0, 20.0, cat="user_annotation"),
        launch("cudaLaunchKernel", 6.0, 1),
        kernel("void at::native::reduce_kernel<>", 10.0, 30.0, 1),
    ])
    md = kernel_section([run], tmp_path / "fig")
    assert "tiny" in md and "kernels_overview.png" in md
    assert (tmp_path / "fig" / "kernels_overview.png").stat().st_size > 0
    assert (tmp_path / "fig" / "timeline_tiny.png").stat().st_size > 0
    (tmp_path / "empty_run").mkdir()
    assert kernel_section([tmp_path / "empty_run"], tmp_path / "fig2") == ""


def test_docstring_examples():
    import doctest

    import analysis.categories
    import analysis.events
    import analysis.timespans
    import analysis.kernels
    import analysis.render_kernels

    for module in (analysis.categories, analysis.timespans, analysis.kernels,
                   analysis.render_kernels, analysis.events):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
