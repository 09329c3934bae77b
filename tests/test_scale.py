"""bench.collectives on real gloo ranks, and analysis.scale from real runs: prediction up to 4,096
ranks, validation against measured 2-rank runs (nn and scratch-sync), and bad input.

The validation bounds, and why they are what they are (also in docs/scale.md):

- STEP_ERROR_BOUND: |predicted / measured − 1| of the step time at world size 2. The model holds
  each rank's compute at its world-size-1 value (one device per rank) and charges each collective
  what it costs back to back. On the 2-core CPU machines this suite runs on, two gloo ranks share
  the machine (their arithmetic measured 1.3–2.1× its one-rank time), and under other load each
  rank waits for the other at every collective call (11 a scratch-sync step: 2–3 ms a call
  measured in situ against 0.2–0.7 ms back to back). Errors measured there: −0.19 to −0.70, and
  +0.36 when the world-size-1 run was the one slowed by other load. The bound, 0.85, catches a
  cost model off by a large factor, not the machine's sharing, which the reverse fit reports
  (`compute_factor`, `residual_per_call_ms`).
- Collective calls a step: the model says which collectives a step issues; the run's trace counts
  them (process-group calls per traced step). They must agree to within half a call. Dropping
  the backward BN all-reduce from the model (the planted error) leaves 4 of LeNet's 11 calls out,
  which this catches whatever the machine's load; its time (4 small gloo all-reduces, a few % of
  a step here) is below what a shared CPU's step times can resolve.
"""
from __future__ import annotations

import os

import pandas as pd
import pytest

import analysis.atscale.step_model as scale_model
from analysis import scale
from analysis.atscale.collective_model import collective_us, fit
from tests.procs import python_m, torchrun

STEP_ERROR_BOUND = 0.85
CALLS_TOLERANCE = 0.5
PER_RANK_BATCH = 8
STEPS = 72  # per epoch: the profiler's 7 untimed steps, 5 warm-up, then timed ones
LENET_CHANNELS = (6, 16, 120, 84)


def _train(ranks: int, variant: str, data_dir, out, profile: bool):
    args = ["--variant", variant, "--epochs", "1", "--batch-size", str(PER_RANK_BATCH * ranks),
            "--limit-train", str(PER_RANK_BATCH * ranks * STEPS), "--limit-test", "100",
            "--data-dir", data_dir, "--out", out, *([] if profile else ["--no-profile"])]
    p = torchrun(ranks, "bench.train", *args, timeout=240) if ranks > 1 else python_m("bench.train", *args, timeout=180)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]


