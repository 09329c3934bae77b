"""``python -m bench.timing`` and ``torchrun -m bench.timing``: times BN variants side by side in
interleaved rounds of shuffled order, the baseline twice as an A/A control, and writes a timing run
directory.

The command only wires; the code is bench.tools.interleave (its flags: bench.tools.timingcli).
"""
from __future__ import annotations

import sys

from bench.tools import timingcli


def main(argv: list[str] | None = None) -> int:
    return timingcli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
