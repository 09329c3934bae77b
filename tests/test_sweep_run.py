"""launch.sweep for real: a tiny sweep killed and resumed, its progress lines, its report, and
emulated ranks against its two-rank cell."""
from __future__ import annotations

import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time

import pandas as pd
import pytest

from launch import sweep_runner as sweep
from tests.procs import REPO, env
from tests.sweep_cells import PER_RANK, SEEDS, WORLD_SIZES, expected_names, tiny_args

T_975 = {1: 12.706205}  # two-sided 95 % Student t, from a printed table
SWEEP_TIMEOUT_S = 420


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "launch.sweep", *args], cwd=REPO, env=env(OMP_NUM_THREADS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group: one kill takes the cell too


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory, data_dir) -> dict:
    """The tiny sweep, SIGKILLed (with its running cell) once cell 2 has started, then run again."""
    out = tmp_path_factory.mktemp("sweep") / "runs"
    args = tiny_args(out, data_dir)
    first, second = expected_names()[:2]
    proc = _start(args + ["--no-report"])
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    try:
        while not (out / second / "summary.json").exists():  # cell 2 has written status 'running'
            assert proc.poll() is None, f"sweep ended early:\n{proc.stdout.read()}"
            assert time.monotonic() < deadline, "cell 2 never started"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        killed_output = proc.communicate(timeout=60)[0]
    at_kill = {"second_status": sweep.cell_state(out / second),
               "first_summary": (out / first / "summary.json").read_bytes(),
               "first_mtime_ns": (out / first / "summary.json").stat().st_mtime_ns,
               "first_log_mtime_ns": (out / "logs" / f"{first}.log").stat().st_mtime_ns}
    t0 = time.monotonic()
    resumed = subprocess.run([sys.executable, "-m", "launch.sweep", *args], cwd=REPO, env=env(OMP_NUM_THREADS="1"),
                             capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)
    return {"out": out, "killed_output": killed_output, "at_kill": at_kill, "resumed": resumed,
            "resume_s": time.monotonic() - t0}


