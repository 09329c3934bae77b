"""Bad input: exit code 2, one stderr line naming the problem and the fix, no traceback, no run left."""
from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest

from bench.errors import EXIT_USAGE
from bench.run.datasets import fashion_mnist as fmnist
from tests.procs import REPO, env, free_port, python_m
from tests.reliab_util import TINY, train_cmd


def run_main(argv: list[str], capsys) -> tuple[int, list[str]]:
    from bench.run.runner import main
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own exit for flag errors
        rc = e.code
    err = capsys.readouterr().err
    return rc, err.splitlines()


def complete_runs(out: Path) -> list[Path]:
    return [p for p in out.rglob("summary.json") if json.loads(p.read_text()).get("status") == "complete"]


def assert_usage_error(rc: int, lines: list[str], out: Path, *words: str) -> None:
    assert rc == 2
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert complete_runs(out) == [] if out.exists() else True


def _damaged_copy(src: Path, dst_root: Path, name: str, content: bytes) -> Path:
    """A data dir whose `name` file holds `content` and whose other IDX files link to good ones."""
    raw = dst_root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for n in fmnist.FILES:
        if n == name:
            (raw / n).write_bytes(content)
        else:
            (raw / n).symlink_to(src / "FashionMNIST" / "raw" / n)
    return dst_root


