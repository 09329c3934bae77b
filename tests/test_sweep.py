"""launch.sweep: the matrix, resume after a kill, progress lines, the report, and emulated ranks."""
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
from pathlib import Path

import pandas as pd
import pytest

from bench.errors import UsageError
from launch import matrix, sweep
from tests.procs import REPO, env

VARIANTS, WORLD_SIZES, SEEDS, PER_RANK = ("scratch", "nn"), (1, 2), (0, 1), 64
T_975 = {1: 12.706205}  # two-sided 95 % Student t, from a printed table
SWEEP_TIMEOUT_S = 420


def tiny_args(out: Path, data_dir: Path) -> list[str]:
    return ["--variants", *VARIANTS, "--world-sizes", *map(str, WORLD_SIZES), "--per-rank-batch-sizes",
            str(PER_RANK), "--seeds", *map(str, SEEDS), "--epochs", "1", "--out", str(out),
            "--limit-train", "1024", "--limit-test", "500", "--no-profile", "--warmup-steps", "2",
            "--data-dir", str(data_dir)]


def expected_names() -> list[str]:
    """Cell order: seeds outermost, then world size, then variant; names by bench's scheme."""
    return [f"lenet-{v}-ws{w}-b{PER_RANK * w}-s{s}" for s in SEEDS for w in WORLD_SIZES for v in VARIANTS]


# ------------------------------------------------------------------ matrix, no processes

def test_cells_in_order_with_global_batch_from_per_rank(tmp_path):
    m, args = matrix.merge({}, {"variants": list(VARIANTS), "world_sizes": list(WORLD_SIZES),
                                "per_rank_batch_sizes": [PER_RANK], "seeds": list(SEEDS), "epochs": 1,
                                "out": str(tmp_path)}, ["--limit-train", "1024"])
    s = matrix.build(m, args)
    assert [c.run_name for c in s.cells] == expected_names()
    assert [(c.world_size, c.global_batch, c.per_rank_batch) for c in s.cells[:4]] == [
        (1, 64, 64), (1, 64, 64), (2, 128, 64), (2, 128, 64)]
    assert s.cells[2].train_args == ("--variant", "scratch", "--batch-size", "128", "--seed", "0",
                                     "--epochs", "1", "--out", str(tmp_path), "--limit-train", "1024")


