"""The house rules of docs/architecture.md, checked on the source: what each layer imports, no
import cycle, no torch behind analysis/, and the size limits."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import REPO, env

PACKAGES = ("bench", "analysis", "launch")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 260, 60  # "about 250" and 60
STDLIB = set(sys.stdlib_module_names)
# layer -> top-level modules or project packages it may import (beyond the standard library)
ALLOWED = {
    "bench.rundir": set(), "bench.errors": set(),
    "bench.bn": {"torch", "bench.rundir", "bench.errors", "bench.bn", "triton"},
    "bench.nets": {"torch", "torchvision", "bench.nets", "bench.bn", "bench.errors"},
    "bench.run": {"torch", "bench.bn", "bench.nets", "bench.run", "bench.rundir", "bench.errors", "torchvision",
                  "PIL"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path, name: str) -> set[str]:
    """Modules imported anywhere in the file (absolute names; relative imports resolved)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".")[: -node.level + (path.name == "__init__.py")]
                base = ".".join([*pkg, base] if base else pkg)
            submodules = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
            found |= submodules or {base}  # `from bench import rundir` imports bench.rundir, not bench
    return found


def _allowed(imported: str, rules: set[str]) -> bool:
    top = imported.split(".")[0]
    if top in STDLIB or top == "__future__":
        return True
    return any(imported == r or imported.startswith(r + ".") for r in rules)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_its_rule_allows(layer):
    bad = {f"{name}: {imp}" for name, path in MODULES.items() if name == layer or name.startswith(layer + ".")
           for imp in _imports(path, name) if not _allowed(imp, ALLOWED[layer])}
    assert not bad, sorted(bad)


def test_nothing_in_bench_imports_analysis_or_launch_and_analysis_imports_no_torch():
    for name, path in MODULES.items():
        tops = {i.split(".")[0] for i in _imports(path, name)}
        if name.startswith("bench"):
            assert not tops & {"analysis", "launch"}, name
        if name.startswith("analysis"):
            assert "torch" not in tops, name


def test_no_import_cycle_at_module_level():
    """Module-level imports only (a function-level import is deferred on purpose)."""
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        deps = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                deps |= {m for m in (node.module, *(f"{node.module}.{a.name}" for a in node.names)) if m in MODULES}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in MODULES}
        graph[name] = deps - {name}
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for d in graph[n]:
            if state.get(d) == 1:
                pytest.fail(f"import cycle: {' -> '.join(stack + [d])}")
            if d not in state:
                visit(d, stack + [d])
        state[n] = 2
    for n in graph:
        if n not in state:
            visit(n, [n])


def test_analysis_modules_load_without_torch():
    code = ("import importlib, sys\n"
            f"for m in {sorted(n for n in MODULES if n.startswith('analysis'))!r}: importlib.import_module(m)\n"
            "print('torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO,
                       env=env())
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr[-2000:]


@pytest.mark.parametrize("folder", [*PACKAGES, "tests"])
def test_files_and_functions_stay_small(folder):
    too_big = []
    for path in (REPO / folder).rglob("*.py"):
        source = path.read_text()
        if source.count("\n") > MAX_FILE_LINES:
            too_big.append(f"{path.relative_to(REPO)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_big.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}(): {n} lines")
    assert not too_big, too_big