# (flags, environment as rank 0 of a world, words the one line must contain)
CASES = {
    "unknown variant": (["--variant", "batchnorm"], {}, ["--variant", "batchnorm", "choose from"]),
    "unknown model": (["--model", "vgg99"], {}, ["--model", "vgg99", "choose from"]),
    "batch not divisible": (["--batch-size", "65"], {"WORLD_SIZE": "2"}, ["65", "not divisible", "multiple of 2"]),
    "per-rank batch 1, one rank": (["--batch-size", "1"], {}, ["per-rank batch 1", "synchronised variant"]),
    "per-rank batch 1, two ranks": (["--batch-size", "2", "--variant", "scratch"], {"WORLD_SIZE": "2"},
                                    ["per-rank batch 1", "larger --batch-size"]),
    "limit-train below a batch": (["--limit-train", "100", "--batch-size", "256"], {},
                                  ["--limit-train 100", "one global batch", "raise --limit-train"]),
    "sync on CPU, 2 ranks": (["--variant", "sync", "--device", "cpu"], {"WORLD_SIZE": "2"},
                             ["--variant sync", "CPU", "scratch-sync"]),
    "zero epochs": (["--epochs", "0"], {}, ["--epochs", "positive"]),
    "negative epochs": (["--epochs", "-3"], {}, ["--epochs", "positive"]),
    "zero lr": (["--lr", "0"], {}, ["--lr", "positive"]),
    "negative lr": (["--lr", "-0.1"], {}, ["--lr", "positive"]),
    "nan lr": (["--lr", "nan"], {}, ["--lr", "positive"]),
    "lr beyond float32": (["--lr", "1e300"], {}, ["--lr", "float32"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_flag_errors(case, tmp_path, data_dir, capsys, monkeypatch, keep_process_state):
    flags, world, words = CASES[case]
    for k, v in world.items():  # be rank 0 of that world: validation runs before any process group
        monkeypatch.setenv(k, v)
    if world:
        monkeypatch.setenv("RANK", "0")
    out = tmp_path / "runs"
    rc, lines = run_main(TINY + ["--data-dir", str(data_dir), "--out", str(out)] + flags, capsys)
    assert_usage_error(rc, lines, out, *words)
    assert not any(out.glob("*")) if out.exists() else True  # no run directory at all


def test_data_missing_everywhere(tmp_path, capsys, monkeypatch, keep_process_state):
    monkeypatch.setattr(fmnist, "DEBIAN_DIR", tmp_path / "no-debian-package")
    out = tmp_path / "runs"
    rc, lines = run_main(TINY + ["--data-dir", str(tmp_path / "nowhere"), "--out", str(out)], capsys)
    assert_usage_error(rc, lines, out, "not found", str(tmp_path / "nowhere"), "--download")
    assert not out.exists() or not any(out.iterdir())


def test_data_dir_cannot_be_created(tmp_path, capsys, keep_process_state):
    (tmp_path / "a-file").write_text("x")
    out = tmp_path / "runs"
    rc, lines = run_main(TINY + ["--data-dir", str(tmp_path / "a-file" / "data"), "--out", str(out)], capsys)
    assert_usage_error(rc, lines, out, "--data-dir", "is a file")


@pytest.mark.parametrize("name,damage,words", [
    ("train-labels-idx1-ubyte", "truncate", ["train-labels-idx1-ubyte", "truncated", "lay the data out again"]),
    ("t10k-images-idx3-ubyte", "truncate-header", ["t10k-images-idx3-ubyte", "truncated"]),
    ("train-labels-idx1-ubyte", "magic", ["train-labels-idx1-ubyte", "magic 2051", "expected 2049", "replace it"]),
])
def test_damaged_idx(name, damage, words, tmp_path, data_dir, capsys, keep_process_state):
    good = (data_dir / "FashionMNIST" / "raw" / name).read_bytes()
    content = {"truncate": good[: len(good) // 2], "truncate-header": good[:6],
               "magic": struct.pack(">I", 2051) + good[4:]}[damage]
    bad = _damaged_copy(data_dir, tmp_path / "data", name, content)
    out = tmp_path / "runs"
    rc, lines = run_main(TINY + ["--data-dir", str(bad), "--out", str(out)], capsys)
    assert_usage_error(rc, lines, out, *words)


def test_unwritable_out(tmp_path, data_dir, capsys, keep_process_state):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where --out should be")
    rc, lines = run_main(TINY + ["--data-dir", str(data_dir), "--out", str(blocker)], capsys)
    assert_usage_error(rc, lines, tmp_path / "nothing", "--out", "is a file")
    assert blocker.read_text() == "a file where --out should be"


def test_existing_run_dir_is_left_alone(tmp_path, data_dir, capsys, keep_process_state):
    run = tmp_path / "runs" / "mine"
    run.mkdir(parents=True)
    (run / "summary.json").write_text('{"status": "complete"}\n')
    rc, lines = run_main(TINY + ["--data-dir", str(data_dir), "--out", str(tmp_path / "runs"),
                                 "--run-name", "mine"], capsys)
    assert rc == 2 and len(lines) == 1 and "Traceback" not in lines[0]
    assert "exists" in lines[0] and "--resume" in lines[0] and "--overwrite" in lines[0]
    assert sorted(p.name for p in run.iterdir()) == ["summary.json"]
    assert (run / "summary.json").read_text() == '{"status": "complete"}\n'


def test_resume_without_checkpoint(tmp_path, data_dir, capsys, keep_process_state):
    run = tmp_path / "runs" / "half"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "summary.json").write_text('{"status": "running"}')
    rc, lines = run_main(TINY + ["--data-dir", str(data_dir), "--resume", str(run)], capsys)
    assert_usage_error(rc, lines, tmp_path / "runs", "checkpoint.pt", "--overwrite")


def test_resume_with_other_options(tmp_path, data_dir, capsys, keep_process_state):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"variant": "scratch", "lr": 1.0, "world_size": 1}))
    (run / "checkpoint.pt").write_bytes(b"")
    (run / "summary.json").write_text('{"status": "failed"}')
    rc, lines = run_main(TINY + ["--data-dir", str(data_dir), "--resume", str(run), "--variant", "nn",
                                 "--lr", "0.5"], capsys)
    assert_usage_error(rc, lines, tmp_path / "runs", "options differ", "variant", "lr")


