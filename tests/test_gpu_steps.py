"""Per-step tables on hand-made traces, one rule at a time (the real traces: test_kernels_fixtures.py)."""

import json
import math

import pytest

from analysis.load.trace_files import load_traces
from analysis.transform.categories import category_of_cpu_name, category_of_kernel_name
from analysis.transform.gpu_steps import step_table, step_timeline


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


def test_kernel_section_saves_figures_and_is_empty_without_traces(tmp_path):
    from analysis.load.trace_dirs import load_traced_runs
    from analysis.render.kernels_section import kernel_section

    run = tmp_path / "runs" / "tiny"
    (run / "traces").mkdir(parents=True)
    write_trace(run / "traces" / "rank0.pt.trace.json", [
        x("ProfilerStep#1", 0.0, 100.0, cat="user_annotation"),
        x("bn/bn1", 5.0, 20.0, cat="user_annotation"),
        launch("cudaLaunchKernel", 6.0, 1),
        kernel("void at::native::reduce_kernel<>", 10.0, 30.0, 1),
    ])
    md = kernel_section(load_traced_runs([run]), tmp_path / "fig")
    assert "tiny" in md and "kernels_overview.png" in md
    assert (tmp_path / "fig" / "kernels_overview.png").stat().st_size > 0
    assert (tmp_path / "fig" / "timeline_tiny.png").stat().st_size > 0
    (tmp_path / "empty_run").mkdir()
    assert load_traced_runs([tmp_path / "empty_run"]) == []
    assert kernel_section([], tmp_path / "fig2") == ""
