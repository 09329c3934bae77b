"""The TensorBoard launcher as a user starts it, and the HTTP helpers that talk to it.

Shared by tests/test_view.py (the plugin's endpoints) and tests/test_browser.py (its pages).
"""
from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.procs import REPO, env, free_port

VIEW_MODULE = "launch.view"  # the launcher: `python -m VIEW_MODULE RUNS... --port N`
READY_S = 90  # TensorBoard start plus the plugin parsing a few small traces; more is a hang


def view_command(*args: str) -> list[str]:
    return [sys.executable, "-m", VIEW_MODULE, *map(str, args)]


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (a connection is refused)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def fetch(port: int, path: str, **query) -> bytes:
    url = f"http://127.0.0.1:{port}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=30) as r:
        data = r.read()
        return gzip.decompress(data) if r.headers.get("Content-Encoding") == "gzip" else data


def get_json(port: int, path: str, **query):
    return json.loads(fetch(port, path, **query))


def profiler(port: int, endpoint: str, **query):
    return get_json(port, f"/data/plugin/pytorch_profiler/{endpoint}", **query)


class Viewer:
    """The launcher over `paths` on a free port, with its temp dir and console captured."""

    def __init__(self, paths: list[Path], tmp: Path):
        self.port, self.tmp = free_port(), tmp
        self.log = tmp / "view.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(view_command(*paths, "--port", str(self.port)), stdout=log,
                                         stderr=subprocess.STDOUT, cwd=REPO, env=env(TMPDIR=str(tmp)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def wait_for_runs(self, n: int) -> list[str]:
        """Poll the plugin until it has loaded `n` runs; fail (with the console) after READY_S."""
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{VIEW_MODULE} exited early:\n{self.log.read_text()}"
            try:
                runs = profiler(self.port, "runs")
                if not runs["loading"] and len(runs["runs"]) >= n:
                    return runs["runs"]
            except (urllib.error.URLError, ConnectionError):
                pass  # not listening yet
            time.sleep(1)
        pytest.fail(f"TensorBoard not ready after {READY_S} s:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
