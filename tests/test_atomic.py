"""A writer killed mid-write leaves the previous complete file, never a truncated one."""
from __future__ import annotations

import csv
import json
import random
import signal
import subprocess
import textwrap
import time

import pytest

from bench import rundir
from tests.procs import env
from tests.reliab_util import PY

# The child writes version 1, then dies by SIGKILL at the chosen moment of writing version 2:
# after half the bytes reached the file ("write"), or with all bytes written but before the
# rename ("fsync"). Nothing runs after SIGKILL: no finally, no atexit.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from bench import rundir
    kind, target, moment = sys.argv[1], sys.argv[2], sys.argv[3]
    def version(v):
        rows = [{**{c: 0.5 for c in rundir.METRICS_COLUMNS}, "epoch": i, "train_loss": v + i / 7}
                for i in range(20000 if v == 2 else 3)]
        return rows
    def write(v):
        if kind == "json":
            rundir.write_json(target, {"status": "complete" if v == 1 else "running", "rows": version(v)})
        elif kind == "csv":
            rundir.write_csv(target, rundir.METRICS_COLUMNS, version(v))
        elif kind == "naive":  # what the format must not do: write in place
            with open(target, "w") as f:
                import json; f.write(json.dumps({"status": "v%d" % v, "rows": version(v)}))
                f.flush(); os.fsync(f.fileno())
    write(1)
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)

    class HalfThenDie:  # a file whose first write puts half the bytes on disk, then the process dies
        def __init__(self, fd, keep=None): self.fd, self.keep = fd, keep
        def __enter__(self): return self
        def __exit__(self, *a): pass
        def write(self, data):
            data = data.encode() if isinstance(data, str) else data
            os.write(self.fd, data[: len(data) // 2]); die()

    if moment == "fsync":
        os.fsync = die
    elif kind == "naive":
        import builtins
        _open = builtins.open
        def half_open(*a, **k):
            f = _open(*a, **k)
            return HalfThenDie(f.fileno(), keep=f)
        builtins.open = half_open
    else:
        os.fdopen = lambda fd, mode="r": HalfThenDie(fd)
    write(2)
""")


def run_child(kind: str, target, moment: str) -> int:
    p = subprocess.run([PY, "-c", CHILD, kind, str(target), moment], env=env(), timeout=60)
    return p.returncode


@pytest.mark.parametrize("moment", ["write", "fsync"])
def test_killed_json_writer_leaves_previous_file(moment, tmp_path):
    target = tmp_path / "summary.json"
    assert run_child("json", target, moment) == -signal.SIGKILL
    obj = json.loads(target.read_text())  # parses: whole
    assert obj["status"] == "complete" and len(obj["rows"]) == 3
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["summary.json"]


@pytest.mark.parametrize("moment", ["write", "fsync"])
def test_killed_csv_writer_leaves_previous_file(moment, tmp_path):
    target = tmp_path / "metrics.csv"
    assert run_child("csv", target, moment) == -signal.SIGKILL
    with open(target) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert all(len(r) == len(rundir.METRICS_COLUMNS) and None not in r.values() and "" not in r.values()
               for r in rows)


def test_the_kill_really_lands_mid_write(tmp_path):
    """Control: the same kill against an in-place writer does leave a truncated file."""
    target = tmp_path / "naive.json"
    assert run_child("naive", target, "write") == -signal.SIGKILL
    with pytest.raises(json.JSONDecodeError):
        json.loads(target.read_text())


LOOP = textwrap.dedent("""
    import sys
    from bench import rundir
    target = sys.argv[1]
    big = ["x" * 100] * 20000
    v = 0
    while True:
        v += 1
        rundir.write_json(target, {"version": v, "payload": big, "end": v})
""")


def test_random_kills_never_leave_a_partial_file(tmp_path):
    target = tmp_path / "summary.json"
    rng = random.Random(0)
    versions = []
    for _ in range(5):
        p = subprocess.Popen([PY, "-c", LOOP, str(target)], env=env())
        try:
            deadline = time.monotonic() + 60
            while not target.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
        obj = json.loads(target.read_text())
        assert obj["version"] == obj["end"] and len(obj["payload"]) == 20000
        versions.append(obj["version"])
    assert max(versions) > 1  # the kills landed while it was rewriting, not before the first write
