"""``python -m bench.compat``: writes the compatibility matrix: which variant survives which reported
failure.

The command only wires; the code is bench.tools.compatmatrix.build.
"""
from __future__ import annotations

import sys

from bench.tools.compatmatrix import build


def main(argv: list[str] | None = None) -> int:
    return build.main(argv)


if __name__ == "__main__":
    sys.exit(main())
