"""Every flag of every command-line tool has a help line.

Each CLI runs as `python -m <module> --help` would, but in this process (runpy, one torch import for
all). While they run, every argparse parser built is recorded with the file that built it; a file
of bench/, analysis/ or launch/ that builds a parser none of the commands showed fails the test,
so a parser outside a command cannot slip past.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import runpy
import sys
import warnings
from pathlib import Path

import pytest

from tests.commands import command_modules
from tests.procs import REPO

# `python -m` names of the tools, found from the code (tests/commands.py)
CLI_MODULES = tuple(sorted(command_modules()))
ROOTS = ("bench", "analysis", "launch")


def undocumented(help_text: str) -> list[str]:
    """Arguments in argparse `--help` output that have no help text.

    An entry starts two spaces in (an option, or any argument under 'positional arguments:'); its
    help follows on the same line after two or more spaces, or on the deeper-indented lines below.
    """
    missing, section, entry, has_help = [], "", None, False
    for line in [*help_text.splitlines(), ""]:
        start = re.match(r"^  (\S.*)$", line)
        if entry is not None and not (line.startswith("   ") and line.strip()):
            if not has_help:
                missing.append(entry)
            entry = None
        if line and not line.startswith(" "):
            section = line
        elif start and (section.startswith("positional") or start.group(1).startswith("-")):
            entry, *rest = re.split(r"\s{2,}", start.group(1), maxsplit=1)
            has_help = bool(rest)
        elif entry is not None and line.strip():
            has_help = True
    return missing


def _help_of(module: str) -> str:
    out = io.StringIO()
    argv = sys.argv
    sys.argv = [module, "--help"]
    try:
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # runpy: "found in sys.modules" for re-runs
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        assert e.code in (0, None), f"{module} --help exited {e.code}"
    finally:
        sys.argv = argv
    return out.getvalue()


@pytest.fixture(scope="module")
def helps(monkeypatch_module) -> tuple[dict[str, str], set[Path]]:
    """Each CLI's --help text, and the files whose code built an argparse parser meanwhile."""
    built: set[Path] = set()
    original = argparse.ArgumentParser.__init__

    def recording_init(self, *args, **kwargs):
        built.add(Path(sys._getframe(1).f_code.co_filename).resolve())
        original(self, *args, **kwargs)

    monkeypatch_module.setattr(argparse.ArgumentParser, "__init__", recording_init)
    monkeypatch_module.setenv("COLUMNS", "100")  # argparse wraps to the terminal's width
    return {m: _help_of(m) for m in CLI_MODULES}, built


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.mark.parametrize("module", CLI_MODULES)
def test_every_flag_has_a_help_line(helps, module):
    text = helps[0][module]
    assert text.startswith("usage:"), text[:200]
    assert undocumented(text) == []


def _builds_a_parser(path: Path) -> bool:
    """Does the code (not a docstring or a type hint) call ArgumentParser or a subclass of it?"""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("ArgumentParser", "OneLineParser"):
                return True
    return False


def test_every_parser_in_the_code_was_shown(helps):
    sources = {p.resolve() for root in ROOTS for p in (REPO / root).rglob("*.py") if _builds_a_parser(p)}
    assert sources, "no argparse parser found at all: ROOTS are wrong"
    assert sorted(str(p.relative_to(REPO)) for p in sources - helps[1]) == []


def test_undocumented_finds_the_flags_without_help():
    p = argparse.ArgumentParser(prog="x")
    p.add_argument("paths", nargs="+")
    p.add_argument("--named", help="has help")
    p.add_argument("--bare")
    p.add_argument("--a-very-long-option-name-that-pushes-help-down", choices=("one", "two"), help="wrapped")
    p.add_argument("--flag", action="store_true")
    group = p.add_argument_group("timing", "A group's description line.")
    group.add_argument("--steps", type=int)
    assert undocumented(p.format_help()) == ["paths", "--bare BARE", "--flag", "--steps STEPS"]
