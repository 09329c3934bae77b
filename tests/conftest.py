"""Shared fixtures: real Fashion-MNIST laid out once per session, the real traces in tests/data, and
one pair of real 2-rank runs for the tests that need finished run directories."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """torchvision's FashionMNIST/raw layout, built from Debian's dataset-fashion-mnist files."""
    from bench.run.datasets import fashion_mnist as data

    return data.prepare(tmp_path_factory.mktemp("fashion-mnist"))


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    """Real kineto traces kept in the repository (provenance: tests/data/traces/PROVENANCE.md)."""
    path = REPO / "tests" / "data" / "traces"
    assert path.is_dir(), f"trace fixtures not found at {path}"
    return path


@pytest.fixture
def keep_process_state():
    """In-process runs install SIGTERM and SIGUSR1 handlers and may switch on deterministic algorithms."""
    import torch
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    yield
    for s, handler in handlers.items():
        signal.signal(s, handler)
    torch.use_deterministic_algorithms(False)


@pytest.fixture(scope="session")
def two_variant_runs(data_dir, tmp_path_factory) -> Path:
    """The folder holding a run of nn and one of scratch-sync, both on 2 gloo ranks under torchrun.

    One epoch of 16 steps at global batch 64 with the profiler on: its window (7 steps) and 2
    warm-up steps are untimed, so 7 steps are timed and every report section has something to show.
    The two jobs start together; each waits on its collectives, so they overlap well on 2 cores.
    """
    from tests.procs import start_torchrun

    base, variants = tmp_path_factory.mktemp("two-variant-runs"), ("nn", "scratch-sync")
    out, logs = base / "runs", {v: base / f"{v}.log" for v in variants}
    jobs = {v: start_torchrun(2, "bench.train", "--variant", v, "--epochs", "1", "--batch-size", "64",
                              "--limit-train", "1024", "--limit-test", "500", "--warmup-steps", "2",
                              "--data-dir", data_dir, "--out", out, log=logs[v])
            for v in variants}
    try:
        codes = {v: job.wait(timeout=300) for v, job in jobs.items()}
    except subprocess.TimeoutExpired:
        pytest.fail("the two runs for the browser tests took over 300 s")
    finally:
        for job in jobs.values():
            if job.poll() is None:
                job.terminate()  # torchrun passes it on to its ranks
                job.wait(timeout=30)
    for v, rc in codes.items():
        assert rc == 0, f"{v} run failed:\n{logs[v].read_text()[-3000:]}"
    return out


@pytest.fixture(scope="module")
def one_intra_op_thread():
    """One intra-op thread while a module trains real networks in this process: their ops are tiny, and
    a second OpenMP thread only spins, doubling the CPU time on the shared 2-core box."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
