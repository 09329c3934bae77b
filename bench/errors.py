"""Usage errors, exit codes and the one way every command reports them. Imports no torch.

A usage error is the user asking for something impossible: bad flags, missing data, a configuration
that cannot run. Commands raise :class:`UsageError` anywhere below them and wrap their body in
:func:`cli`, which prints one line ``<prog>: error: <message>`` on stderr and returns exit code 2 —
never a traceback, never a half-written run directory.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from typing import Callable, Iterator

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED = 0, 1, 2, 3
# Stopped on request (SIGTERM/SIGUSR1) after writing a checkpoint: run the same command again with
# --resume (or --auto-resume). 75 is sysexits.h's EX_TEMPFAIL ("try again later"), a code no Python
# error and no signal (128 + n) produces, so a Slurm script or RequeueExit=75 can requeue on it alone.
EXIT_INTERRUPTED = 75


class UsageError(Exception):
    """Bad flags, missing data, impossible configuration: one line naming the problem and the fix."""


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Each flag's help ends with its default, unless the help already speaks of one or there is
    none to show (no default, or a switch that is off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.default in (None, False, argparse.SUPPRESS)
                or action.nargs == 0 or not action.option_strings):
            return text
        return f"{text} (default %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line and exit code 2, without the usage block; --help shows
    every flag's default.

    >>> OneLineParser(prog="demo").format_usage().startswith("usage: demo")
    True
    """

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse's own default formatter becomes the one that shows defaults; a chosen one is kept
        kind = DefaultsHelpFormatter if self.formatter_class is argparse.HelpFormatter else self.formatter_class
        return kind(prog=self.prog)

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


class RaisingParser(OneLineParser):
    """A parser whose errors raise UsageError instead of exiting, for commands run on many ranks:
    the caller decides which rank prints the one line."""

    def error(self, message: str):
        raise UsageError(f"{message} (see --help)")


def cli(prog: str, body: Callable[[], int]) -> int:
    """Run a command's body; a UsageError becomes one line on stderr and exit code 2.

    >>> def bad() -> int:
    ...     raise UsageError("--reps must be >= 20")
    >>> cli("demo", bad)
    2
    """
    try:
        return body()
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Within the block, warnings print as ``warning: <message>`` (no file and line), each time they
    occur; the previous formatter and filters come back afterwards."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        saved = warnings.formatwarning
        warnings.formatwarning = lambda msg, *args, **kwargs: f"warning: {msg}\n"
        try:
            yield
        finally:
            warnings.formatwarning = saved
