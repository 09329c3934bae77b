"""launch.sweep without training: the matrix, presets, bad input, cell states, progress and failures
(a real sweep: test_sweep_run.py)."""
from __future__ import annotations

import json
import re
import sys

import pytest

from bench import rundir
from bench.errors import UsageError
from launch import matrix
from launch import sweep_runner as sweep
from tests.sweep_cells import PER_RANK, SEEDS, VARIANTS, WORLD_SIZES, expected_names


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
    names = re.findall(r"^\[\d+/16\] (\S+)  to run$", out, flags=re.M)
    assert names == [f"lenet-{v}-ws1-b256-s{s}" for s in range(8) for v in ("scratch", "nn")]
    commands = [line.split() for line in out.splitlines() if line.startswith("      ")]
    assert len(commands) == 16 and all(c[1:3] == ["-m", "bench.train"] for c in commands)
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

    from bench.run import dist
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
    for status in rundir.STATUSES:
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

    def fake_command(cell, overwrite, resume=False):
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


def test_interrupted_cell_stops_the_sweep_and_resumes_on_the_rerun(tmp_path, monkeypatch, capsys):
    """Cell b is stopped by a preemption (status interrupted): the sweep stops there with exit 75 and
    leaves c for later; the next run skips a, continues b with --auto-resume, then runs c."""
    from bench.errors import EXIT_INTERRUPTED
    outcome, calls = {"a": "complete", "b": "interrupted", "c": "complete"}, []
    real_command = sweep.command

    def fake_command(cell, overwrite, resume=False):
        calls.append((cell.run_name, overwrite, resume))
        d = tmp_path / cell.run_name
        return [sys.executable, "-c", f"import json, os; os.makedirs({str(d)!r}, exist_ok=True); "
                f"json.dump({{'status': {outcome[cell.run_name]!r}}}, open({str(d / 'summary.json')!r}, 'w'))"]

    monkeypatch.setattr(sweep, "command", fake_command)
    s = matrix.Sweep(tuple(matrix.Cell("nn", 1, 64, i, n, ()) for i, n in enumerate(outcome)), tmp_path, None, {})
    assert sweep.run(s) == EXIT_INTERRUPTED
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("[2/3] b  INTERRUPTED after ") and lines[2].endswith("re-run the same command to resume")
    assert calls == [("a", False, False), ("b", False, False)]  # c never started
    assert [c["outcome"] for c in json.loads((tmp_path / "sweep.json").read_text())["cells"]] == [
        "complete", "interrupted"]

    outcome["b"] = "complete"
    assert sweep.cell_state(tmp_path / "b") == "interrupted"
    assert sweep.run(s) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("[2/3] b  resumed interrupted cell (--auto-resume)  done in ")
    assert calls[2:] == [("b", False, True), ("c", False, False)]  # resumed, not overwritten
    assert real_command(s.cells[1], False, True)[-1] == "--auto-resume"
