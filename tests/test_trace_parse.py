"""benchmarks/trace_parse.py is a script run by hand (it prints MB/s, no test times it); its flags
are still checked like every command's: a bad one is one line and exit 2, before any trace is built."""
from __future__ import annotations

import subprocess
import sys

from bench.errors import EXIT_USAGE
from tests.procs import REPO, env


def test_a_bad_size_is_one_line_and_exit_2(tmp_path):
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "trace_parse.py"), "--mb", "lots"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env())
    assert p.returncode == EXIT_USAGE, (p.returncode, p.stderr)
    assert p.stdout == "" and len(p.stderr.splitlines()) == 1, p.stderr
    line = p.stderr.splitlines()[0]
    assert line.startswith("benchmarks/trace_parse.py: error: ") and "--mb" in line and "invalid float" in line, line
    assert list(tmp_path.iterdir()) == []