def test_entry_point_prints_one_line(tmp_path, data_dir):
    """The real command line: a damaged data file, checked after torch and the data module load."""
    good = (data_dir / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").read_bytes()
    bad = _damaged_copy(data_dir, tmp_path / "data", "t10k-labels-idx1-ubyte", good[:1000])
    out = tmp_path / "runs"
    p = subprocess.run(train_cmd(*TINY, "--data-dir", str(bad), "--out", str(out)), env=env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [l for l in p.stderr.splitlines() if l.strip()]
    assert len(p.stderr.splitlines()) == 1 and "Traceback" not in p.stderr
    assert "t10k-labels-idx1-ubyte is truncated" in p.stderr
    assert not out.exists() or not any(out.iterdir())


def test_sync_on_cpu_two_processes_both_exit_2(tmp_path, data_dir):
    """Two real ranks (torchrun's variables, no torchrun): both refuse before any rendezvous."""
    port, out = str(free_port()), tmp_path / "runs"
    procs = [subprocess.Popen(train_cmd(*TINY, "--variant", "sync", "--device", "cpu", "--data-dir",
                                        str(data_dir), "--out", str(out), "--pg-timeout-s", "30"),
                              env=env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                      MASTER_PORT=port),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    results = []
    try:
        for p in procs:
            o, e = p.communicate(timeout=150)
            results.append((p.returncode, e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    # Code 2 from rank 1 too means it refused on its own: waiting for rank 0 at the rendezvous would
    # have ended in a timeout error (code 1) after --pg-timeout-s, not a usage error.
    assert [rc for rc, _ in results] == [2, 2]
    rank0_err, rank1_err = results[0][1].splitlines(), results[1][1].splitlines()
    assert len(rank0_err) == 1 and "--variant sync" in rank0_err[0] and "Traceback" not in rank0_err[0]
    assert rank1_err == []  # only rank 0 speaks
    assert not out.exists() or not any(out.iterdir())


# Every command's own flags: (module, arguments, words the one line must hold). A checked flag where a
# command has one, so its type is tested too; launch.compare passes unknown flags on to bench.train.
BAD_FLAGS = {
    "compare, unknown variant": ("launch.compare", ["--variants", "bogus"], ["--variants", "invalid choice"]),
    "kernels, unknown flag": ("analysis.kernels", [".", "-o", "out", "--bogus"], ["unrecognized", "--bogus"]),
    "micro_table, unknown flag": ("analysis.micro_table", [str(REPO / "README.md"), "--bogus"], ["unrecognized", "--bogus"]),
    "gpu_reliability_check, no data": ("devtools.gpu_reliability_check", ["--out", "x"], ["required", "--data-dir"]),
    "gpu_fused_check, too few reps": ("devtools.gpu_fused_check", ["out.csv", "--reps", "5"], ["--reps", ">= 30"]),
    "fused_compile_check, arch not a number": ("devtools.fused_compile_check", ["--arch", "ninety"],
                                              ["--arch", "invalid positive_int value"]),
    "view, port not a number": ("launch.view", [".", "--port", "http"], ["--port", "invalid positive_int value"]),
    "run, negative grace": ("launch.run", ["--grace-s", "-1"], ["--grace-s", "-1", "0 or a positive"]),
    "run, negative restarts": ("launch.run", ["--max-restarts", "-2"], ["--max-restarts", "0 or a positive"]),
    "modes, negative batch": ("bench.modes", ["--batches", "-4"], ["--batches", "positive integer", "-4"]),
    # checked up front: one line for the whole comparison, not one per run, and no run directory
    "compare, zero epochs": ("launch.compare", ["--epochs", "0"], ["--epochs", "positive integer"]),
    "compare, zero ranks": ("launch.compare", ["--nproc", "0"], ["--nproc", "positive integer"]),
    "compare, negative ranks": ("launch.compare", ["--nproc", "-3"], ["--nproc", "positive integer", "-3"]),
    "compare, mistyped train flag": ("launch.compare", ["--epochz", "3"], ["unrecognized", "--epochz"]),
    "micro_table, missing csv": ("analysis.micro_table", ["/nonexistent.csv"], ["/nonexistent.csv", "no such file"]),
    "fused_compile_check, negative arch": ("devtools.fused_compile_check", ["--arch", "-5"],
                                           ["--arch", "positive integer", "-5"]),
}


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_a_bad_flag_is_one_line_and_exit_2(case, tmp_path):
    """The real command line, on any machine (the GPU checks parse their flags before looking for
    a device): argparse's usage block would make this three lines or more."""
    module, args, words = BAD_FLAGS[case]
    p = python_m(module, *args, timeout=120, cwd=tmp_path)
    assert p.returncode == EXIT_USAGE, (p.returncode, p.stderr)
    assert p.stdout == "" and len(p.stderr.splitlines()) == 1, p.stderr
    line = p.stderr.splitlines()[0]
    assert f"{module}: error: " in line and "--batch-size" not in line, line
    assert all(w in line for w in words), line
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_fused_compile_check_without_a_compiler_is_one_line(tmp_path):
    """Under Triton's interpreter, or without triton at all, nothing can be compiled: one line, exit 2."""
    p = python_m("devtools.fused_compile_check", timeout=120, cwd=tmp_path, extra_env={"TRITON_INTERPRET": "1"})
    assert p.returncode == EXIT_USAGE and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert p.stderr.startswith("devtools.fused_compile_check: error: ")
    assert "TRITON_INTERPRET" in p.stderr or "triton is not importable" in p.stderr, p.stderr
