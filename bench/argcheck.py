"""Paths named on a command line, checked before any work starts. Imports no torch.

Each check raises :class:`bench.errors.UsageError` naming the flag and the fix, so a command wrapped in
``bench.errors.cli`` answers a missing input or an impossible output in one line, exit code 2, and
before it creates anything.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Iterable

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


# argparse types: a command declares with them what each flag is, so a bad value is argparse's one
# line (exit 2) naming the flag, before any work; tests/test_bad_input.py reads them off every parser.
# Numbers: 0 or a negative value is refused where it makes no sense. Paths: returned as given (str).

def positive_int(text: str) -> int:
    """A count, a size, a rank number: 1 or more.

    >>> positive_int("3")
    3
    """
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive integer, got {text}")
    return v


def non_negative_float(text: str) -> float:
    """A number where 0 means something (a time from now: at once; a decay or smoothing: none).

    >>> non_negative_float("0")
    0.0
    """
    v = float(text)
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or a positive finite number, got {text}")
    return v


def positive_float(text: str) -> float:
    v = float(text)
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return v


def _as_type(check: Callable[[str, str], object], text: str) -> str:
    try:
        check("", text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e).lstrip()) from None
    return text


def in_file(text: str) -> str:
    """An existing regular file."""
    return _as_type(lambda flag, t: input_files(flag, [t]), text)


def in_path(text: str) -> str:
    """An existing file or folder."""
    if not Path(text).exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or folder; name an existing one")
    return text


def out_file(text: str) -> str:
    """A file that can be written: no part of the way to it is a regular file; '' (none) passes.
    Creates nothing."""
    return text if text == "" else _as_type(output_file, text)


def out_dir(text: str) -> str:
    """A folder that exists or can be made. Creates nothing."""
    return _as_type(output_dir, text)


# each number type and the values it refuses, which the bad-input test tries on every flag of that type
NUMBER_TYPES = {positive_int: ("0", "-1"), non_negative_int: ("-1",), positive_float: ("0", "-1"),
                non_negative_float: ("-1",)}
PATH_TYPES = (in_file, in_path, out_file, out_dir)
