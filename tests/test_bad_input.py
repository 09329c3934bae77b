"""Every command answers bad input in one line, exit 2: an unknown flag, an input path that does not
exist, a path under a regular file, and 0 or a negative value for a number where that makes no sense.

The commands come from the code (tests/commands.py), and so do their flags: each command's parser is
caught as its ``main`` parses, and each flag's argparse type says what it is (bench.argcheck's
``positive_int``, ``non_negative_int``, ``positive_float``, ``in_file``, ``in_path``, ``out_file``,
``out_dir``). A number or path flag without one of these types fails here, so a new command is
covered as soon as it exists. The commands run in this process (one torch import for all) in an empty
folder that must stay empty; one per package runs as the real ``python -m`` too.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from bench.argcheck import (NUMBER_TYPES, PATH_TYPES, in_file, in_path, non_negative_int, out_dir, out_file,
                            positive_int)
from bench.errors import EXIT_USAGE
from tests.commands import PACKAGES, command_modules, entry_point, parser_of
from tests.procs import python_m

COMMANDS = sorted(command_modules())
# a path-like flag: its name or metavar says so; it must then declare a path type
PATH_WORDS = re.compile(r"(^|[_-])(out|dir|dirs|csv|path|paths|keep|into|config|pilot|resume|source|report|"
                        r"file|toml|json)($|[_-])", re.I)


def _label(action: argparse.Action) -> str:
    """How argparse names the flag in its error line."""
    return action.option_strings[-1] if action.option_strings else (action.metavar or action.dest)


def _argv(action: argparse.Action, value: str) -> list[str]:
    return [action.option_strings[0], value] if action.option_strings else [value]


def _required(parser: argparse.ArgumentParser, tmp: Path) -> list[str]:
    """Good values for the required arguments, so that an unknown flag is the only fault."""
    good = {in_file: str(tmp / "FILE"), in_path: str(tmp), out_file: str(tmp / "new.csv"), out_dir: str(tmp / "new")}
    argv = []
    for a in parser._actions:
        if a.required:
            value = good.get(a.type) or ("1" if a.type in NUMBER_TYPES else str(next(iter(a.choices or ["x"]))))
            argv += _argv(a, value)
    return argv


def bad_inputs(parser: argparse.ArgumentParser, tmp: Path) -> tuple[list[tuple[list[str], list[str]]], list[str]]:
    """(arguments, words the one line must hold) for each bad input the parser's flags imply, and the
    flags that declare no type where they need one."""
    cases = [([*_required(parser, tmp), "--no-such-flag"], ["--no-such-flag"])]
    undeclared = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.nargs == 0:
            continue
        label, kind = _label(action), action.type
        if kind in NUMBER_TYPES:
            cases += [(_argv(action, v), [label, v]) for v in NUMBER_TYPES[kind]]
        elif kind in PATH_TYPES:
            if kind in (in_file, in_path):
                cases.append((_argv(action, str(tmp / "missing")), [label, "missing"]))
            cases.append((_argv(action, str(tmp / "FILE" / "x")), [label, "FILE"]))
        elif kind in (int, float, Path) or (kind is None and action.choices is None and (
                PATH_WORDS.search(action.dest) or PATH_WORDS.search(str(action.metavar or "")))):
            undeclared.append(f"{label} (type {getattr(kind, '__name__', kind)})")
    return cases, undeclared


def run_in_process(module: str, argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = entry_point(module)(argv)
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def problems(rc, out: str, err: str, words: list[str]) -> str | None:
    """What is wrong with a command's answer to bad input, or None."""
    lines = err.splitlines()
    if rc != EXIT_USAGE or out or len(lines) != 1 or "Traceback" in err:
        return f"exit {rc}, stdout {out[:200]!r}, stderr {err[-400:]!r}"
    if missing := [w for w in words if w not in lines[0]]:
        return f"{lines[0]!r} lacks {missing}"
    if not re.search(r"see --help|; ", lines[0]):
        return f"{lines[0]!r} gives no fix"
    return None


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("module", COMMANDS)
def test_bad_input_is_one_line_and_exit_2(module, tmp_path, monkeypatch, capsys, keep_process_state):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("a regular file\n")
    before = _tree(tmp_path)
    cases, undeclared = bad_inputs(parser_of(module), tmp_path)
    capsys.readouterr()
    failures = []
    for argv, words in cases:
        why = problems(*run_in_process(module, argv, capsys), words)
        if why is None and _tree(tmp_path) != before:
            why = f"created {sorted(set(_tree(tmp_path)) - set(before))}"
        if why:
            failures.append(f"{' '.join(argv)}: {why}")
    assert not undeclared, (f"{module}: give these flags a type from bench.argcheck (positive_int, "
                            f"non_negative_int, positive_float, in_file, in_path, out_file, out_dir): {undeclared}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_real_entry_point_answers_as_main_does(package, tmp_path, monkeypatch, capsys, keep_process_state):
    """One command per package as `python -m`, with its last bad input (a typed flag's where it has
    one): the same one line as in this process."""
    module = min(m for m in COMMANDS if m.startswith(package + "."))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("a regular file\n")
    argv, words = bad_inputs(parser_of(module), tmp_path)[0][-1]
    rc, out, err = run_in_process(module, argv, capsys)
    p = python_m(module, *argv, timeout=120, cwd=tmp_path)
    assert (p.returncode, p.stdout, p.stderr) == (rc, out, err)
    assert problems(rc, out, err, words) is None
    assert [p.name for p in tmp_path.iterdir()] == ["FILE"]


def test_zero_stays_accepted_where_it_means_something(tmp_path):
    """Seed 0, no warm-up steps, no loader workers, no step checkpoints: meaningful zeros parse."""
    args = parser_of("bench.train").parse_args(["--seed", "0", "--warmup-steps", "0", "--workers", "0",
                                                "--checkpoint-every-steps", "0"])
    assert (args.seed, args.warmup_steps, args.workers, args.checkpoint_every_steps) == (0, 0, 0, 0)


def test_the_types_refuse_what_they_say(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(argparse.ArgumentTypeError, match="positive integer, got 0"):
        positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError, match="0 or a positive integer, got -1"):
        non_negative_int("-1")
    assert non_negative_int("0") == 0 and in_file(str(tmp_path / "f")) == str(tmp_path / "f")
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        in_file(str(tmp_path))


def test_comma_lists_of_numbers_refuse_zero_and_negatives(capsys):
    for bad, item in (("0", "0"), ("4,-2", "-2"), ("4,x", "x")):
        rc, out, err = run_in_process("bench.micro", ["--batch", bad, "--device", "cpu"], capsys)
        assert problems(rc, out, err, ["--batch", item]) is None, (bad, err)
