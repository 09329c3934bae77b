"""``python -m bench.micro``: times BN layers alone, forward and forward+backward, against a copy of
the tensor.

The command only wires; the code is bench.tools.bn_microbench.
"""
from __future__ import annotations

import sys

from bench.tools import bn_microbench


def main(argv: list[str] | None = None) -> int:
    return bn_microbench.main(argv)


if __name__ == "__main__":
    sys.exit(main())
