"""bench.timing for real: the shuffled order recorded and reproducible from the seed, every rank's
steps under torchrun with gloo, the run directory through the report, and how launchers call it."""
from __future__ import annotations

import sys

import pandas as pd
import pytest

from analysis.report import build
from bench import rundir
from bench.tools.interleave import arm_keys, round_orders
from bench.tools.timingcli import from_argv
from launch import timing_phase
from launch.matrix import Cell
from tests.procs import python_m, torchrun

SMALL = ("--steps", "2", "--warmup", "1", "--limit-train", "256", "--batch-size", "32", "--device", "cpu")


def timed(data_dir, out, *args) -> tuple[dict, pd.DataFrame]:
    p = python_m("bench.timing", "--variants", "nn", "scratch", *SMALL, "--data-dir", data_dir, "--out", out, *args)
    assert p.returncode == 0, p.stderr[-3000:]
    run_dir = next(out.glob("timing-*"))
    return rundir.read_json(run_dir / rundir.CONFIG), pd.read_csv(run_dir / rundir.TIMING)


def orders_in(table: pd.DataFrame) -> list[list[str]]:
    first = table[table["step"] == 0].sort_values(["round", "position"])
    return [[f"{v}#{c}" for v, c in zip(g["variant"], g["copy"])] for _, g in first.groupby("round")]


def test_the_shuffled_order_is_recorded_and_reproducible_from_the_seed(data_dir, tmp_path):
    config, table = timed(data_dir, tmp_path / "a", "--rounds", "4", "--seed", "3")
    expected = [[f"{v}#{c}" for v, c in o] for o in round_orders(arm_keys(["nn", "scratch"]), 4, 3)]
    assert config["kind"] == rundir.TIMING_KIND and config["orders"] == expected
    assert orders_in(table) == expected  # the steps ran in the recorded order
    assert len(table) == 3 * 4 * 2 and set(table["rank"]) == {0}
    # the recorded order is round_orders' of the seed, which the same seed repeats and another changes
    keys = arm_keys(["nn", "scratch"])
    assert round_orders(keys, 4, 3) == round_orders(keys, 4, 3) != round_orders(keys, 4, 4)
    md = build([str(tmp_path / "a")], tmp_path / "report").read_text()  # a real timing directory, reported
    assert "A/A control (nn vs nn):" in md and "**scratch** against nn (interleaved timing only):" in md


def test_two_gloo_ranks_time_scratch_sync_against_nn(data_dir, tmp_path):
    p = torchrun(2, "bench.timing", "--variants", "nn", "scratch-sync", "--rounds", "3", *SMALL,
                 "--data-dir", data_dir, "--out", tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    run_dir = next(tmp_path.glob("timing-*"))
    table = pd.read_csv(run_dir / rundir.TIMING)
    counts = table.groupby(["variant", "copy", "rank"]).size()
    assert counts.to_dict() == {(v, c, r): 3 * 2 for v, c in arm_keys(["nn", "scratch-sync"]) for r in (0, 1)}
    load = pd.read_csv(run_dir / rundir.LOAD)
    assert load["when"].tolist() == ["start", "round", "round", "round", "end"]
    assert rundir.read_json(run_dir / rundir.CONFIG)["world_size"] == 2


def test_a_variant_named_twice_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        from_argv(["--variants", "nn", "nn"])
    assert e.value.code == 2 and "names a variant twice" in capsys.readouterr().err


def test_launchers_run_the_phase_under_their_launcher_with_the_baseline_first():
    cmd = timing_phase.command(["scratch", "nn"], 2, "runs/x", ["--epochs", "1", "--limit-train", "4096"], 12, 3)
    assert cmd[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    i = cmd.index("--variants")
    assert cmd[i + 1:i + 3] == ["nn", "scratch"] and "--epochs" not in cmd
    assert cmd[cmd.index("--limit-train") + 1] == "4096" and cmd[cmd.index("--rounds") + 1] == "12"
    assert timing_phase.command(["nn"], 1, "o", [], 10, 5)[:3] == [sys.executable, "-m", "bench.timing"]


def test_a_sweep_gets_one_timing_phase_per_configuration_at_its_first_seed():
    def cell(variant, ws, seed, batch=64):
        args = ("--variant", variant, "--batch-size", str(batch), "--seed", str(seed), "--epochs", "1",
                "--out", "runs/s", "--limit-train", "1024")
        return Cell(variant, ws, batch, seed, f"{variant}-{ws}-{seed}", args)
    cells = [cell(v, ws, s) for ws in (1, 2) for v in ("nn", "scratch") for s in (0, 1)]
    groups = timing_phase.sweep_groups(cells)
    assert [(variants, ws) for variants, ws, _ in groups] == [(["nn", "scratch"], 1), (["nn", "scratch"], 2)]
    args = groups[0][2]
    assert args[args.index("--seed") + 1] == "0" and args[args.index("--limit-train") + 1] == "1024"


@pytest.mark.parametrize("asked, because", [(None, "10 rounds are the fewest it runs"),
                                            (200, "as --timing-rounds asks")])
def test_the_announcement_says_why_a_phase_runs_over_its_fifth(asked, because, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(timing_phase, "median_steps", lambda out: {"nn": 500.0, "scratch": 900.0})
    monkeypatch.setattr(timing_phase.subprocess, "call", lambda cmd: 0)  # announce only; bench.timing not run
    assert timing_phase.run(["nn", "scratch"], 1, str(tmp_path), [], runs_s=30.0, rounds=asked) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"timing phase: nn, scratch interleaved, {asked or 10} rounds") and because in line
