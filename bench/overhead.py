"""``python -m bench.overhead``: measures what the harness and the profiler cost against a bare loop.

The command only wires; the code is bench.tools.overhead_measure.
"""
from __future__ import annotations

import sys

from bench.tools import overhead_measure


def main(argv: list[str] | None = None) -> int:
    return overhead_measure.main(argv)


if __name__ == "__main__":
    sys.exit(main())
