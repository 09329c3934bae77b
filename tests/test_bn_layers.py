"""Per-layer BN cost on hand-made traces, one rule per case: where forward and backward time come from,
the bytes of the minimum passes, GB/s, and the ratio to a copy (the real-trace case: test_resnet50.py)."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from analysis.load.trace_dirs import load_runs
from analysis.load.trace_files import load_traces
from analysis.render.bn_layers_section import NO_MICRO, bn_layer_section
from analysis.transform.bn_layers import layer_table, layer_times
from tests.test_gpu_steps import kernel, launch, x

NODE = "autograd::engine::evaluate_function: "


def op(name, ts, dur, seq=-1, dims=None, dtype="float"):
    args = {"Sequence number": seq} if seq >= 0 else {}
    if dims is not None:
        args.update({"Input Dims": [dims, [dims[1]] if dims else [], []], "Input type": [dtype, "float", "Scalar"]})
    return x(name, ts, dur, **args)


def gpu_step(dims=(1000, 10), dtype="float"):
    """Step [0, 100): bn/bn1 at [10, 30) launches a 6 us kernel, its batch_norm (seq 5) has input `dims`;
    a later, unrelated op launches a 9 us kernel; the backward node of seq 5 launches a 10 us one."""
    return [
        x("ProfilerStep#1", 0.0, 100.0, cat="user_annotation"),
        x("bn/bn1", 10.0, 20.0, cat="user_annotation"),
        op("aten::add_", 11.0, 1.0, seq=4, dims=[]),  # num_batches_tracked += 1: no tensor dims
        op("aten::batch_norm", 12.0, 15.0, seq=5, dims=list(dims), dtype=dtype),
        launch("cudaLaunchKernel", 13.0, 1), kernel("bn_fw_tr_kernel", 40.0, 6.0, 1),
        op("aten::relu", 31.0, 5.0, seq=6, dims=list(dims)),
        launch("cudaLaunchKernel", 32.0, 2), kernel("relu_kernel", 46.0, 9.0, 2),
        op(NODE + "NativeBatchNormBackward0", 60.0, 20.0, seq=5),
        op("NativeBatchNormBackward0", 61.0, 18.0, seq=5),
        launch("cudaLaunchKernel", 62.0, 3), kernel("bn_bw_kernel", 70.0, 10.0, 3),
    ]


def times_of(tmp_path, events):
    (tmp_path / "rank0.json").write_text(json.dumps({"schemaVersion": 1, "traceEvents": events}))
    return layer_times(load_traces(tmp_path).events)


def test_gpu_times_are_the_kernels_launched_in_the_range_and_in_its_backward_nodes(tmp_path):
    (row,) = times_of(tmp_path, gpu_step()).to_dict("records")
    assert (row["layer"], row["time_source"], row["fwd_us"], row["bwd_us"], row["wall_us"]) == (
        "bn1", "gpu", 6.0, 10.0, 100.0)
    assert (row["shape"], row["dtype"]) == ("1000x10", "float")  # the first op with a tensor input


def test_cpu_only_times_are_the_range_and_the_engine_nodes(tmp_path):
    events = [e for e in gpu_step() if e["cat"] in ("cpu_op", "user_annotation")]
    events.append(op(NODE + "MulBackward0", 85.0, 4.0, seq=6))  # relu's op made outside bn/: not BN
    (row,) = times_of(tmp_path, events).to_dict("records")
    assert (row["time_source"], row["fwd_us"], row["bwd_us"]) == ("cpu", 20.0, 20.0)


@pytest.mark.parametrize("dims,dtype,bytes_each,name", [
    ((1000, 10), "float", 4, "float32"),
    ((8, 16, 5, 5), "c10::BFloat16", 2, "bfloat16"),
])
def test_bytes_and_bandwidth_count_three_passes_forward_and_five_backward(tmp_path, dims, dtype, bytes_each, name):
    table = layer_table(times_of(tmp_path, gpu_step(dims, dtype)))
    (row,) = table.to_dict("records")
    elems = math.prod(dims)
    assert row["dtype"] == name
    assert (row["fwd_bytes"], row["bwd_bytes"]) == (3 * elems * bytes_each, 5 * elems * bytes_each)
    assert row["fwd_gb_per_s"] == pytest.approx(3 * elems * bytes_each / 6e3)   # bytes / (6 us · 1e3)
    assert row["bwd_gb_per_s"] == pytest.approx(5 * elems * bytes_each / 10e3)
    assert row["step_share"] == pytest.approx(16 / 100)
    assert math.isnan(row["fwd_x_copy"])  # no copy measured: no ratio


@pytest.mark.parametrize("copies,expected_gbps,expected_shape", [
    ([("1000x10", "float32", 40.0), ("99999x10", "float32", 80.0)], 40.0, "1000x10"),  # the same shape wins
    ([("64x10", "float32", 10.0), ("99999x10", "float32", 80.0)], 80.0, "99999x10"),   # else the largest copy
    ([("1000x10", "bfloat16", 40.0)], float("nan"), ""),                                # never another dtype
])
def test_the_copy_ratio_uses_a_copy_of_the_same_shape_else_the_largest(tmp_path, copies, expected_gbps,
                                                                       expected_shape):
    micro = pd.DataFrame([{"shape_name": "s", "shape": s, "dtype": d, "variant": "copy", "compiled": False,
                           "op": "copy", "gb_per_s": g} for s, d, g in copies])
    (row,) = layer_table(times_of(tmp_path, gpu_step()), micro).to_dict("records")
    assert row["copy_shape"] == expected_shape
    if math.isnan(expected_gbps):
        assert math.isnan(row["fwd_x_copy"])
    else:
        fwd_gbps = 3 * 10_000 * 4 / 6e3
        assert row["fwd_x_copy"] == pytest.approx(expected_gbps / fwd_gbps)
        assert row["bwd_x_copy"] == pytest.approx(expected_gbps / (5 * 10_000 * 4 / 10e3))


def test_layers_keep_network_order_and_medians_over_steps(tmp_path):
    events = []
    for step, (t0, k) in enumerate(((0.0, 2.0), (100.0, 4.0), (200.0, 9.0)), 1):
        events += [x(f"ProfilerStep#{step}", t0, 100.0, cat="user_annotation"),
                   x("bn/layer1.0.bn1", t0 + 10, 10.0, cat="user_annotation"),
                   op("aten::batch_norm", t0 + 11, 5.0, seq=10 * step, dims=[4, 8, 2, 2]),
                   x("bn/bn1", t0 + 30, 5.0 * k, cat="user_annotation"),  # later in time, first by name
                   op("aten::batch_norm", t0 + 31, 1.0, seq=10 * step + 1, dims=[4, 8, 4, 4])]
    table = layer_table(times_of(tmp_path, events))
    assert table["layer"].tolist() == ["layer1.0.bn1", "bn1"]
    assert table["fwd_us"].tolist() == [10.0, 20.0]  # bn1: median of 10, 20, 45
    assert table["shape"].tolist() == ["4x8x2x2", "4x8x4x4"]


def test_section_says_what_the_copy_ratio_needs_and_draws_the_chart(tmp_path):
    trace_dir = tmp_path / "run" / "traces"
    trace_dir.mkdir(parents=True)
    (trace_dir / "rank0.json").write_text(json.dumps({"schemaVersion": 1, "traceEvents": gpu_step()}))
    runs = load_runs([tmp_path / "run"])
    md = bn_layer_section(runs, tmp_path, {"run": "nn"})
    # fwd and bwd MB: 3 and 5 passes over 40 kB of float32
    assert NO_MICRO in md and "| bn1 | 1000x10 | float32 | 6 | 10 | 16 | 0.12 | 0.2 | 20 | 20 |" in md
    assert (tmp_path / "bn_layers.png").stat().st_size > 1000
    assert bn_layer_section([], tmp_path) == ""