def test_preset_then_toml_then_flags(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('preset = "seed"\nseeds = [7, 8]\nper_rank_batch_sizes = [32]\n'
                    '[train]\nlimit_train = 2048\nprofile = false\nlr = 0.5\n')
    m, args = matrix.merge(matrix.load_toml(str(toml)), {"variants": ["nn"], "epochs": None}, ["--lr", "0.25"])
    assert m["variants"] == ["nn"]                  # flag over preset
    assert m["seeds"] == [7, 8] and m["epochs"] == 10  # TOML over preset; preset where nobody else speaks
    assert "batch_sizes" not in m and m["per_rank_batch_sizes"] == [32]  # one batch axis replaces the other
    assert args == ["--model", "lenet", "--lr", "0.5", "--limit-train", "2048", "--no-profile", "--lr", "0.25"]
    assert matrix.build(m, args).config.lr == 0.25  # the last --lr wins, as in argparse


@pytest.mark.parametrize("toml,flags,passthrough,fragment", [
    ({}, {}, ["--variant", "nn"], "use the sweep's --variants"),
    ({}, {}, ["--run-name=x"], "names runs itself"),
    ({"train": {"overwrite": True}}, {}, [], "not a bench.train option"),
    ({"train": {"no_such": 1}}, {}, [], "not a bench.train option"),
    ({"train": {"profile": "no"}}, {}, [], "true or false"),
    ({"preset": "nope"}, {}, [], "unknown preset"),
    ({"batch_sizes": [64]}, {"per_rank_batch_sizes": [8]}, [], None),  # flags win: not an error
])
def test_bad_matrices_are_usage_errors(toml, flags, passthrough, fragment):
    if fragment is None:
        m, _ = matrix.merge(toml, flags, passthrough)
        assert m["per_rank_batch_sizes"] == [8] and "batch_sizes" not in m
        return
    with pytest.raises(UsageError, match=fragment):
        matrix.merge(toml, flags, passthrough)


def test_preset_seed_dry_run_prints_the_textbook_cells(tmp_path, capsys):
    assert sweep.main(["--preset", "seed", "--out", str(tmp_path / "runs"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    names = re.findall(r"^\[\d+/10\] (\S+)  to run$", out, flags=re.M)
    assert names == [f"lenet-{v}-ws1-b256-s{s}" for s in range(5) for v in ("scratch", "nn")]
    commands = [line.split() for line in out.splitlines() if line.startswith("      ")]
    assert len(commands) == 10 and all(c[1:3] == ["-m", "bench.train"] for c in commands)
    for c in commands:
        opts = dict(zip(c[3::2], c[4::2]))
        assert (opts["--epochs"], opts["--batch-size"], opts["--lr"], opts["--model"]) == ("10", "256", "1.0", "lenet")
    assert not list((tmp_path / "runs").glob("*/config.json"))  # a dry run runs nothing


def test_world_size_above_one_uses_torchrun_and_leftovers_overwrite():
    cell = matrix.Cell("nn", 4, 256, 0, "x", ("--variant", "nn"))
    assert sweep.command(cell, overwrite=True)[1:6] == [
        "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m"]
    assert sweep.command(cell, overwrite=True)[-1] == "--overwrite"
    one = matrix.Cell("nn", 1, 256, 0, "x", ("--variant", "nn"))
    assert sweep.command(one, overwrite=False) == [sys.executable, "-m", "bench.train", "--variant", "nn"]


def test_more_ranks_than_gpus_is_refused_unless_gloo(monkeypatch, tmp_path):
    import torch

    from bench import dist
    monkeypatch.setattr(dist, "resolve_device", lambda requested, local_rank: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    m, args = matrix.merge({}, {"world_sizes": [1, 2], "out": str(tmp_path)}, [])
    with pytest.raises(UsageError, match="world size 2 needs 2 GPUs, this machine has 1"):
        sweep.check_devices(matrix.build(m, args))
    assert "share GPUs" in sweep.check_devices(matrix.build(m, args + ["--backend", "gloo"]))


def test_cell_states(tmp_path):
    assert sweep.cell_state(tmp_path / "nope") == "missing"
    (tmp_path / "a").mkdir()
    assert sweep.cell_state(tmp_path / "a") == "started"
    for status in ("running", "complete", "diverged", "failed"):
        (tmp_path / "a" / "summary.json").write_text(json.dumps({"status": status}))
        assert sweep.cell_state(tmp_path / "a") == status
    (tmp_path / "a" / "summary.json").write_text("{not json")
    assert sweep.cell_state(tmp_path / "a") == "unreadable"


@pytest.mark.parametrize("seconds,text", [(12.3, "12 s"), (80, "1m20s"), (3900, "1h05m"), (59.6, "1m00s")])
def test_durations_read_like_the_progress_line(seconds, text):
    assert sweep.fmt_duration(seconds) == text


def test_estimate_uses_the_same_world_size_when_seen():
    cells = [matrix.Cell("nn", w, 64 * w, 0, f"c{w}", ()) for w in (1, 2, 2, 4)]
    assert sweep.estimate_left_s(cells, {}) is None
    # ws 1 and 2 from their own means (10, 30); ws 4 unseen: mean of every cell so far (10+20+40)/3
    assert sweep.estimate_left_s(cells, {1: [10.0], 2: [20.0, 40.0]}) == pytest.approx(10 + 30 + 30 + 70 / 3)


def test_failed_cell_does_not_stop_the_sweep_and_is_retried(tmp_path, monkeypatch, capsys):
    """Cells stood in for by tiny scripts: b fails, c diverges; the sweep goes on, exits 1, names b."""
    outcome = {"a": "complete", "b": None, "c": "diverged"}

    def fake_command(cell, overwrite):
        status = outcome[cell.run_name]
        if status is None:
            return [sys.executable, "-c", "print('first line'); print('boom'); raise SystemExit(3)"]
        d = tmp_path / cell.run_name
        return [sys.executable, "-c", f"import json, os; os.makedirs({str(d)!r}, exist_ok=True); "
                f"json.dump({{'status': {status!r}}}, open({str(d / 'summary.json')!r}, 'w')); "
                f"raise SystemExit({int(status != 'complete')})"]

    monkeypatch.setattr(sweep, "command", fake_command)
    s = matrix.Sweep(tuple(matrix.Cell("nn", 1, 64, i, n, ()) for i, n in enumerate(outcome)), tmp_path,
                     None, {})
    assert sweep.run(s) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("[1/3] a  done in ")
    assert lines[2].startswith("[2/3] b  FAILED (exit 3) after ")
    assert lines[3:5] == ["      | first line", "      | boom"]
    assert lines[5].startswith("[3/3] c  diverged in ") and lines[5].endswith(")")
    assert lines[-1].startswith("launch.sweep: 1 failed cell(s): b (exit 3);")
    record = json.loads((tmp_path / "sweep.json").read_text())
    assert [c["outcome"] for c in record["cells"]] == ["complete", "failed (exit 3)", "diverged"]

    outcome["b"] = "complete"  # fixed: a re-run retries only b
    assert sweep.run(s) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "[1/3] a  already complete, skipped"
    assert lines[3] == "[3/3] c  already diverged, skipped"
    assert lines[2].startswith("[2/3] b  done in ")


# ------------------------------------------------------------------ a real tiny sweep, killed and resumed

def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "launch.sweep", *args], cwd=REPO, env=env(),
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
    resumed = subprocess.run([sys.executable, "-m", "launch.sweep", *args], cwd=REPO, env=env(),
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
    from bench.config import from_argv
    from bench.train import train

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
