"""analysis.atscale.collective_model, analysis.atscale.step_model and analysis.atscale.workloads on hand-made frames.

Every expected number is worked out here by hand from the equations in docs/scale.md.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from analysis.atscale.collective_model import PARAM_COLUMNS, CostModel, _ranges, collective_us, fit, steps
from analysis.atscale.step_model import FIT_COLUMNS, WORLD, bn_collectives, ddp_buckets, fit_left_out, predict, validate
from analysis.atscale.workloads import backend_mismatch, workloads


def model(*rows: dict, per_node: int | None = None, backend: str = "gloo") -> CostModel:
    base = {"collective": "any", "algorithm": "ring", "protocol": "p", "min_bytes": 0.0, "max_bytes": math.inf,
            "base_us": 0.0, "intra_hop_us": 0.0, "inter_hop_us": math.nan, "intra_busbw_gbps": 1e12,
            "inter_busbw_gbps": math.nan}
    params = pd.DataFrame([{**base, **r} for r in rows], columns=list(PARAM_COLUMNS))
    return CostModel("hand", backend, params, per_node)


@pytest.mark.parametrize("collective, algorithm, n, per_node, expected", [
    ("all_reduce", "ring", 16, 8, (28, 2)),    # 2·15 steps, 2·(2−1) of them between the 2 nodes
    ("all_gather", "ring", 16, 8, (14, 1)),    # 15 steps, 1 between nodes
    ("all_gather", "ring", 4, None, (3, 0)),   # one level: all intra
    ("all_reduce", "tree", 32, 8, (14, 4)),    # 2·(8−1) in the node, 2·log2(4 nodes) between
    ("all_reduce", "tree", 8, 8, (14, 0)),
    ("all_reduce", "nvls", 8, 8, (1, 0)),
])
def test_steps(collective, algorithm, n, per_node, expected):
    assert steps(collective, algorithm, n, per_node) == expected


@pytest.mark.parametrize("collective, n, nbytes, expected_us", [
    ("all_reduce", 4, 4000, 10 + 6 * 1 + 4000 * (2 * 3 / 4) / 1e3),   # base + 2(n−1) hops + S·2(n−1)/n / (1 GB/s)
    ("all_gather", 4, 4000, 10 + 3 * 1 + 4000 * (3 / 4) / 1e3),
    ("all_reduce", 1, 4000, 0.0),                                      # one rank: no collective at all
])
def test_one_level_ring_time(collective, n, nbytes, expected_us):
    cost = model({"base_us": 10.0, "intra_hop_us": 1.0, "intra_busbw_gbps": 1.0})
    assert collective_us(cost, collective, n, nbytes) == pytest.approx(expected_us)


def test_cheapest_algorithm_wins_and_spanning_uses_the_slower_level():
    hier = {"intra_hop_us": 1.0, "inter_hop_us": 10.0, "intra_busbw_gbps": 100.0, "inter_busbw_gbps": 10.0}
    cost = model({**hier, "algorithm": "ring"}, {**hier, "algorithm": "tree", "collective": "all_reduce"},
                 per_node=8)
    # 64 ranks on 8 nodes. ring: (126 − 14)·1 + 14·10 = 252 µs; tree: 2·7·1 + 2·3·10 = 74 µs; 8 bytes ≈ 0
    assert collective_us(cost, "all_reduce", 64, 8) == pytest.approx(74.0 + 8 * 2 / 10e3)
    # all-gather has only the ring: 56·1 + 7·10 = 126 µs, bytes over the inter-node 10 GB/s
    assert collective_us(cost, "all_gather", 64, 64e3) == pytest.approx(126.0 + 64e3 * (63 / 64) / 10e3)
    # inside one node: the intra-node bandwidth
    assert collective_us(cost, "all_gather", 8, 64e3) == pytest.approx(7.0 + 64e3 * (7 / 8) / 100e3)


def test_broadcast_is_priced_with_the_gather_rows():
    cost = model({"collective": "all_gather", "intra_hop_us": 2.0, "intra_busbw_gbps": 1.0},
                 {"collective": "all_reduce", "intra_hop_us": 50.0})
    # 4 ranks: 3 steps of 2 µs, and S / busbw (nccl-tests: a broadcast's busbw is its algbw)
    assert collective_us(cost, "broadcast", 4, 1000) == pytest.approx(6.0 + 1000 / 1e3)


def test_nvls_only_inside_a_node():
    ring = {"algorithm": "ring", "intra_hop_us": 5.0, "inter_hop_us": 5.0, "intra_busbw_gbps": 1.0,
            "inter_busbw_gbps": 1.0}
    nvls = {"algorithm": "nvls", "collective": "all_reduce", "intra_hop_us": 1.0, "intra_busbw_gbps": 1.0}
    cost = model(ring, nvls, per_node=4)
    assert collective_us(cost, "all_reduce", 4, 0) == pytest.approx(1.0)        # NVLS: one hop
    assert collective_us(cost, "all_reduce", 8, 0) == pytest.approx(14 * 5.0)   # spans: ring only


def test_fit_recovers_known_parameters_with_a_one_rank_floor():
    base, hop, bw = 5.0, 20.0, 2.0  # µs, µs, GB/s
    sizes = [4, 64, 1024, 16384, 1 << 17, 1 << 20, 1 << 23, 1 << 24]
    rows = [{"world_size": 2, "collective": "all_reduce", "bytes": s,
             "time_us_median": base + 2 * hop + s * 1.0 / (bw * 1e3)} for s in sizes]
    rows += [{"world_size": 1, "collective": "all_reduce", "bytes": s, "time_us_median": base} for s in sizes[:3]]
    cost = fit(pd.DataFrame(rows), "synthetic", "gloo")
    for r in cost.params.itertuples():
        assert r.base_us == pytest.approx(base, rel=1e-6) and r.intra_hop_us == pytest.approx(hop, rel=1e-6)
    big = cost.params[cost.params["max_bytes"] == math.inf].iloc[0]
    assert big["intra_busbw_gbps"] == pytest.approx(bw, rel=1e-6)
    # one world size only: the fixed latency goes to the steps, and the model says so
    only2 = fit(pd.DataFrame(rows[: len(sizes)]), "synthetic", "gloo")
    assert only2.params["base_us"].eq(0).all()
    assert only2.params["intra_hop_us"].iloc[0] == pytest.approx((base + 2 * hop) / 2, rel=1e-6)
    assert any("one world size" in n for n in only2.notes)


def test_fit_ranges_merge_sparse_ones():
    assert _ranges(np.array([4.0, 8.0, 1e5, 2e5, 1e7])) == [(0, 65536), (65536, math.inf)]
    # one size below 64 KiB joins the next range; nothing above 4 MiB: that range joins the last
    assert _ranges(np.array([4.0, 1e5, 2e5])) == [(0, math.inf)]


@pytest.mark.parametrize("variant, channels, group, expected", [
    ("scratch-sync", 6, 2, [("all_gather", 2 * 3 * 6 * 4), ("all_reduce", 2 * 6 * 4)]),
    ("sync", 6, 4, [("all_gather", 4 * (2 * 6 + 1) * 4), ("all_reduce", 2 * 6 * 4)]),
    ("scratch-sync", 6, 1, []),
    ("nn", 64, 8, []),
])
def test_bn_collectives(variant, channels, group, expected):
    assert bn_collectives(variant, channels, group) == expected


@pytest.mark.parametrize("grad_bytes, expected", [
    (180_000, [180_000]),
    (60 * 2**20, [2**20, 25 * 2**20, 25 * 2**20, 9 * 2**20]),
    (math.nan, []),
])
def test_ddp_buckets(grad_bytes, expected):
    assert ddp_buckets(grad_bytes) == expected


WORKLOADS = pd.DataFrame([
    {"model": "m", "variant": "scratch-sync", "per_rank_batch": 8, "mode": "eager", "amp": "none",
     "backend": "gloo", "compute_ms": 10.0, "runs": 1, "channels": (4,), "bn_layers": 1, "grad_bytes": 1000.0,
     "exposed_frac": 0.5, "exposed_source": "x", "guard_every": 2.0},
    {"model": "m", "variant": "nn", "per_rank_batch": 8, "mode": "eager", "amp": "none", "backend": "gloo",
     "compute_ms": 8.0, "runs": 1, "channels": (4,), "bn_layers": 1, "grad_bytes": 1000.0, "exposed_frac": 0.5,
     "exposed_source": "x", "guard_every": 2.0},
])
HOP = model({"intra_hop_us": 100.0})  # 100 µs a step, free bandwidth


def test_predict_adds_bn_collectives_per_group_ddp_and_the_harness():
    p = predict(WORKLOADS, HOP, [1, 4, 8], (WORLD, 2)).set_index(["variant", "bn_scope", "world_size"])
    # world of 4: all-gather 3 steps + all-reduce 6 steps = 900 µs. DDP: 0.5 × 6 steps (gradients)
    # + 3 steps (broadcast of the float buffers) = 600 µs. Guard: a 6-step all-reduce every 2nd step = 300 µs.
    row = p.loc[("scratch-sync", "world", 4)]
    assert (row["bn_comm_ms"], row["ddp_ms"], row["harness_ms"]) == pytest.approx((0.9, 0.6, 0.3))
    assert row["step_ms"] == pytest.approx(11.8)
    assert row["examples_per_s"] == pytest.approx(4 * 8 / 11.8e-3)
    assert row["scaling_efficiency"] == pytest.approx(10.0 / 11.8)
    assert row["sync_bn_overhead"] == pytest.approx(0.9 / 10.9)
    # groups of 2 cost the same at 4 and 8 ranks (1 + 2 steps); DDP grows with the world: 0.5·14 + 7 steps
    g8 = p.loc[("scratch-sync", "groups of 2", 8)]
    assert (g8["bn_group_size"], g8["bn_comm_ms"], g8["ddp_ms"]) == pytest.approx((2, 0.3, 1.4))
    assert p.loc[("nn", "local", 8), "bn_comm_ms"] == 0 and ("nn", "world", 8) not in p.index
    assert p.loc[("scratch-sync", "world", 1), "step_ms"] == 10.0


def test_validation_error_and_the_reverse_fit():
    runs = pd.DataFrame([
        {"run": "nn2", "model": "m", "variant": "nn", "per_rank_batch": 8, "mode": "eager", "amp": "none",
         "world_size": 2, "bn_group_size": 1, "backend": "gloo", "step_ms": 16.4},
        {"run": "ss2", "model": "m", "variant": "scratch-sync", "per_rank_batch": 8, "mode": "eager",
         "amp": "none", "world_size": 2, "bn_group_size": 2, "backend": "gloo", "step_ms": 21.0},
    ])
    v = validate(runs, WORKLOADS, HOP).set_index("run")
    # world of 2: DDP 0.5 × 2 steps + a 1-step broadcast (+ one more for nn's int64 counters): 0.2 ms
    # (0.3 for nn); guard 2 steps / 2 = 0.1 ms; BN 1 + 2 steps = 0.3 ms
    assert v.loc["nn2", "predicted_step_ms"] == pytest.approx(8.4)
    assert v.loc["ss2", "predicted_step_ms"] == pytest.approx(10.6)
    assert v.loc["ss2", "error"] == pytest.approx(10.6 / 21.0 - 1)
    # the local run says compute ran (16.4 − 0.4) / 8 = 2× slower; the sync run is then fitted at
    # 2 × 10 + 0.3 + 0.3 = 20.6 ms, leaving 0.4 ms unexplained
    assert v.loc["ss2", "compute_factor"] == pytest.approx(2.0)
    assert v.loc["ss2", "residual_ms"] == pytest.approx(0.4)
    assert v.loc["ss2", "residual"] == pytest.approx(0.4 / 21.0)
    assert v.loc["ss2", "residual_per_call_ms"] == pytest.approx(0.4 / 4.5)
    assert v.loc["nn2", "residual"] == pytest.approx(0.0, abs=1e-12)
    # calls a step: 2 BN collectives on one layer, 1 DDP bucket, 1 broadcast (2 for nn), the guard's ½
    assert (v.loc["ss2", "predicted_calls_per_step"], v.loc["nn2", "predicted_calls_per_step"]) == (4.5, 3.5)
    assert math.isnan(v.loc["ss2", "measured_calls_per_step"])  # no trace in these hand-made runs
    alone = fit_left_out(validate(runs.iloc[[1]], WORKLOADS, HOP).drop(columns=list(FIT_COLUMNS)))
    assert alone["fitted_from"].iloc[0].startswith("all runs")
    assert alone["residual"].iloc[0] == pytest.approx(0.0, abs=1e-12)  # one run, one factor: exact


def _runs(**over) -> pd.DataFrame:
    base = {"run": "a", "status": "complete", "model": "m", "variant": "nn", "per_rank_batch": 8, "mode": "eager",
            "amp": "none", "world_size": 1, "bn_group_size": 1, "backend": "gloo", "device_type": "cpu",
            "check_finite_every": 0.0, "step_ms": 10.0, "grad_bytes": 1000.0, "path": "/x"}
    return pd.DataFrame([{**base, **o} for o in over.get("rows", [{}])])


def test_workloads_take_medians_and_state_their_assumptions():
    runs = _runs(rows=[{"path": "/a", "step_ms": 10.0}, {"path": "/b", "step_ms": 14.0, "grad_bytes": math.nan},
                       {"path": "/c", "world_size": 2, "step_ms": 30.0}])
    layers = pd.DataFrame({"path": ["/a", "/a", "/b", "/b"], "layer": ["bn1", "bn2", "bn1", "bn2"],
                           "channels": [6, 16, 6, 16]})
    exposed = pd.DataFrame({"path": ["/c"], "exposed_frac": [math.nan], "calls_per_step": [math.nan],
                            "trace_note": ["no trace"]})
    table, notes = workloads(runs, layers, exposed)
    w = table.iloc[0]
    assert (w["compute_ms"], w["runs"], w["channels"], w["grad_bytes"]) == (12.0, 2, (6, 16), 1000.0)
    assert w["exposed_frac"] == 1.0 and any("overlap 0" in n for n in notes)
    assert w["guard_every"] == 1.0  # --check-finite-every 0 on a CPU run: every step
    traced = pd.DataFrame({"path": ["/c"], "exposed_frac": [0.25], "calls_per_step": [3.0],
                           "trace_note": ["4 traced steps"]})
    assert workloads(runs, layers, traced)[0].iloc[0]["exposed_frac"] == 0.25
    old = workloads(_runs(rows=[{"path": "/a", "grad_bytes": math.nan}]), layers, exposed.iloc[:0])[1]
    assert any("no grad_bytes" in n for n in old)


def test_backend_mismatch_names_the_runs():
    runs = _runs(rows=[{"run": "a"}, {"run": "b", "backend": "nccl"}])
    assert backend_mismatch(runs, model(backend="gloo")) == ["b (nccl)"]


def test_worked_example_gives_the_committed_prediction(tmp_path, monkeypatch):
    """docs/scale.md's worked example (a stated workload, the DGX H100 preset): its command, as printed
    there, predicts what docs/scale/resnet50-b32/ holds, and every table reads without exponents."""
    from analysis import scale
    from tests.conftest import REPO

    docs = REPO / "docs" / "scale"
    monkeypatch.chdir(REPO)  # the section names the workload file as given
    assert scale.main(["--workload", "docs/scale/resnet50-b32.toml", "--preset", "dgx-h100-ndr",
                       "--bn-group-size", "1", "8", "-o", str(tmp_path)]) == 0
    got = pd.read_csv(tmp_path / "scale_prediction.csv")
    want = pd.read_csv(docs / "resnet50-b32" / "scale_prediction.csv")
    pd.testing.assert_frame_equal(got, want)
    assert (tmp_path / "scale.md").read_text() == (docs / "resnet50-b32" / "scale.md").read_text()
    assert not re.search(r"\\d[eE][+-]\\d", (tmp_path / "scale.md").read_text())
