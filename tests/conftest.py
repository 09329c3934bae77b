"""Shared fixtures: real Fashion-MNIST laid out once per session, and the real traces in tests/data."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """torchvision's FashionMNIST/raw layout, built from Debian's dataset-fashion-mnist files."""
    from bench.run import data

    return data.prepare(tmp_path_factory.mktemp("fashion-mnist"))


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    """Real kineto traces kept in the repository (provenance: tests/data/traces/PROVENANCE.md)."""
    path = REPO / "tests" / "data" / "traces"
    assert path.is_dir(), f"trace fixtures not found at {path}"
    return path


@pytest.fixture
def keep_process_state():
    """In-process runs install a SIGTERM handler and may switch on deterministic algorithms."""
    import torch
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)
    torch.use_deterministic_algorithms(False)
