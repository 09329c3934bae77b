"""The way in without root: a virtual environment, the data from a folder of the four Fashion-MNIST
files anywhere, and launchers that find the project's interpreter and say which one runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run.datasets.fashion_mnist import DEBIAN_DIR
from tests.procs import REPO, python_m

GZ = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
      "t10k-labels-idx1-ubyte.gz")


def test_readme_and_make_give_the_no_root_commands():
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Without root", 1)[1].split("\n## ", 1)[0]
    for words in ("python3 -m venv .venv && .venv/bin/pip install -e '.[test]'",
                  "-m launch.compare --data-dir DIR", "-m launch.compare --download"):
        assert words in section, words
    assert "pip install -e '.[test]'" in (REPO / "Makefile").read_text()


@pytest.mark.skipif(not all((DEBIAN_DIR / n).is_file() for n in GZ), reason="needs the four files to copy")
def test_compare_trains_from_a_folder_of_the_four_files(tmp_path):
    """launch.compare with --data-dir naming a folder that holds only the four .gz files."""
    folder = tmp_path / "my-fashion-mnist"
    folder.mkdir()
    for name in GZ:
        (folder / name).symlink_to(DEBIAN_DIR / name)
    p = python_m("launch.compare", "--variants", "nn", "--data-dir", folder, "--epochs", "1",
                 "--batch-size", "64", "--limit-train", "256", "--limit-test", "100", "--no-profile",
                 "--out", tmp_path / "runs", "--report", tmp_path / "report", timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    config = json.loads((tmp_path / "runs" / "lenet-nn-ws1-b64-s0" / "config.json").read_text())
    assert config["data_dir"] == str(folder)
    assert (folder / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").stat().st_size == 47040016
    assert (tmp_path / "report" / "report.html").is_file()


def _fake_python(tmp_path: Path) -> tuple[Path, Path]:
    record = tmp_path / "argv.txt"
    stub = tmp_path / "fake-python"
    stub.write_text(f'#!/bin/sh\necho "$@" > {record}\n')
    stub.chmod(0o755)
    return stub, record


@pytest.mark.parametrize("script, env_extra, module", [
    ("launch/sweep", {}, "launch.sweep"),
    ("launch/view.sh", {}, "launch.view"),
    ("launch/multinode.sh", {"NNODES": "1", "RDZV_HOST": "127.0.0.1"}, "launch.run"),
])
def test_each_launcher_runs_python_and_says_which(script, env_extra, module, tmp_path):
    stub, record = _fake_python(tmp_path)
    env = {**os.environ, **env_extra, "PYTHON": str(stub)}
    r = subprocess.run(["bash", str(REPO / script), "--flag"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"{script}: interpreter {stub} ($PYTHON)"
    words = record.read_text().split()
    assert words[:2] == ["-m", module] and words[-1] == "--flag"


@pytest.mark.parametrize("has_venv, python_set", [(True, False), (False, False), (True, True)])
def test_the_interpreter_rule(has_venv, python_set, tmp_path):
    """$PYTHON, else the repository's .venv, else python3."""
    repo = tmp_path / "repo"
    venv_python = repo / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    if has_venv:
        venv_python.write_text("#!/bin/sh\n")
        venv_python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    if python_set:
        env["PYTHON"] = sys.executable
    script = f'repo={repo} launcher=x; . {REPO / "launch" / "python.sh"} >/dev/null; echo "$py"'
    got = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=30).stdout.strip()
    python3 = subprocess.run(["sh", "-c", "command -v python3"], env=env, capture_output=True, text=True).stdout.strip()
    assert got == (sys.executable if python_set else str(venv_python) if has_venv else python3)