def test_killed_sweep_had_finished_only_its_first_cell(tiny_sweep):
    lines = [l for l in tiny_sweep["killed_output"].splitlines() if l.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith(f"[1/8] {expected_names()[0]}  done in ")
    assert tiny_sweep["at_kill"]["second_status"] == "running"  # a real leftover, killed mid-run


def test_resume_skips_the_finished_cell_and_redoes_the_leftover(tiny_sweep):
    r = tiny_sweep["resumed"]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    first, second = expected_names()[:2]
    lines = [l for l in r.stdout.splitlines() if l.startswith("[")]
    assert lines[0] == f"[1/8] {first}  already complete, skipped"
    assert lines[1].startswith(f"[2/8] {second}  re-ran incomplete leftover (--overwrite)  done in ")
    out, at_kill = tiny_sweep["out"], tiny_sweep["at_kill"]
    assert (out / first / "summary.json").read_bytes() == at_kill["first_summary"]
    assert (out / first / "summary.json").stat().st_mtime_ns == at_kill["first_mtime_ns"]
    assert (out / "logs" / f"{first}.log").stat().st_mtime_ns == at_kill["first_log_mtime_ns"]


def test_progress_lines_carry_elapsed_and_remaining_time(tiny_sweep):
    lines = [l for l in tiny_sweep["resumed"].stdout.splitlines() if l.startswith("[")][1:]
    pattern = re.compile(r"^\[(\d)/8\] (\S+)  (?:re-ran incomplete leftover \(--overwrite\)  )?done in "
                         r"([\d.]+) s  \(elapsed ([0-9hms ]+)(?:, ~([0-9hms ]+) left)?\)$")
    matches = [pattern.match(l) for l in lines]
    assert all(matches), lines
    assert [m.group(2) for m in matches] == expected_names()[1:]
    assert all(m.group(5) for m in matches[:-1]) and matches[-1].group(5) is None  # nothing left at the end
    assert sum(float(m.group(3)) for m in matches) <= tiny_sweep["resume_s"]


def test_every_cell_complete_and_recorded(tiny_sweep):
    out = tiny_sweep["out"]
    for name in expected_names():
        summary = json.loads((out / name / "summary.json").read_text())
        w = int(name.split("-ws")[1].split("-")[0])
        assert (summary["status"], summary["world_size"], summary["per_rank_batch"]) == ("complete", w, PER_RANK)
    record = json.loads((out / "sweep.json").read_text())
    assert [c["run_name"] for c in record["cells"]] == expected_names()
    assert [c["outcome"] for c in record["cells"]] == ["skipped (complete)"] + ["complete"] * 7


def test_report_has_intervals_comparisons_and_scaling(tiny_sweep):
    out = tiny_sweep["out"]
    md = (out / "report" / "report.md").read_text()
    assert "### Configurations (mean [95 % CI])" in md
    assert "### Variant comparisons" in md and "### Weak scaling" in md
    groups = pd.read_csv(out / "report" / "sweep_groups.csv")
    assert len(groups) == 4 and set(groups["n_seeds"]) == {2}
    # the interval for one configuration, recomputed from the runs' own summary.json files
    accs = [json.loads((out / f"lenet-nn-ws2-b128-s{s}" / "summary.json").read_text())["test_acc"] for s in SEEDS]
    # accuracy's interval is on the logit scale: expit(logit m ± t·(s/√n)/(m(1 − m)))
    mean = statistics.mean(accs)
    half = T_975[1] * statistics.stdev(accs) / math.sqrt(2) / (mean * (1 - mean))
    ends = [1 / (1 + math.exp(-(math.log(mean / (1 - mean)) + sign * half))) for sign in (-1, 1)]
    row = groups[(groups["variant"] == "nn") & (groups["world_size"] == 2)].iloc[0]
    assert row["test_acc_mean"] == pytest.approx(mean)
    assert (row["test_acc_ci95_low"], row["test_acc_ci95_high"]) == pytest.approx(tuple(ends))
    assert "comparisons**" in md and "survives Holm" in md
    scaling = pd.read_csv(out / "report" / "sweep_scaling.csv")
    two = scaling[(scaling["variant"] == "scratch") & (scaling["world_size"] == 2)].iloc[0]
    eps = {w: statistics.mean(json.loads((out / f"lenet-scratch-ws{w}-b{PER_RANK * w}-s{s}" / "summary.json")
                                         .read_text())["examples_per_s"] for s in SEEDS) for w in WORLD_SIZES}
    assert two["speedup"] == pytest.approx(eps[2] / eps[1])
    pairs = pd.read_csv(out / "report" / "sweep_pairwise.csv")
    acc_rows = pairs[(pairs["metric"] == "test_acc") & (pairs["variant_a"] == "scratch")]
    assert len(acc_rows) == 2 and acc_rows["ci95_low"].notna().all()  # an interval per world size


def test_emulated_ranks_match_the_sweeps_two_rank_cell(tiny_sweep, data_dir, tmp_path):
    """--bn-emulate-ranks 2 in one process trains like the sweep's real 2-rank gloo run of nn."""
    from bench.run.config import from_argv
    from bench.run.runner import train

    def run(*extra: str) -> dict:
        return train(from_argv(["--variant", "nn", "--batch-size", str(2 * PER_RANK), "--seed", "0",
                                "--epochs", "1", "--limit-train", "1024", "--limit-test", "500", "--no-profile",
                                "--warmup-steps", "2", "--data-dir", str(data_dir), "--out", str(tmp_path),
                                "--device", "cpu", *extra]))

    emulated = run("--bn-emulate-ranks", "2")
    real = json.loads((tiny_sweep["out"] / "lenet-nn-ws2-b128-s0" / "summary.json").read_text())
    assert emulated["run_name"] == "lenet-nn-ws1-b128-e2-s0" and emulated["per_rank_batch"] == 128
    assert emulated["train_loss"] == pytest.approx(real["train_loss"], abs=1e-4)
    assert abs(emulated["test_acc"] - real["test_acc"]) <= 1 / 500 + 1e-9  # one test image may flip
    whole_batch = run()  # the same run with one statistic over all 128: the check can fail
    assert abs(whole_batch["train_loss"] - real["train_loss"]) > 1e-3