@pytest.fixture(scope="module")
def measured(tmp_path_factory, data_dir):
    """Collectives on 2 gloo ranks and on 1; LeNet nn and scratch-sync at world size 1 and 2."""
    out = tmp_path_factory.mktemp("scale")
    p = torchrun(2, "bench.collectives", "--sizes", "4,64,1K,16K,256K", "--bn-models", "lenet",
                 "--iters", "20", "--out", out / "c2.csv", timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    p1 = python_m("bench.collectives", "--sizes", "4,64", "--bn-models", "lenet", "--iters", "10",
                  "--out", out / "c1.csv", timeout=120)
    assert p1.returncode == 0, p1.stderr[-2000:]
    for variant in ("nn", "scratch-sync"):
        _train(1, variant, data_dir, out / "ws1", profile=False)
        _train(2, variant, data_dir, out / "ws2", profile=True)  # traces count the collectives
    return {"out": out, "c2": out / "c2.csv", "c1": out / "c1.csv", "stdout": p.stdout}


def test_collectives_csv_follows_nccl_tests(measured):
    c = pd.read_csv(measured["c2"])
    assert set(c["backend"]) == {"gloo"} and set(c["world_size"]) == {2} and set(c["hosts"]) == {1}
    # algbw = S / t, busbw = algbw × 2(n−1)/n (all-reduce), × (n−1)/n (all-gather); n = 2
    assert (c["algbw_gbps"] - c["bytes"] / (c["time_us_median"] * 1e3)).abs().max() < 1e-12
    factor = c["collective"].map({"all_reduce": 2 * 1 / 2, "all_gather": 1 / 2})
    assert (c["busbw_gbps"] - c["algbw_gbps"] * factor).abs().max() < 1e-12
    assert ((c["time_us_q1"] <= c["time_us_median"]) & (c["time_us_median"] <= c["time_us_q3"])).all()
    assert set(c["iters"]) == {20}
    sweep = c[c["shape"] == "sweep"]
    assert sorted(sweep.loc[sweep["collective"] == "all_reduce", "bytes"]) == [4, 64, 1024, 16384, 262144]
    gathered = sorted(sweep.loc[sweep["collective"] == "all_gather", "bytes"])
    assert gathered == [8, 64, 1024, 16384, 262144]  # at least one float a rank
    bn = c[c["shape"] != "sweep"].set_index(["shape", "channels"])
    for ch in LENET_CHANNELS:  # forward: 2 ranks × 3·C floats gathered; backward: 2·C floats reduced
        assert bn.loc[("bn_fwd", ch), "bytes"] == 2 * 3 * ch * 4 and bn.loc[("bn_bwd", ch), "bytes"] == 2 * ch * 4
        assert bn.loc[("bn_fwd", ch), "layers"] == 1
    assert "busbw_GB/s" in measured["stdout"] and "wrote" in measured["stdout"]  # progress as it goes
    one = pd.read_csv(measured["c1"])
    assert set(one["world_size"]) == {1} and (one["busbw_gbps"] == 0).all()  # the per-call floor


def test_predicts_to_4096_ranks_from_a_real_world_size_1_run(measured, tmp_path, capsys):
    out = tmp_path / "pred"
    rc = scale.main([str(measured["out"] / "ws1"), "--collectives", str(measured["c2"]), str(measured["c1"]),
                     "--bn-group-size", "2", "--world-sizes", "24", "-o", str(out)])
    assert rc == 0
    p = pd.read_csv(out / "scale_prediction.csv")
    assert set(p["world_size"]) == {2 ** k for k in range(13)} | {24}
    world = p[(p["variant"] == "scratch-sync") & (p["bn_scope"] == "world")].sort_values("world_size")
    assert world["step_ms"].is_monotonic_increasing and world["bn_comm_ms"].iloc[-1] > world["bn_comm_ms"].iloc[1]
    pairs = p[(p["variant"] == "scratch-sync") & (p["bn_scope"] == "groups of 2") & (p["world_size"] >= 2)]
    assert pairs["bn_comm_ms"].nunique() == 1  # a group of 2 costs the same at any world size
    assert (p.loc[p["variant"] == "nn", "bn_comm_ms"] == 0).all() and (p["scaling_efficiency"] <= 1).all()
    # the fit reproduces the measured BN-shape collectives at world size 2: the typical call within 4×
    # (a fit per collective and size range to a few points measured on a shared 2-core CPU; on a quiet
    # box the median ratio was 0.34-1.0 across runs)
    c = pd.concat([pd.read_csv(measured["c2"]), pd.read_csv(measured["c1"])])
    cost = fit(c, "check", "gloo")
    bn = c[(c["shape"] != "sweep") & (c["world_size"] == 2)]
    ratios = [collective_us(cost, r.collective, 2, r.bytes) / r.time_us_median for r in bn.itertuples()]
    assert 0.25 <= pd.Series(ratios).median() <= 4.0, ratios
    md = (out / "scale.md").read_text()
    assert md.startswith("## At scale (predicted)") and "model, not a measurement" in md
    assert (out / "scale.png").stat().st_size > 0
    assert "overlap 0" in capsys.readouterr().out  # no multi-rank trace given: the assumption is stated
    assert "overlap 0" in md  # ... on the terminal and in the report section


def _validation(measured) -> pd.DataFrame:
    result = scale.compute([str(measured["out"] / "ws1"), str(measured["out"] / "ws2")],
                           collectives=[str(measured["c2"]), str(measured["c1"])])
    return result.validation.set_index("variant")


def _violations(v: pd.DataFrame) -> list[str]:
    """What the documented bounds reject in a validation table."""
    bad = [f"{r}: step error {e:+.2f}" for r, e in v["error"].items() if abs(e) > STEP_ERROR_BOUND]
    calls = (v["predicted_calls_per_step"] - v["measured_calls_per_step"]).abs()
    return bad + [f"{r}: calls a step off by {d:g}" for r, d in calls.items() if not d <= CALLS_TOLERANCE]


def test_validation_against_measured_two_rank_runs(measured):
    v = _validation(measured)
    assert sorted(v.index) == ["nn", "scratch-sync"] and set(v["world_size"]) == {2}
    assert _violations(v) == [], v.to_string()
    # LeNet at world size 2: 4 BN layers × 2 collectives + DDP's one bucket + its buffer broadcast (two
    # for nn: its int64 num_batches_tracked go apart) + the guard's all-reduce
    assert v.loc["scratch-sync", "measured_calls_per_step"] == 11 and v.loc["nn", "measured_calls_per_step"] == 4
    # the reverse fit: compute factor from the nn run; scratch-sync's residual is what is left
    nn, ss = v.loc["nn"], v.loc["scratch-sync"]
    factor = (nn["measured_step_ms"] - nn["ddp_ms"] - nn["harness_ms"]) / nn["compute_ms"]
    fitted = factor * ss["compute_ms"] + ss["bn_comm_ms"] + ss["ddp_ms"] + ss["harness_ms"]
    assert ss["compute_factor"] == pytest.approx(factor)
    assert ss["residual"] == pytest.approx((ss["measured_step_ms"] - fitted) / ss["measured_step_ms"])


def test_a_planted_model_error_fails_the_validation(measured, monkeypatch):
    honest = _validation(measured)
    true = scale_model.bn_collectives
    monkeypatch.setattr(scale_model, "bn_collectives",
                        lambda *a: [c for c in true(*a) if c[0] != "all_reduce"])  # no backward collective
    planted = _validation(measured)
    assert "scratch-sync: calls a step off by 4" in _violations(planted), planted.to_string()
    assert planted.loc["scratch-sync", "bn_comm_ms"] < honest.loc["scratch-sync", "bn_comm_ms"]


@pytest.mark.parametrize("args, needle", [
    (["--preset", "no-such-machine"], "unknown preset 'no-such-machine'"),
    (["--preset", "dgx-h100-ndr", "--world-sizes", "0"], "--world-sizes: must be a positive integer, got 0"),
    (["--preset", "dgx-h100-ndr", "--bn-group-size", "-8"], "--bn-group-size: must be a positive integer, got -8"),
    ([], "exactly one of --collectives CSV or --preset NAME"),
    (["--collectives", __file__, "--preset", "dgx-h100-ndr"], "exactly one of"),  # any existing file
])
def test_bad_input_is_one_line_and_exit_2(measured, args, needle, tmp_path, capsys):
    try:
        rc = scale.main([str(measured["out"] / "ws1"), *args, "-o", str(tmp_path)])
    except SystemExit as e:  # argparse's own exit for a flag its type refuses
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("analysis.scale: error:") and err.count("\n") == 1


def test_collectives_of_another_backend_are_refused(measured, tmp_path, capsys):
    c = pd.read_csv(measured["c2"]).assign(backend="nccl")
    c.to_csv(tmp_path / "nccl.csv", index=False)
    assert scale.main([str(measured["out"] / "ws1"), "--collectives", str(tmp_path / "nccl.csv"), "-o",
                       str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "measured on nccl" in err and "lenet-nn-ws1" in err and err.count("\n") == 1


@pytest.mark.parametrize("args, needle", [
    (["--sizes", "4,lots"], "--sizes: 'lots' is not a positive size (e.g. 4, 64K, 1M)"),
    (["--sizes", "0"], "--sizes: '0' is not a positive size"),
    (["--bn-models", "vgg"], "--bn-models: unknown --model vgg"),
    (["--collectives", "broadcast"], "--collectives: choose from all_reduce, all_gather"),
    (["--iters", "0"], "--iters: must be a positive integer, got 0"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_bench_collectives_bad_input_exit_2(args, needle, tmp_path, capsys):
    from bench.tools.collective_bench import main

    assert main([*args, "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench.collectives: error:") and needle in err and err.count("\n") == 1
    assert not (tmp_path / "x.csv").exists()


def test_world_size_4_on_cpu(measured, data_dir, tmp_path):
    """World size 4 (4 gloo ranks on 2 cores): 1–3 minutes more, past CI's budget, so only on request."""
    if not os.environ.get("BNBENCH_SCALE_WS4"):
        pytest.skip("set BNBENCH_SCALE_WS4=1: four ranks on the 2-core CI machine take 1-3 minutes more")
    p = torchrun(4, "bench.collectives", "--sizes", "4,64,1K,16K", "--bn-models", "lenet", "--out",
                 tmp_path / "c4.csv", timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    for variant in ("nn", "scratch-sync"):
        _train(4, variant, data_dir, tmp_path / "ws4", profile=True)
    result = scale.compute([str(measured["out"] / "ws1"), str(tmp_path / "ws4")],
                           collectives=[str(measured["c2"]), str(tmp_path / "c4.csv"), str(measured["c1"])])
    v = result.validation.set_index("variant")
    assert set(v["world_size"]) == {4} and _violations(v) == [], v.to_string()
