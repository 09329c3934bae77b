"""Paths named on a command line, checked before any work starts. Imports no torch.

Each check raises :class:`bench.errors.UsageError` naming the flag and the fix, so a command wrapped in
``bench.errors.cli`` answers a missing input or an impossible output in one line, exit code 2, and
before it creates anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from bench.errors import UsageError


def _blocking_file(path: Path) -> Path | None:
    """The first existing ancestor of `path` that is not a folder, else None."""
    for parent in reversed(path.absolute().parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def input_files(flag: str, paths: Iterable[str | Path]) -> list[Path]:
    """Each path as a Path, when every one is a readable file.

    >>> input_files("csv", ["/nonexistent.csv"])
    Traceback (most recent call last):
    bench.errors.UsageError: csv /nonexistent.csv: no such file; name an existing file
    """
    out = []
    for text in paths:
        path = Path(text)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "no such file"
            raise UsageError(f"{flag} {path}: {what}; name an existing file")
        out.append(path)
    return out


def output_file(flag: str, path: str | Path) -> Path:
    """`path` as a Path, when a file can be written there: it is not a folder and no part of the way
    to it is a regular file. Creates nothing."""
    path = Path(path)
    blocker = _blocking_file(path)
    if blocker is not None:
        raise UsageError(f"{flag} {path}: {blocker} is a file, not a folder; choose a path under a folder")
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; name a file to write")
    return path


def output_dir(flag: str, path: str | Path) -> Path:
    """`path` as a Path, when it is a folder or one can be made there. Creates nothing."""
    path = Path(path)
    blocker = path if path.exists() and not path.is_dir() else _blocking_file(path)
    if blocker is not None:
        raise UsageError(f"{flag} {path}: {blocker} is a file, not a folder; name a folder")
    return path
