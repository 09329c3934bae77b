"""The house rules of docs/architecture.md, checked on the source: what each layer imports, no
import cycle, one file name for one module, the commands table, no torch behind analysis/, and the
size limits."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands import PACKAGES, command_modules, modules
from tests.procs import REPO, env

MAX_FILE_LINES, MAX_FUNCTION_LINES = 260, 60  # "about 250" and 60
STDLIB = set(sys.stdlib_module_names)
# layer -> top-level modules or project packages it may import (beyond the standard library)
ALLOWED = {
    "bench.rundir": set(), "bench.errors": set(), "bench.quiet": set(), "bench.argcheck": {"bench.errors"},
    "bench.bn": {"torch", "bench.rundir", "bench.errors", "bench.bn", "triton"},
    "bench.nets": {"torch", "torchvision", "bench.nets", "bench.bn", "bench.errors"},
    "bench.run": {"torch", "bench.bn", "bench.nets", "bench.run", "bench.rundir", "bench.errors", "torchvision",
                  "PIL", "bench.quiet", "bench.argcheck"},
}
# bench/tools, the commands, launch/ and devtools/: one block, apart from analysis/'s rules
BENCH_COMMANDS = ("train", "timing", "micro", "modes", "overhead", "compat", "collectives", "variants")
ALLOWED |= {
    "bench.tools": {"torch", "torchvision", "triton", "bench"},
    **{f"bench.{c}": {"bench.run", "bench.tools"} for c in BENCH_COMMANDS},
    "launch": {"bench", "analysis", "launch", "pandas", "torch"},
    "devtools": {"bench", "analysis", "launch", "devtools", "torch", "triton", "pandas", "selenium"},
}


MODULES = modules()


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


def test_no_import_cycle_at_all():
    """Every import counts: module level, inside functions and under TYPE_CHECKING."""
    graph = {name: {d for d in _imports(path, name) if d in MODULES} - {name} for name, path in MODULES.items()}
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                pytest.fail(f"import cycle: {' -> '.join(stack + [d])}")
            if d not in state:
                visit(d, stack + [d])
        state[n] = 2
    for n in sorted(graph):
        if n not in state:
            visit(n, [n])


def test_the_cycle_check_sees_type_only_and_in_function_imports(tmp_path):
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench.run import loop\n" \
             "def f():\n    from bench.run import job\n"
    (tmp_path / "m.py").write_text(source)
    assert {"bench.run.loop", "bench.run.job"} <= _imports(tmp_path / "m.py", "bench.run.m")


def test_no_file_name_repeats():
    """A name means one thing: no two modules in these folders share a file name."""
    homes: dict[str, list[str]] = {}
    for folder in (*PACKAGES, "benchmarks"):
        for path in (REPO / folder).rglob("*.py") if (REPO / folder).is_dir() else ():
            if path.name not in ("__init__.py", "__main__.py"):
                homes.setdefault(path.name, []).append(str(path.relative_to(REPO)))
    assert not {n: h for n, h in homes.items() if len(h) > 1}


def test_the_commands_table_lists_every_command_and_nothing_else():
    text = (REPO / "docs" / "architecture.md").read_text()
    table = text[text.index("## Commands"):].split("\n## ")[0]
    listed = set(re.findall(r"^\| `([\w.]+)` \|", table, re.M))
    assert listed == command_modules()


LAUNCH_COMMANDS = ("compare", "run", "sweep", "view", "hostlab")


@pytest.mark.parametrize("name", sorted([*(f"bench.{c}" for c in BENCH_COMMANDS),
                                         *(f"launch.{c}" for c in LAUNCH_COMMANDS)]))
def test_a_command_is_thin(name):
    """A command wires: its only function is main(argv), which calls one module's main."""
    tree = ast.parse(MODULES[name].read_text())
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert [f.name for f in functions] == ["main"] and len(functions[0].body) == 1


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


# ---- analysis/: its rooms (docs/architecture.md, "Inside analysis/") ----------------------------------
# Loading reads files with the run-directory format and errors, plus the events table's vocabulary that
# the trace loader fills; transforms, statistics and the at-scale model import neither loading nor
# rendering; rendering never loads. The commands at the top level wire them and may import any room.
ANALYSIS_FORMAT = {"bench.rundir", "bench.errors"}
ANALYSIS_ALLOWED = {
    "analysis.load": {*ANALYSIS_FORMAT, "pandas", "numpy", "msgspec", "tomli", "analysis.load",
                      "analysis.transform.events"},
    "analysis.transform": {*ANALYSIS_FORMAT, "pandas", "numpy", "analysis.transform"},
    "analysis.stats": {*ANALYSIS_FORMAT, "pandas", "numpy", "scipy", "analysis.stats"},
    "analysis.atscale": {*ANALYSIS_FORMAT, "pandas", "numpy", "scipy", "analysis.atscale", "analysis.transform"},
    "analysis.render": {*ANALYSIS_FORMAT, "pandas", "numpy", "matplotlib", "analysis.render", "analysis.transform",
                        "analysis.stats", "analysis.atscale"},
}
MAX_ANALYSIS_TOP_LEVEL = 8  # the commands and __init__.py


@pytest.mark.parametrize("room", sorted(ANALYSIS_ALLOWED))
def test_analysis_room_imports_only_what_its_rule_allows(room):
    assert room in MODULES, f"{room}: no such package"
    bad = {f"{name}: {imp}" for name, path in MODULES.items() if name == room or name.startswith(room + ".")
           for imp in _imports(path, name) if not _allowed(imp, ANALYSIS_ALLOWED[room])}
    assert not bad, sorted(bad)


def test_analysis_top_level_holds_only_commands():
    top = sorted(p for p in (REPO / "analysis").glob("*.py"))
    assert len(top) <= MAX_ANALYSIS_TOP_LEVEL, [p.name for p in top]
    for path in top:
        if path.name == "__init__.py":
            continue
        names = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert "main" in names, f"{path.name}: a top-level module of analysis/ is a command with main(argv)"
    rooms = {p.parent.name for p in (REPO / "analysis").rglob("*.py") if p.parent != REPO / "analysis"}
    assert rooms == {r.split(".")[1] for r in ANALYSIS_ALLOWED}, rooms  # every sub-package has a rule
