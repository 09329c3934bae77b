from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    """The shared real-trace fixtures: ``<repo>/../shared/fixtures/traces``. Missing is a failure."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "traces"
    assert path.is_dir(), f"trace fixtures not found at {path}"
    return path
