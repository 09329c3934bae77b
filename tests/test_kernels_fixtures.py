"""Per-step tables of the real traces in tests/data against facts computed independently: the facts
in tests/data/traces/PROVENANCE.md, and a plain-Python clipped union written here."""

import gzip
import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis.kernels import main
from analysis.load.trace_files import load_traces
from analysis.transform.gpu_steps import step_table, step_timeline, summarize_steps


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


# job, {rank: kernels per step}, NCCL kernels per step — from tests/data/traces/PROVENANCE.md
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
