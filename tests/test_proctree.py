"""tests.proctree: jobs that end in time give their exit codes; a job past its deadline fails the test with
the stacks of all its processes, its own session's and a child's in a session of its own, and leaves none
behind."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests import procs
from tests.proctree import FAULTHANDLER, descendants, wait_together

# a parent that starts a child in a session of its own (as launch.run starts torchrun), then both hang
HANG = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], "
        "start_new_session=True); time.sleep(600)")


def _start(code: str, log) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT,
                                env=procs.env(**FAULTHANDLER), start_new_session=True)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_jobs_that_end_in_time_give_their_codes(tmp_path):
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    jobs = [_start("print('a')", logs[0]), _start("import sys; sys.exit(3)", logs[1])]
    assert wait_together(jobs, logs, 60) == [0, 3]
    assert logs[0].read_text() == "a\n"


def test_a_hung_job_fails_with_every_stack_and_leaves_nothing(tmp_path):
    log = tmp_path / "hung.log"
    job = _start(HANG, log)
    end = time.monotonic() + 30
    while not descendants(job.pid) and time.monotonic() < end:
        time.sleep(0.05)
    (child,) = descendants(job.pid)
    time.sleep(0.5)  # the child's interpreter reaches its sleep
    with pytest.raises(pytest.fail.Exception) as failed:
        wait_together([job], [log], 1)
    message = str(failed.value)
    assert "not finished within 1 s" in message and f"  {job.pid} " in message and f"  {child} " in message
    # both interpreters printed their stacks into the log, and the message carries the log's tail
    assert message.count("Fatal Python error: Aborted") == 2, message
    assert message.count('File "<string>", line 1 in <module>') == 2, message
    assert job.poll() is not None
    end = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < end:
        time.sleep(0.05)
    assert _gone(child)
