"""launch.sweep --plan-seeds and --resolve: the plan from a hand-made pilot, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis import report
from launch import sweep_runner as sweep

# The textbook question: a per-seed spread of 0.7 points, a difference of 1.4 points (d = 2), which
# needs 6 runs per group for 80 % power at 5 % (Cohen 1988, Table 2.4.1).
ACCURACY = {"scratch": [0.843, 0.850, 0.857], "nn": [0.857, 0.864, 0.871]}


def write_pilot(root: Path) -> Path:
    for variant, accs in ACCURACY.items():
        for seed, acc in enumerate(accs):
            d = root / f"lenet-{variant}-ws1-b256-s{seed}"
            d.mkdir(parents=True)
            (d / "config.json").write_text(json.dumps({
                "variant": variant, "model": "lenet", "world_size": 1, "per_rank_batch": 256, "global_batch": 256,
                "epochs": 10, "seed": seed, "lr": 1.0, "bn_group_size": 1, "device_type": "cpu"}))
            (d / "summary.json").write_text(json.dumps({
                "status": "complete", "test_acc": acc, "train_acc": acc, "train_loss": 0.4,
                "examples_per_s": 1000.0 + 10 * seed, "step_ms_p50": 256.0 / (1.0 + 0.01 * seed)}))
    return root


def test_plan_seeds_answers_from_the_pilot_and_runs_nothing(tmp_path, capsys):
    pilot = write_pilot(tmp_path / "pilot")
    before = sorted(p.name for p in pilot.iterdir())
    rc = sweep.main(["--variants", "scratch", "nn", "--seeds", *map(str, range(6)), "--out", str(pilot),
                     "--plan-seeds", "--resolve", "1.4pt", "--resolve", "5%"])
    out = capsys.readouterr().out
    assert rc == 0
    assert sorted(p.name for p in pilot.iterdir()) == before  # no cell, no logs, no sweep.json
    acc_row = next(line for line in out.splitlines() if line.startswith("| test_acc |"))
    assert "| 3/3 |" in acc_row and "0.70 pt / 0.70 pt" in acc_row and acc_row.endswith("| 6 for 1.4pt |")
    assert "resolvable with 6 seeds" in out and "from 3 seeds" in out
    other = tmp_path / "elsewhere"
    assert sweep.main(["--out", str(other), "--pilot", str(pilot), "--plan-seeds"]) == 0
    assert not other.exists() and "--resolve 0.5pt" in capsys.readouterr().out


@pytest.mark.parametrize("args,fragment", [
    (["--plan-seeds", "--resolve", "abc"], "launch.sweep: error: --resolve 'abc': give a difference such as 0.5pt"),
    (["--plan-seeds", "--resolve=-0.5pt"], "must be above zero"),
    (["--plan-seeds", "--resolve", "-0.5pt"], "argument --resolve: expected one argument"),
    (["--plan-seeds", "--resolve", "1pt", "--resolve", "2pt"], "given twice"),
    (["--dry-run", "--pilot", "."], "add --plan-seeds"),
    (["--plan-seeds"], "no run directories under"),
])
def test_bad_plan_input_is_one_line_and_exit_2(tmp_path, capsys, args, fragment):
    try:
        rc = sweep.main(["--out", str(tmp_path / "empty"), *args])
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_report_rejects_a_bad_target_in_one_line(tmp_path, capsys):
    assert report.main([str(write_pilot(tmp_path / "p")), "-o", str(tmp_path / "r"), "--resolve", "abc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("analysis.report: error: --resolve 'abc'") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
