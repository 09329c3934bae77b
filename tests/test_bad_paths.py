"""A path that cannot be used is one line and exit code 2 before any work: an output under a regular
file, a keep folder that is a file, an input that does not exist. The GPU check refuses at once
without a GPU. Nothing is created."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from bench.errors import EXIT_USAGE
from tests.procs import REPO, env, python_m

# (module, arguments with FILE for an existing regular file, words the one line must hold)
CASES = {
    "collectives, out under a file": ("bench.collectives", ["--out", "FILE/x.csv"], ["--out", "is a file"]),
    "readme_picture, keep is a file": ("devtools.readme_picture", ["--keep", "FILE"], ["--keep", "is a file"]),
    "micro_table, out under a file": ("analysis.micro_table", ["FILE", "--out", "FILE/sub"], ["--out", "is a file"]),
    "micro_table, csv is a folder": ("analysis.micro_table", ["."], ["csv", "is a folder"]),
}


def _one_line(p, module: str) -> str:
    assert p.returncode == EXIT_USAGE, (p.returncode, p.stderr)
    assert p.stdout == "" and len(p.stderr.splitlines()) == 1, p.stderr
    line = p.stderr.splitlines()[0]
    assert line.startswith(f"{module}: error: ") and "Traceback" not in p.stderr, line
    return line


@pytest.mark.parametrize("case", list(CASES))
def test_an_unusable_path_is_one_line_and_exit_2(case, tmp_path):
    module, args, words = CASES[case]
    (tmp_path / "FILE").write_text("a regular file\n")
    line = _one_line(python_m(module, *args, timeout=120, cwd=tmp_path), module)
    assert all(w in line for w in words), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]  # nothing created


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_gpu_reliability_check_without_a_gpu_refuses_at_once(tmp_path):
    module = "devtools.gpu_reliability_check"
    (tmp_path / "data").mkdir()
    p = python_m(module, "--data-dir", "data", "--out", "out", timeout=120, cwd=tmp_path)
    assert "GPU" in _one_line(p, module)
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no --out folder


@pytest.mark.parametrize("args, words", [(["--mb", "-1"], ["--mb", "positive", "-1"]),
                                         (["--source", "nothing.json.gz"], ["--source", "no such file"])])
def test_trace_parse_benchmark_refuses_bad_input_in_one_line(args, words, tmp_path):
    script = "benchmarks/trace_parse.py"
    p = subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True, timeout=120,
                       env=env(OMP_NUM_THREADS="1"), cwd=tmp_path)
    line = _one_line(p, script)
    assert all(w in line for w in words), line
    assert list(tmp_path.iterdir()) == []
