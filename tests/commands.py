"""The project's commands, found from the code: every module with an ``if __name__ == "__main__"`` block
or a package ``__main__.py``, and the argparse parser each one builds. The one home of this discovery
for the tests (architecture table, help lines, bad input)."""
from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path
from unittest import mock

from tests.procs import REPO

PACKAGES = ("bench", "analysis", "launch", "devtools")


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def command_modules() -> set[str]:
    """Modules with a command entry point: an ``if __name__ == "__main__"`` block or a package __main__."""
    found = set()
    for name, path in modules().items():
        if path.name == "__main__.py":
            found.add(name.rsplit(".", 1)[0])
        elif any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in ast.parse(path.read_text()).body):
            found.add(name)
    return found


class _Parsed(Exception):
    """Raised in place of parsing: the parser is caught, nothing runs."""


def parser_of(module: str) -> argparse.ArgumentParser:
    """The first parser ``module``'s ``main(argv)`` parses with: its own flags, as its code declares them.
    The command stops at that point, before any work."""
    seen: list[argparse.ArgumentParser] = []

    def catch(self, args=None, namespace=None):
        seen.append(self)
        raise _Parsed

    main = importlib.import_module(module).main
    with mock.patch.object(argparse.ArgumentParser, "parse_known_args", catch):
        try:
            main([])
        except _Parsed:
            return seen[0]
    raise AssertionError(f"{module}.main([]) returned without parsing its flags")
