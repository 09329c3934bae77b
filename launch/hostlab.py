"""``python -m launch.hostlab``: rehearses a multi-node job on one machine, its hosts made of network
namespaces, each running launch/multinode.sh.

The command only wires; the code is launch.lab_runner.
"""
from __future__ import annotations

import sys

from launch import lab_runner


def main(argv: list[str] | None = None) -> int:
    return lab_runner.main(argv)


if __name__ == "__main__":
    sys.exit(main())
