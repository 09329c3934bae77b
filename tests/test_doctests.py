"""Every ``>>>`` example in bench/, analysis/ and launch/ runs and gives what it shows."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import analysis
import bench
import launch

# Modules that start work on import, or need a GPU toolchain to import, are not examples.
SKIP: frozenset[str] = frozenset()


def _modules() -> list[str]:
    names = []
    for pkg in (bench, analysis, launch):
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, f"{pkg.__name__}.") if m.name not in SKIP]
    return sorted(names)


def _examples(name: str) -> int:
    module = importlib.import_module(name)
    return sum(len(t.examples) for t in doctest.DocTestFinder().find(module))


MODULES = _modules()


@pytest.mark.parametrize("name", [m for m in MODULES if _examples(m)])
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, f"{name}: {result.failed} of {result.attempted} failed"


def test_examples_are_collected_across_the_layers():
    """The examples live in every room of the house, and none is silently dropped."""
    with_examples = [m for m in MODULES if _examples(m)]
    for prefix in ("bench.bn", "bench.nets", "bench.run", "bench.tools", "analysis.", "launch."):
        assert any(m.startswith(prefix) for m in with_examples), prefix
