"""Quiet by default: a profiled run, in an environment where the user set nothing, prints no line of
the profiler library's own (kineto's USDT markers, its CUDA probe error on a machine without a GPU,
its stages); a level the user sets is kept, and Python's warnings still pass."""
from __future__ import annotations

import re
import subprocess
import sys

from tests.procs import REPO, env

# kineto's log format: LEVEL:date time pid:tid File.cpp:line] message
FOREIGN = re.compile(r"^(USDT|STAGE|ERROR|WARNING|INFO|VERBOSE):\d{4}-\d\d-\d\d |gpuGetDeviceCount|profiler_(start|stop)")
TINY = ("--variant", "nn", "--epochs", "1", "--batch-size", "64", "--limit-train", "512", "--limit-test", "100")


def _unset_by_user() -> dict[str, str]:
    """The test environment with no kineto setting, as a user who set nothing has it."""
    return {k: v for k, v in env().items() if k != "KINETO_LOG_LEVEL"}


def _train(tmp_path, data_dir, **extra: str) -> subprocess.CompletedProcess:
    e = {**_unset_by_user(), "OMP_NUM_THREADS": "1", **extra}
    return subprocess.run([sys.executable, "-m", "bench.train", *TINY, "--data-dir", str(data_dir),
                           "--out", str(tmp_path / "runs")], capture_output=True, text=True, timeout=300,
                          env=e, cwd=tmp_path)


def test_a_profiled_cpu_run_prints_no_foreign_line(tmp_path, data_dir):
    p = _train(tmp_path, data_dir)
    assert p.returncode == 0, p.stderr[-2000:]
    assert [line for line in p.stderr.splitlines() if FOREIGN.search(line)] == []
    traces = list((tmp_path / "runs").glob("*/traces/rank0.*.pt.trace.json.gz"))
    assert len(traces) == 1  # the profiler did run: the quiet is not an absent profiler


def test_a_level_the_user_sets_is_kept(tmp_path, data_dir):
    """The control: at kineto's level 4 (errors and USDT markers) its lines appear, so the filter above
    would see them if the suite did not switch them off."""
    p = _train(tmp_path, data_dir, KINETO_LOG_LEVEL="4")
    assert p.returncode == 0, p.stderr[-2000:]
    assert any(line.startswith("USDT:") for line in p.stderr.splitlines()), p.stderr[-2000:]


def test_real_warnings_still_pass():
    code = "import bench.run, bench.tools, launch, warnings; warnings.warn('a real warning')"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=_unset_by_user(), cwd=REPO)
    assert p.returncode == 0 and "UserWarning: a real warning" in p.stderr, p.stderr
