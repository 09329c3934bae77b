"""``python -m bench.nets``: every network ``--model`` takes, with its BN layer count.

The command only wires; the code is bench.nets.model_list.
"""
from __future__ import annotations

import sys

from bench.nets import model_list


def main(argv: list[str] | None = None) -> int:
    return model_list.main(argv)


if __name__ == "__main__":
    sys.exit(main())
